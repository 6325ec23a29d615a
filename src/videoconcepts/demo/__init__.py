"""The built-in demo: a small VideoMAE trained on the synthetic event videos."""

"""The HTML report: one section per stage, assembled into one self-contained page."""

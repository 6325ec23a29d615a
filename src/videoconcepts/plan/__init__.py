"""Parse-time planning: settings, samples, checkpoints, families, rule sources. No torch."""

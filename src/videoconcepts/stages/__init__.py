"""One module per workflow rule: its settings type, its command-line arguments and its ``run``."""

"""The planted units of the masking stages' tests (see conftest.py)."""

GRID = (8, 8, 8)
N_TOKENS, N_LAYERS, N_HEADS = 512, 4, 4
PLANTED, ABSENT = 0, 7

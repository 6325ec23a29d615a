"""Ranking an importance table: what CRIS, occlusion and head importance share."""

from __future__ import annotations

import pandas as pd


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a 1-based ``rank`` by descending importance, sorted by it."""
    rank = table["importance"].rank(ascending=False, method="first").astype(int)
    return table.assign(rank=rank).sort_values("rank")

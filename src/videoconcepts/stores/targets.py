"""The targets table (TSV): the target class and unmasked score of every usable video.

Written once per model, metric and target rule by the targets stage; every job that
scores masked models reads it instead of re-reading the sample sheet. Baselines are
float32 scores written with nine significant digits, so they read back exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("video", "label", "predicted", "target", "baseline")
BASELINE_FORMAT = "%.9g"  # round-trips float32


def read_targets(path: str | Path, video_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(target class per video, unmasked score per video) for ``video_ids``, in that order."""
    table = pd.read_csv(path, sep="\t", keep_default_na=False, dtype={"video": str})
    table = table.set_index("video")
    missing = [v for v in video_ids if v not in table.index]
    if missing:
        raise ValueError(f"{path}: no target for videos {missing[:5]}")
    rows = table.loc[list(video_ids)]
    return rows["target"].to_numpy(np.int64), rows["baseline"].to_numpy(np.float64).astype(
        np.float32
    )

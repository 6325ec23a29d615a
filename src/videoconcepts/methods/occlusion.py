"""Occlusion, the usual importance baseline: each unit masked alone on each video it is in."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from videoconcepts.methods.ranking import ranked
from videoconcepts.models.scorer import MaskScorer
from videoconcepts.stores.decode import Clips
from videoconcepts.stores.units import Units


def occlusion_importance(
    scorer: MaskScorer, clips: Clips, units: Units, targets: np.ndarray, baseline: np.ndarray
) -> pd.DataFrame:
    """Score drop when each unit alone is masked, averaged over all videos (absent: 0)."""
    n_videos, n_units = len(clips), units.n_units
    drops = np.zeros((n_videos, n_units))
    for v in tqdm(range(n_videos), desc="occlusion", unit="video"):
        present = np.flatnonzero(units.presence[v])
        masks = np.zeros((len(present), n_units), bool)
        masks[np.arange(len(present)), present] = True
        scores = scorer.scores(clips.frames(v), units.tokens(v), masks, int(targets[v]))
        drops[v, present] = baseline[v] - scores
    table = units.table.copy()
    table["importance"] = drops.mean(0)
    table["stderr"] = drops.std(0, ddof=1) / np.sqrt(n_videos) if n_videos > 1 else 0.0
    table["n_videos"] = units.presence.sum(0)
    return ranked(table)

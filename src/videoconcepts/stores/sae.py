"""SAE stores (kind ``sae``): one trained sparse autoencoder on one layer's residual
tokens of one model, with the normalisation it was trained under and its split of the
videos; and the gallery store (kind ``sae_gallery``) the measures write for the report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import zarr

from videoconcepts.methods.sae import TopKSAE
from videoconcepts.stores.base import open_store

KIND = "sae"
GALLERY_KIND = "sae_gallery"
HISTORY_COLUMNS = ("step", "loss", "reconstruction", "contrastive", "auxiliary")
METRIC_COLUMNS = (
    "model",
    "sae",
    "layer",
    "k",
    "contrastive",
    "features",
    "explained_variance",
    "dead_share",
    "dense_share",
    "autocorrelation",
    "raw_autocorrelation",
    "autocorrelation_change",
    "plain_autocorrelation",
    "frame_autocorrelation",
    "raw_frame_autocorrelation",
    "frame_autocorrelation_change",
    "plain_frame_autocorrelation",
    "probe_accuracy",
    "raw_probe_accuracy",
    "spliced_accuracy",
    "spliced_score_drop",
    "ablation_drop",
    "random_ablation_drop",
    "ablation_probability_drop",
    "random_ablation_probability_drop",
    "role_iou",
    "raw_role_iou",
    "top_feature_iou",
    "raw_top_feature_iou",
)
FEATURE_COLUMNS = (
    "model",
    "sae",
    "feature",
    "frequency",
    "autocorrelation",
    "probe_class",
    "probe_weight",
    "role",
    "role_iou",
)
ABLATION_COLUMNS = (
    "model",
    "sae",
    "class",
    "removed",
    "repeat",
    "features",
    "videos",
    "score",
    "drop",
    "probability_drop",
)


def open_sae(path: str | Path) -> zarr.Group:
    return open_store(path, KIND)


def load_sae(group: zarr.Group, device: torch.device | str = "cpu") -> TopKSAE:
    """The trained SAE of an open store, in eval mode."""
    width, n_features = group["encoder"].shape
    sae = TopKSAE(width, n_features, int(group.attrs["settings"]["k"]), seed=0)
    state = {name: torch.from_numpy(group[name][...]) for name in dict(sae.named_parameters())}
    sae.load_state_dict(state)
    return sae.to(device).eval()


def normalisation(group: zarr.Group) -> tuple[np.ndarray, float]:
    """(mean (width,), scale): the SAE sees (x - mean) / scale."""
    return group["mean"][...], float(group.attrs["scale"])

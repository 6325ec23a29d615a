"""The masked-model runner: scoring clips under unit masks, what CRIS, occlusion,
attribution curves and head importance share.

:class:`MaskScorer` batches many masks of one clip into one forward pass;
:class:`UnitJob` loads once what every such job needs (units, model, clips, and the
targets table the targets stage wrote). Kept apart from the estimators so that jobs
which only reduce scores never import the model code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from videoconcepts.methods.objectives import get_metric
from videoconcepts.models import ModelAdapter, load_adapter
from videoconcepts.models.masking import MaskMode, TokenMasker
from videoconcepts.runtime import Runtime
from videoconcepts.stores.decode import Clips
from videoconcepts.stores.targets import read_targets
from videoconcepts.stores.units import Units, open_units


@dataclass(frozen=True)
class MaskingSettings:
    """How units are masked and scored (shared by CRIS, occlusion, curves and heads)."""

    model: dict | str  # a resolved ModelSpec as a dict, or a bare checkpoint
    mode: MaskMode
    head_kind: str
    metric: str
    target: str  # "none" for models without classes; resolved by the targets stage


class MaskScorer:
    """Scores one clip under many unit masks, batching masks along the batch dimension.

    Use as a context manager: hooks are registered once on entry. ``unit_tokens`` is
    the (layers, heads, N) unit id of every patch token (-1 for none) of one video, and
    ``masks`` a (K, U) bool array (True = unit masked).
    """

    def __init__(
        self,
        adapter: ModelAdapter,
        layers: Sequence[int],
        settings: MaskingSettings,
        batch_size: int,
    ):
        self.adapter, self.batch_size = adapter, batch_size
        self.metric = get_metric(settings.metric)
        self.masker = TokenMasker(adapter, layers, settings.mode, settings.head_kind)

    def __enter__(self) -> MaskScorer:
        self.masker.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.masker.__exit__(*exc)

    @torch.inference_mode()
    def logits(
        self, frames: np.ndarray, unit_tokens: np.ndarray, masks: np.ndarray
    ) -> torch.Tensor:
        """Model output (K, classes) of one clip (T, H, W, 3) under each of K masks.

        Masks that agree on the clip's own units are one intervention and go through the
        model once (the first and last steps of every removal order, for instance).
        """
        adapter = self.adapter
        device = adapter.device
        pixels = adapter.preprocess(torch.from_numpy(np.asarray(frames))[None])
        distinct, inverse, local = distinct_masks(unit_tokens, masks)
        # Unit id + 1 indexes a mask row padded with "not masked" at 0 (tokens of no unit).
        index = torch.as_tensor(local + 1, dtype=torch.long, device=device)
        out = []
        for start in range(0, len(distinct), self.batch_size):
            rows = torch.as_tensor(distinct[start : start + self.batch_size], device=device)
            padded = torch.nn.functional.pad(rows, (1, 0), value=False)
            self.masker.set(padded[:, index])  # (B, layers, heads, N), built on the device
            with adapter.autocast():
                batch = pixels.expand(len(rows), *pixels.shape[1:])
                out.append(adapter.outputs(batch).float())
        self.masker.set(None)
        return torch.cat(out)[torch.as_tensor(inverse, device=device)]

    def scores(
        self, frames: np.ndarray, unit_tokens: np.ndarray, masks: np.ndarray, target: int
    ) -> np.ndarray:
        logits = self.logits(frames, unit_tokens, masks)
        targets = torch.full((len(logits),), target, device=logits.device)
        return self.metric(logits, targets).cpu().numpy()


def distinct_masks(
    unit_tokens: np.ndarray, masks: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct rows of ``masks`` restricted to the units one clip holds, in order of
    first occurrence; each mask's row among them; and ``unit_tokens`` renumbered to
    those columns (-1 stays -1)."""
    present, local = np.unique(unit_tokens, return_inverse=True)
    local = local.reshape(unit_tokens.shape)
    if present[0] < 0:  # tokens of no unit
        present, local = present[1:], local - 1
    restricted = np.asarray(masks)[:, present]
    _, first, inverse = np.unique(restricted, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    return restricted[first[order]], position[inverse.ravel()], local


@dataclass
class UnitJob:
    """What every job that scores concept units loads once: units, model, clips, targets."""

    units: Units
    adapter: ModelAdapter
    clips: Clips
    targets: np.ndarray  # (V,) target class per video
    baseline: np.ndarray  # (V,) unmasked score per video

    @classmethod
    def load(
        cls,
        units_path: str | Path,
        targets_path: str | Path,
        masking: MaskingSettings,
        runtime: Runtime,
    ) -> UnitJob:
        units = open_units(units_path)
        adapter = load_adapter(masking.model, runtime.device, runtime.precision)
        clips = Clips(units.video_ids, units.decode_stores)
        targets, baseline = read_targets(targets_path, units.video_ids)
        return cls(units, adapter, clips, targets, baseline)

    def scorer(self, masking: MaskingSettings, batch_size: int) -> MaskScorer:
        return MaskScorer(self.adapter, self.units.layers, masking, batch_size)

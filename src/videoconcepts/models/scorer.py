"""The masked-model runner: scoring clips under unit masks, what CRIS, occlusion,
attribution curves and head importance share.

:class:`MaskScorer` batches many masks of one clip into one forward pass;
:class:`UnitJob` loads once what every such job needs (units, model, clips, and the
targets table the targets stage wrote). Kept apart from the estimators so that jobs
which only reduce scores never import the model code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
        model once (the first and last steps of every removal order, for instance). The
        layers below a batch's first masked layer compute the same thing in every row:
        where the family allows, they run once, on the clip alone (:func:`shared_prefix`).
        """
        adapter = self.adapter
        device = adapter.device
        pixels = adapter.preprocess(torch.from_numpy(np.asarray(frames))[None])
        distinct, inverse, local = distinct_masks(unit_tokens, masks)
        # Batches group masks by their first masked layer (one group where nothing is shared).
        onset = first_masked_layer(local, distinct) * adapter.shares_prefix
        # Unit id + 1 indexes a mask row padded with "not masked" at 0 (tokens of no unit).
        index = torch.as_tensor(local + 1, dtype=torch.long, device=device)
        order = np.argsort(onset, kind="stable")
        parts, done = [], []
        for layer in np.unique(onset):
            group = order[onset[order] == layer]
            for start in range(0, len(group), self.batch_size):
                chunk = group[start : start + self.batch_size]
                rows = torch.as_tensor(distinct[chunk], device=device)
                padded = torch.nn.functional.pad(rows, (1, 0), value=False)
                self.masker.set(padded[:, index])  # (B, layers, heads, N), built on the device
                with adapter.autocast(), self.shared_prefix(int(layer), len(chunk)) as batch:
                    logits = adapter.outputs(pixels.expand(batch, *pixels.shape[1:])).float()
                parts.append(logits.expand(len(chunk), -1))
                done.append(chunk)
        self.masker.set(None)
        position = np.empty(len(distinct), dtype=int)  # each distinct mask's row in parts
        position[np.concatenate(done)] = np.arange(len(distinct))
        return torch.cat(parts)[torch.as_tensor(position[inverse], device=device)]

    @contextmanager
    def shared_prefix(self, onset: int, rows: int) -> Iterator[int]:
        """Run the model's input and the layers below masked layer ``onset`` (an index
        into the masked layers; their number: nothing masked) on one copy of the clip,
        then repeat the hidden states ``rows`` times into the first masked layer. Yields
        the batch size to feed the model."""
        layers = self.masker.layers
        if not self.adapter.shares_prefix or (onset < len(layers) and layers[onset] == 0):
            yield rows
            return
        if onset == len(layers):  # nothing masked: one row is every row
            yield 1
            return

        def repeat(_module, args, kwargs):
            hidden = args[0]
            return (hidden.repeat(rows, *[1] * (hidden.dim() - 1)), *args[1:]), kwargs

        block = self.adapter.block(layers[onset])
        handle = block.register_forward_pre_hook(repeat, with_kwargs=True)
        try:
            yield 1
        finally:
            handle.remove()

    def scores(
        self, frames: np.ndarray, unit_tokens: np.ndarray, masks: np.ndarray, target: int
    ) -> np.ndarray:
        logits = self.logits(frames, unit_tokens, masks)
        targets = torch.full((len(logits),), target, device=logits.device)
        return self.metric(logits, targets).cpu().numpy()


def first_masked_layer(local: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """For each row of ``masks`` (K, U) over the units numbered in ``local`` (layers,
    heads, N), the index of the first layer holding a masked unit; len(layers) for a row
    that masks nothing."""
    n_layers = len(local)
    layer_of = np.full(masks.shape[1], n_layers)
    where = np.nonzero(local >= 0)
    np.minimum.at(layer_of, local[where], where[0])
    return np.where(masks, layer_of, n_layers).min(1, initial=n_layers)


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

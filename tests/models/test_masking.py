"""Token masking inside attention: both modes, many masks per batch, exact when empty."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videoconcepts.models import load_adapter
from videoconcepts.models.masking import TokenMasker
from videoconcepts.models.scorer import MaskingSettings, MaskScorer

LAYERS = (0, 1)


@pytest.fixture(scope="module")
def adapter(tiny_checkpoint):
    return load_adapter(str(tiny_checkpoint), "cpu")


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.integers(0, 256, (1, 4, 32, 32, 3), dtype=np.uint8))


def masked_logits(adapter, clip, masks, mode, head_kind="keys") -> torch.Tensor:
    with TokenMasker(adapter, LAYERS, mode, head_kind) as masker:
        masker.set(masks)
        return adapter.logits(clip.expand(len(masks), -1, -1, -1, -1))


def unit_token_masks(tokens: np.ndarray, masks: np.ndarray) -> torch.Tensor:
    """Token masks (K, layers, heads, N) of unit masks (K, U) over unit ids ``tokens``
    (layers, heads, N; -1 for no unit), built without the scorer."""
    return torch.from_numpy(masks[:, tokens.clip(min=0)] & (tokens >= 0))


def random_masks(adapter, n: int, seed: int, share: float = 0.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n, len(LAYERS), adapter.num_heads, adapter.grid.size)
    return torch.rand(shape, generator=g) < share


@pytest.mark.parametrize("mode", ["zero", "remove"])
def test_empty_mask_leaves_output_unchanged(adapter, clip, mode):
    plain = adapter.logits(clip.expand(3, -1, -1, -1, -1))
    empty = torch.zeros(3, len(LAYERS), adapter.num_heads, adapter.grid.size, dtype=torch.bool)
    assert torch.equal(masked_logits(adapter, clip, empty, mode), plain)
    # and the model is back to normal afterwards
    assert adapter.model.config._attn_implementation == "sdpa"
    assert torch.equal(adapter.logits(clip.expand(3, -1, -1, -1, -1)), plain)


@pytest.mark.parametrize("mode", ["zero", "remove"])
def test_masks_change_the_output_row_by_row(adapter, clip, mode):
    plain = adapter.logits(clip)
    out = masked_logits(adapter, clip, random_masks(adapter, 4, seed=1), mode)
    assert not torch.allclose(out, plain.expand_as(out), atol=1e-4)
    assert not torch.allclose(out[0], out[1], atol=1e-4)


@pytest.mark.parametrize("mode", ["zero", "remove"])
def test_batch_rows_are_independent(adapter, clip, mode):
    """Scoring masks together in one batch equals scoring each one alone."""
    masks = random_masks(adapter, 5, seed=2)
    masks[3] = False  # an unmasked row next to masked ones
    together = masked_logits(adapter, clip, masks, mode)
    alone = torch.cat([masked_logits(adapter, clip, masks[i : i + 1], mode) for i in range(5)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(together[3], adapter.logits(clip)[0], atol=1e-5, rtol=1e-5)


def test_remove_mode_on_every_token_of_a_head_zeroes_that_head(adapter, clip):
    layer, head, dim = 1, 2, adapter.head_dim
    masks = torch.zeros(1, len(LAYERS), adapter.num_heads, adapter.grid.size, dtype=torch.bool)
    masks[0, LAYERS.index(layer), head] = True

    def zero_head(_module, inputs):
        context = inputs[0].clone()
        context[..., head * dim : (head + 1) * dim] = 0
        return (context, *inputs[1:])

    dense = adapter.model.videomae.encoder.layer[layer].attention.output.dense
    handle = dense.register_forward_pre_hook(zero_head)
    try:
        reference = adapter.logits(clip)
    finally:
        handle.remove()
    torch.testing.assert_close(masked_logits(adapter, clip, masks, "remove"), reference)


@pytest.mark.parametrize("kind", ["keys", "values"])
def test_zero_mode_zeroes_the_chosen_projection_on_the_masked_tokens(adapter, clip, kind):
    layer, head, dim = 0, 1, adapter.head_dim
    tokens = [0, 5, 17, 31]
    masks = torch.zeros(1, len(LAYERS), adapter.num_heads, adapter.grid.size, dtype=torch.bool)
    masks[0, LAYERS.index(layer), head, tokens] = True

    def zero_slice(_module, _inputs, output):
        output = output.clone()
        output[:, tokens, head * dim : (head + 1) * dim] = 0
        return output

    handle = adapter.projection(layer, kind).register_forward_hook(zero_slice)
    try:
        reference = adapter.logits(clip)
    finally:
        handle.remove()
    out = masked_logits(adapter, clip, masks, "zero", head_kind=kind)
    torch.testing.assert_close(out, reference)
    assert not torch.allclose(out, adapter.logits(clip), atol=1e-6)


def test_bad_masks_are_rejected(adapter):
    with TokenMasker(adapter, LAYERS, "remove") as masker:
        with pytest.raises(ValueError, match="bool"):
            masker.set(torch.zeros(1, len(LAYERS), adapter.num_heads, adapter.grid.size))
        with pytest.raises(ValueError, match="bool"):
            masker.set(torch.zeros(1, 1, adapter.num_heads, adapter.grid.size, dtype=torch.bool))
    with pytest.raises(ValueError, match="masking mode"):
        TokenMasker(adapter, LAYERS, "blur")


def test_the_scorer_sends_each_distinct_intervention_once(adapter, clip):
    """Unit masks that differ only on units the clip does not hold are one intervention:
    it goes through the model once, and every such mask gets its output."""
    n_tokens = adapter.grid.size
    tokens = np.full((len(LAYERS), adapter.num_heads, n_tokens), -1)
    tokens[0, 0, : n_tokens // 2] = 0  # unit 0: half of head (0, 0)
    tokens[1, 1, n_tokens // 2 :] = 2  # unit 2: half of head (1, 1); unit 1 is absent
    masks = np.array(
        [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1]], bool
    )  # rows 0/2, 1/3 and 4/6 differ on unit 1 only
    settings = MaskingSettings(str(adapter.spec.checkpoint), "remove", "keys", "logit", "auto")
    rows = []
    hook = adapter.model.register_forward_hook(lambda m, i, o: rows.append(len(o[0])))
    try:
        with MaskScorer(adapter, LAYERS, settings, batch_size=2) as scorer:
            out = scorer.logits(clip[0].numpy(), tokens, masks)
    finally:
        hook.remove()
    assert sum(rows) == 4  # distinct: none, unit 0, unit 2, both
    for a, b in ((0, 2), (1, 3), (4, 6)):
        assert torch.equal(out[a], out[b])
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[0], out[4])
    # each row is what that mask alone gives
    alone = masked_logits(adapter, clip, unit_token_masks(tokens, masks), "remove")
    torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-5)


def test_the_scorer_runs_the_layers_below_its_first_masked_layer_once(adapter, clip):
    """Units of layer 1 only: layer 0 sees one copy of the clip a batch, and every row
    is what its mask gives in a full batch."""
    n_tokens = adapter.grid.size
    tokens = np.full((len(LAYERS), adapter.num_heads, n_tokens), -1)
    for unit in range(3):
        tokens[1, unit, : n_tokens // (unit + 2)] = unit
    masks = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 0]], bool)
    settings = MaskingSettings(str(adapter.spec.checkpoint), "remove", "keys", "logit", "auto")
    rows = []
    hook = adapter.block(0).register_forward_pre_hook(lambda m, a: rows.append(len(a[0])))
    try:
        with MaskScorer(adapter, (1,), settings, batch_size=2) as scorer:
            out = scorer.logits(clip[0].numpy(), tokens[1:], masks)
    finally:
        hook.remove()
    assert rows == [1, 1, 1]  # two batches of masks and the empty mask
    full = masked_logits(adapter, clip, unit_token_masks(tokens, masks), "remove")
    torch.testing.assert_close(out, full)
    assert not torch.allclose(out[0], out[3]) and not torch.allclose(out[1], out[2])

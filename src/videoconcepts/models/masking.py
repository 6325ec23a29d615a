"""Mask patch tokens per (layer, head) inside a model's attention, for many masks at once.

Two modes:

- ``zero`` (VTCD's): multiply the head's keys (or queries/values) on the masked tokens
  by zero. Masked tokens still receive attention, with a logit of zero: a perturbation.
- ``remove``: exclude the masked tokens from the head's attention with an additive
  ``-inf`` bias on those key positions, in that head only. A head whose every patch
  token is masked contributes nothing (its output is zero, special tokens included),
  which is what pruning it means.

Hooks are registered once by :class:`TokenMasker`; each batch only swaps the mask
tensor, so one forward pass scores a different mask in every batch row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from videoconcepts.models.base import HEAD_KINDS, HeadKind, KeyBias, ModelAdapter

MaskMode = Literal["zero", "remove"]
MASK_MODES: tuple[MaskMode, ...] = ("zero", "remove")
_ATTENTION = "videoconcepts_masked_sdpa"
# Attention modules currently masked in `remove` mode -> the masker serving them.
_ACTIVE: dict[int, tuple[TokenMasker, int]] = {}


def _masked_sdpa(module, query, key, value, attention_mask, **kwargs):
    """Hugging Face SDPA attention plus the active masker's key bias for this module."""
    entry = _ACTIVE.get(id(module))
    mask = entry[0].layer_mask(entry[1]) if entry else None
    if mask is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    bias, dead = entry[0].key_bias(mask, query.dtype)
    if attention_mask is not None:
        bias = bias + attention_mask
    out, weights = sdpa_attention_forward(module, query, key, value, bias, **kwargs)
    # out is (B, S, heads, dim): heads with every key removed output nothing.
    return out.masked_fill(dead[:, None, :, None], 0.0), weights


AttentionInterface.register(_ATTENTION, _masked_sdpa)


class TokenMasker:
    """Context manager masking patch tokens in ``layers`` of an adapter's model.

    Inside the context, :meth:`set` takes a bool tensor (B, len(layers), heads, N) on the
    model's device (True = masked; N patch tokens in T'H'W' order) that applies to the
    next forward passes; ``None`` runs the model unchanged. Special tokens (CLS) are
    never masked.
    """

    def __init__(
        self,
        adapter: ModelAdapter,
        layers: Sequence[int],
        mode: MaskMode = "remove",
        head_kind: HeadKind = "keys",
    ):
        if mode not in MASK_MODES:
            raise ValueError(f"masking mode must be one of {MASK_MODES}, got {mode!r}")
        self.adapter = adapter
        self.layers = list(layers)
        self.mode = mode
        self.head_kind = head_kind
        self._masks: list[torch.Tensor | None] = [None] * len(self.layers)
        self._undo: list[Callable[[], None]] = []  # removes hooks, restores forwards
        self._previous_attention: str | None = None

    # --- per-batch state ----------------------------------------------------------
    def set(self, masks: torch.Tensor | None) -> None:
        if masks is None:
            self._masks = [None] * len(self.layers)
            return
        expected = (len(self.layers), self.adapter.num_heads, self.adapter.grid.size)
        if masks.dtype != torch.bool or tuple(masks.shape[1:]) != expected:
            raise ValueError(f"masks must be bool (B, {expected}), got {masks.dtype} {masks.shape}")
        # A layer with nothing masked runs the unmodified path, bit for bit.
        any_masked = masks.flatten(2).any(2).any(0).tolist()
        self._masks = [masks[:, i] if any_masked[i] else None for i in range(len(self.layers))]

    def layer_mask(self, index: int) -> torch.Tensor | None:
        return self._masks[index]

    def key_bias(self, mask: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Additive attention bias (B', heads, 1, S) for the attention module's own key
        sequence, and the (B', heads) dead heads, whose output is zeroed.

        A head is dead in a sequence left with no key, and in every sequence of a clip
        whose patch tokens it has all lost: special tokens (CLS, X-CLIP's message) are
        never masked, so without this a pruned head would still output their values.
        """
        pruned = mask.all(-1)  # (B, heads)
        mask = self.adapter.sequence_mask(mask)
        per_clip = mask.shape[0] // pruned.shape[0]  # sequences are batch-major
        dead = mask.all(-1) | pruned.repeat_interleave(per_clip, 0)
        mask = mask & ~dead[..., None]  # a dead head gets no bias; its output is zeroed
        bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
        return bias.masked_fill_(mask, float("-inf"))[:, :, None, :], dead

    # --- hooks --------------------------------------------------------------------
    def _zero_hook(self, index: int):
        adapter = self.adapter
        parts = 3 if adapter.fused_qkv else 1
        part = HEAD_KINDS.index(self.head_kind) if adapter.fused_qkv else 0

        def hook(_module, _inputs, output):
            mask = self._masks[index]
            if mask is None:
                return None
            keep = ~adapter.sequence_mask(mask)  # (B', heads, S)
            per_head = output.unflatten(-1, (parts, adapter.num_heads, adapter.head_dim))
            scale = torch.ones(per_head.shape[:-1], dtype=output.dtype, device=output.device)
            scale[:, :, part] = keep.transpose(1, 2)
            return (per_head * scale[..., None]).flatten(-3)

        return hook

    def __enter__(self) -> TokenMasker:
        if self.mode == "zero":
            for i, layer in enumerate(self.layers):
                module = self.adapter.projection(layer, self.head_kind)
                self._undo.append(module.register_forward_hook(self._zero_hook(i)).remove)
        elif self.adapter.attention_interface:
            model = self.adapter.model
            self._previous_attention = model.config._attn_implementation
            for i, layer in enumerate(self.layers):
                _ACTIVE[id(self.adapter.attention(layer))] = (self, i)
            model.set_attn_implementation(_ATTENTION)
        else:
            for i, layer in enumerate(self.layers):
                self._undo.append(self.adapter.bias_attention(layer, self._bias_of(i)))
        return self

    def _bias_of(self, index: int) -> KeyBias:
        def bias(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor] | None:
            mask = self._masks[index]
            return None if mask is None else self.key_bias(mask, dtype)

        return bias

    def __exit__(self, *exc) -> None:
        for undo in self._undo:
            undo()
        self._undo.clear()
        if self.mode == "remove" and self.adapter.attention_interface:
            for layer in self.layers:
                _ACTIVE.pop(id(self.adapter.attention(layer)), None)
            self.adapter.model.set_attn_implementation(self._previous_attention)
        self._masks = [None] * len(self.layers)

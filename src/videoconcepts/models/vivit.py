"""Adapter for Hugging Face ViViT (``VivitForVideoClassification``): joint space-time
attention over tubelet tokens, CLS first."""

from __future__ import annotations

import torch
from torch import nn

from videoconcepts.models.base import HeadKind, ModelAdapter, TokenGrid

_PROJECTION = {"keys": "k_proj", "queries": "q_proj", "values": "v_proj"}


class VivitAdapter(ModelAdapter):
    family = "vivit"

    @property
    def grid(self) -> TokenGrid:
        t, h, w = self.config.tubelet_size
        return TokenGrid(self.num_frames // t, self.image_size // h, self.image_size // w)

    @property
    def num_special_tokens(self) -> int:
        return 1

    def _layer(self, layer: int) -> nn.Module:
        return self.model.vivit.layers[layer]

    def attention(self, layer: int) -> nn.Module:
        return self._layer(layer).attention

    def projection(self, layer: int, kind: HeadKind) -> nn.Module:
        return getattr(self.attention(layer), _PROJECTION[kind])

    def block(self, layer: int) -> nn.Module:
        return self._layer(layer)

    def outputs(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).logits

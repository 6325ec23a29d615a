"""Adapter for Hugging Face VideoMAE (``VideoMAEForVideoClassification``), the demo family."""

from __future__ import annotations

import torch
from torch import nn

from videoconcepts.models.base import HeadKind, ModelAdapter, TokenGrid

_PROJECTION = {"keys": "key", "queries": "query", "values": "value"}


class VideoMAEAdapter(ModelAdapter):
    family = "videomae"

    @property
    def _config(self):
        return self.model.config

    @property
    def num_layers(self) -> int:
        return self._config.num_hidden_layers

    @property
    def num_heads(self) -> int:
        return self._config.num_attention_heads

    @property
    def hidden_size(self) -> int:
        return self._config.hidden_size

    @property
    def num_frames(self) -> int:
        return self._config.num_frames

    @property
    def image_size(self) -> int:
        return self._config.image_size

    @property
    def grid(self) -> TokenGrid:
        c = self._config
        side = c.image_size // c.patch_size
        return TokenGrid(c.num_frames // c.tubelet_size, side, side)

    @property
    def num_special_tokens(self) -> int:
        return 0

    def _layer(self, layer: int) -> nn.Module:
        return self.model.videomae.encoder.layer[layer]

    def projection(self, layer: int, kind: HeadKind) -> nn.Module:
        return getattr(self._layer(layer).attention.attention, _PROJECTION[kind])

    def attention(self, layer: int) -> nn.Module:
        return self._layer(layer).attention.attention

    def block(self, layer: int) -> nn.Module:
        return self._layer(layer)

    def pixel_values(self, frames: torch.Tensor) -> torch.Tensor:
        return frames

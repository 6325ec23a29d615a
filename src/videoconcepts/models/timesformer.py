"""Adapter for Hugging Face TimeSformer (divided space-time attention).

Each layer has a temporal attention (every patch position attends over frames) and a
spatial one (every frame attends over its patches plus a copy of CLS), both with a
fused ``qkv`` projection. ``model.attention`` picks the one analysed: spatial by
default, as in VTCD. The residual stream orders patches (H', W', T), not T'H'W'.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from videoconcepts.models.base import KeyBias, ModelAdapter, TokenGrid


class TimesformerAdapter(ModelAdapter):
    family = "timesformer"
    attention_interface = False
    fused_qkv = True
    layers_path = "timesformer.encoder.layer"
    projection_paths = {"keys": "qkv", "queries": "qkv", "values": "qkv"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.config.attention_type != "divided_space_time":
            raise ValueError(
                f"{self.spec.checkpoint}: TimeSformer attention_type "
                f"{self.config.attention_type!r} is not supported (only divided_space_time)"
            )
        self.spatial = self.spec.attention == "spatial"

    @property
    def grid(self) -> TokenGrid:
        side = self.config.image_size // self.config.patch_size
        return TokenGrid(self.config.num_frames, side, side)

    @property
    def num_special_tokens(self) -> int:
        return 1

    def attention(self, layer: int) -> nn.Module:
        block = self.block(layer)
        return (block.attention if self.spatial else block.temporal_attention).attention

    def output_projection(self, layer: int) -> nn.Module:
        block = self.block(layer)
        return (block.attention if self.spatial else block.temporal_attention).output.dense

    def patch_tokens(self, raw: torch.Tensor, kind: str, batch: int) -> torch.Tensor:
        g = self.grid
        columns = g.height * g.width
        if kind == "residual":  # (B, 1 + H'W'T, D), patches in (H', W', T) order
            return raw[:, 1:].unflatten(1, (columns, g.frames)).transpose(1, 2).flatten(1, 2)
        part = self.projection_part(raw, kind)
        if self.spatial:  # (B*T, 1 + H'W', width)
            return part[:, 1:].reshape(batch, g.size, -1)
        # temporal: (B*H'W', T, width)
        return part.reshape(batch, columns, g.frames, -1).transpose(1, 2).flatten(1, 2)

    def sequence_mask(self, mask: torch.Tensor) -> torch.Tensor:
        g = self.grid
        b, heads = mask.shape[:2]
        per_frame = mask.view(b, heads, g.frames, g.height * g.width)
        if self.spatial:  # (B*T, heads, 1 + H'W'), CLS first
            frames = per_frame.transpose(1, 2).reshape(b * g.frames, heads, -1)
            return F.pad(frames, (1, 0), value=False)
        return per_frame.permute(0, 3, 1, 2).reshape(-1, heads, g.frames)

    def bias_attention(self, layer: int, bias: KeyBias) -> Callable[[], None]:
        """Swap in a forward that adds the key bias; TimeSformer computes its attention
        by hand, outside Hugging Face's attention interface."""
        module = self.attention(layer)
        original = module.forward

        def forward(hidden_states: torch.Tensor, output_attentions: bool = False):
            current = bias(hidden_states.dtype)
            if current is None:
                return original(hidden_states, output_attentions)
            key_bias, dead = current
            b, s, width = hidden_states.shape
            qkv = module.qkv(hidden_states).view(b, s, 3, module.num_heads, -1)
            query, key, value = qkv.permute(2, 0, 3, 1, 4)
            # under autocast the projections run in bf16 while the input stays fp32
            attn_mask = key_bias.to(query.dtype)
            out = F.scaled_dot_product_attention(
                query, key, value, attn_mask=attn_mask, scale=module.scale
            )
            out = out.masked_fill(dead[..., None, None], 0.0)
            return (out.transpose(1, 2).reshape(b, s, width),)

        module.forward = forward

        def undo() -> None:
            del module.forward

        return undo

"""Adapter for Hugging Face ViViT (``VivitForVideoClassification``): joint space-time
attention over tubelet tokens, CLS first."""

from __future__ import annotations

from videoconcepts.models.base import ModelAdapter, TokenGrid


class VivitAdapter(ModelAdapter):
    family = "vivit"
    layers_path = "vivit.layers"
    attention_path = "attention"
    projection_paths = {"keys": "k_proj", "queries": "q_proj", "values": "v_proj"}
    output_path = "attention.o_proj"

    @property
    def grid(self) -> TokenGrid:
        t, h, w = self.config.tubelet_size
        return TokenGrid(self.num_frames // t, self.image_size // h, self.image_size // w)

    @property
    def num_special_tokens(self) -> int:
        return 1

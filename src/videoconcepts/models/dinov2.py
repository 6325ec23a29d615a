"""Adapter for Hugging Face DINOv2 (``Dinov2Model``), an image model run on every frame of
a clip alone: ReStraV's backbone (paper 001).

Each layer sees one sequence per frame (CLS first, then the frame's patches), so the
clip's tokens are the frames' patch tokens in time order, and a masked token is masked
in its own frame's attention. The clip length and input side are the model section's
(``frames``, ``size``; DINOv2 interpolates its position embeddings to any side). The
model has no classes: its score is the straightness of the clip's path through its CLS
embedding, minus the mean turning angle in degrees between consecutive steps (the
curvature ReStraV measures), so a unit is important where hiding it bends the path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from videoconcepts.models.base import ModelAdapter, TokenGrid
from videoconcepts.plan.families import FRAME_BY_FRAME_CLIP


def negative_curvature(path: torch.Tensor) -> torch.Tensor:
    """Minus the mean turning angle (degrees) of paths (B, T, D), (B,); a zero-length
    step counts as a right angle (cosine similarity's epsilon)."""
    steps = path.diff(dim=1)
    cosine = F.cosine_similarity(steps[:, :-1], steps[:, 1:], dim=-1)
    return -torch.rad2deg(torch.arccos(cosine.clamp(-1.0, 1.0))).mean(dim=1)


class Dinov2Adapter(ModelAdapter):
    family = "dinov2"
    layers_path = "encoder.layer"
    attention_path = "attention"
    projection_paths = {"keys": "k_proj", "queries": "q_proj", "values": "v_proj"}
    output_path = "attention.o_proj"

    @property
    def num_frames(self) -> int:
        return int(self.spec.frames or FRAME_BY_FRAME_CLIP["frames"])

    @property
    def image_size(self) -> int:
        return int(self.spec.size or FRAME_BY_FRAME_CLIP["size"])

    @property
    def grid(self) -> TokenGrid:
        side = self.image_size // int(self.config.patch_size)
        return TokenGrid(self.num_frames, side, side)

    @property
    def num_special_tokens(self) -> int:
        return 1

    @property
    def class_names(self) -> list[str]:
        return ["straightness"]

    def outputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 1): the straightness of each clip's CLS path, from (B, T, 3, H, W)."""
        cls = self.model(pixel_values=pixels.flatten(0, 1)).pooler_output
        # (-1, T), not the input's batch: the masked scorers may repeat the hidden states.
        return negative_curvature(cls.unflatten(0, (-1, pixels.shape[1])).float())[:, None]

    def patch_tokens(self, raw: torch.Tensor, kind: str, batch: int) -> torch.Tensor:
        """(B*T, 1 + H'W', width) per frame to (B, T'H'W', width)."""
        g = self.grid
        part = self.projection_part(raw, kind)[:, 1 : 1 + g.height * g.width]
        return part.reshape(batch, g.size, -1)

    def sequence_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, heads, T'H'W') to each frame's sequence (B*T, heads, 1 + H'W'), CLS kept."""
        g = self.grid
        b, heads = mask.shape[:2]
        frames = mask.view(b, heads, g.frames, -1).transpose(1, 2).reshape(b * g.frames, heads, -1)
        return F.pad(frames, (1, 0), value=False)

"""Adapter for Hugging Face V-JEPA 2 with its video classification probe
(``VJEPA2ForVideoClassification``).

The metric is the probe's target class, not the predictor's loss: the probe scores a
decision the way every other classifier here does, while the predictor's loss depends
on a random choice of context and target tokens that would be confounded with CRIS's
own masking. Plain encoder checkpoints (``VJEPA2Model``) are refused at parse time.
"""

from __future__ import annotations

from videoconcepts.models.base import ModelAdapter, TokenGrid


class VJEPA2Adapter(ModelAdapter):
    family = "vjepa2"
    layers_path = "vjepa2.encoder.layer"
    attention_path = "attention"
    projection_paths = {"keys": "key", "queries": "query", "values": "value"}
    output_path = "attention.proj"
    input_name = "pixel_values_videos"

    @property
    def grid(self) -> TokenGrid:
        c = self.config
        side = c.crop_size // c.patch_size
        return TokenGrid(c.frames_per_clip // c.tubelet_size, side, side)

    @property
    def num_special_tokens(self) -> int:
        return 0

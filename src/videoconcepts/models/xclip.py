"""Adapter for Hugging Face X-CLIP (``XCLIPModel``), a video-text model.

The vision encoder runs every frame as its own sequence (CLS, the frame's patches, and
in attention a cross-frame message token appended last). Outputs are the cosine
similarities between the video embedding and the text embedding of each class name
(``model.classes``), the way VTCD scores video-text models; the ``similarity`` metric
takes the target class's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from videoconcepts.models.base import ModelAdapter, TokenGrid
from videoconcepts.plan.checkpoints import resolve_checkpoint


class XCLIPAdapter(ModelAdapter):
    family = "xclip"
    layers_path = "vision_model.encoder.layers"
    attention_path = "self_attn"
    projection_paths = {"keys": "k_proj", "queries": "q_proj", "values": "v_proj"}
    output_path = "self_attn.out_proj"
    shares_prefix = False  # the video embedding is reshaped by the input's batch size

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        where = resolve_checkpoint(self.spec.checkpoint)
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True)
        except OSError as err:
            raise FileNotFoundError(
                f"checkpoint {self.spec.checkpoint!r}: no tokenizer for the class names ({err})"
            ) from err
        self.text = tokenizer(self.spec.classes, padding=True, return_tensors="pt").to(self.device)

    @property
    def config(self):
        return self.model.config.vision_config

    @property
    def class_names(self) -> list[str]:
        return list(self.spec.classes)

    @property
    def grid(self) -> TokenGrid:
        side = self.config.image_size // self.config.patch_size
        return TokenGrid(self.config.num_frames, side, side)

    @property
    def num_special_tokens(self) -> int:
        return 1

    def outputs(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model(
            pixel_values=pixels,
            input_ids=self.text["input_ids"],
            attention_mask=self.text["attention_mask"],
        )
        return F.cosine_similarity(out.video_embeds[:, None], out.text_embeds, dim=-1)

    def patch_tokens(self, raw: torch.Tensor, kind: str, batch: int) -> torch.Tensor:
        # (B*T, 1 + H'W' [+ message], width): drop CLS and the message token.
        columns = self.grid.height * self.grid.width
        return raw[:, 1 : 1 + columns].reshape(batch, self.grid.size, -1)

    def sequence_mask(self, mask: torch.Tensor) -> torch.Tensor:
        g = self.grid
        b, heads = mask.shape[:2]
        frames = mask.view(b, heads, g.frames, -1).transpose(1, 2).reshape(b * g.frames, heads, -1)
        return F.pad(frames, (1, 1), value=False)  # CLS first, message token last

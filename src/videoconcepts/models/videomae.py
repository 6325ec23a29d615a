"""Adapters for Hugging Face VideoMAE: fine-tuned classifiers (the demo family) and the
self-supervised model pre-trained by masked reconstruction."""

from __future__ import annotations

import torch

from videoconcepts.models.base import ModelAdapter, TokenGrid
from videoconcepts.plan.checkpoints import IMAGENET_MEAN, IMAGENET_STD


class VideoMAEAdapter(ModelAdapter):
    family = "videomae"
    layers_path = "videomae.encoder.layer"
    attention_path = "attention.attention"
    projection_paths = {"keys": "key", "queries": "query", "values": "value"}
    output_path = "attention.output.dense"

    @property
    def grid(self) -> TokenGrid:
        c = self.config
        side = c.image_size // c.patch_size
        return TokenGrid(c.num_frames // c.tubelet_size, side, side)

    @property
    def num_special_tokens(self) -> int:
        return 0


class VideoMAEPretrainingAdapter(VideoMAEAdapter):
    """VideoMAE pre-trained by masked reconstruction (``VideoMAEForPreTraining``).

    Features come from the encoder seeing every token. Importance is scored by the
    negative reconstruction loss of each clip (as VTCD does for self-supervised
    VideoMAE): a fixed, seeded tube mask hides ``reconstruction_mask_ratio`` of the
    token columns from the encoder, and the decoder reconstructs them. The encoder then
    sees only the visible tokens, so patch masks are mapped onto those.
    """

    family = "videomae_pretraining"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        g = self.grid
        columns = g.height * g.width
        n_hidden = round(self.spec.reconstruction_mask_ratio * columns)
        order = torch.randperm(columns, generator=torch.Generator().manual_seed(0))
        hidden = torch.zeros(columns, dtype=torch.bool)
        hidden[order[:n_hidden]] = True
        # A tube mask: the same spatial positions hidden in every frame.
        self.hidden = hidden.repeat(g.frames).to(self.device)
        self.visible = (~self.hidden).nonzero()[:, 0]

    @property
    def class_names(self) -> list[str]:
        return ["reconstruction"]

    def feature_forward(self, pixels: torch.Tensor) -> None:
        self.model.videomae(pixel_values=pixels)
        return None

    def sequence_mask(self, mask: torch.Tensor) -> torch.Tensor:
        return mask[..., self.visible]

    def outputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """Negative mean squared reconstruction error of each clip's hidden patches."""
        hidden = self.hidden.expand(len(pixels), -1)
        reconstruction = self.model(pixel_values=pixels, bool_masked_pos=hidden).logits
        target = self.patch_targets(pixels)[:, self.hidden]
        return -(reconstruction.float() - target).pow(2).mean((1, 2))[:, None]

    def patch_targets(self, pixels: torch.Tensor) -> torch.Tensor:
        """What the decoder is trained to output for each patch (B, N, tubelet*p*p*3).

        Hugging Face computes these inside ``forward`` and returns only a batch-mean
        loss; CRIS needs one score per row, so they are rebuilt here the same way: pixels
        back in [0, 1] with ImageNet statistics, cut into tubelets, channels last, and
        normalised per patch when the model was trained with ``norm_pix_loss``.
        """
        c = self.config
        mean = torch.tensor(IMAGENET_MEAN, device=pixels.device)[:, None, None]
        std = torch.tensor(IMAGENET_STD, device=pixels.device)[:, None, None]
        frames = pixels.float() * std + mean
        b, t, ch, h, w = frames.shape
        ts, p = c.tubelet_size, c.patch_size
        patches = frames.view(b, t // ts, ts, ch, h // p, p, w // p, p)
        patches = patches.permute(0, 1, 4, 6, 2, 5, 7, 3).reshape(b, -1, ts * p * p, ch)
        if c.norm_pix_loss:
            centred = patches - patches.mean(-2, keepdim=True)
            patches = centred / (patches.var(-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
        return patches.flatten(2)

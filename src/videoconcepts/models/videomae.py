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
    negative reconstruction error of each clip, one of two ways:

    - ``reconstruction_mask_ratio`` 0: nothing hidden (the reference code's way); the
      encoder sees every token and the decoder reconstructs every patch from it, so a
      masked concept changes the encoding of all its tokens;
    - above 0: ``reconstruction_masks`` seeded tube masks each hide that share of the
      token columns from the encoder, the decoder reconstructs them, and the errors are
      averaged over the masks. The encoder sees only the visible tokens, so patch masks
      are mapped onto those, mask by mask (``sequence_mask`` follows the mask scored).
    """

    family = "videomae_pretraining"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        g = self.grid
        columns = g.height * g.width
        n_hidden = round(self.spec.reconstruction_mask_ratio * columns)
        self.hidden_sets = []
        for seed in range(self.spec.reconstruction_masks if n_hidden else 0):
            order = torch.randperm(columns, generator=torch.Generator().manual_seed(seed))
            hidden = torch.zeros(columns, dtype=torch.bool)
            hidden[order[:n_hidden]] = True
            # A tube mask: the same spatial positions hidden in every frame.
            self.hidden_sets.append(hidden.repeat(g.frames).to(self.device))
        self.visible: torch.Tensor | None = None  # the scored mask's visible tokens

    @property
    def class_names(self) -> list[str]:
        return ["reconstruction"]

    @property
    def shares_prefix(self) -> bool:
        """Hidden tokens are chosen per row of the input's batch."""
        return not self.hidden_sets

    def feature_forward(self, pixels: torch.Tensor) -> torch.Tensor | None:
        """With nothing hidden the scored pass runs the encoder on every token, so the
        hooks read it there (one encoder pass, not two); with hidden tokens that pass
        sees only the visible ones, and the hooks get an encoder pass of their own."""
        if not self.hidden_sets:
            return self.outputs(pixels)
        self.model.videomae(pixel_values=pixels)
        return None

    def sequence_mask(self, mask: torch.Tensor) -> torch.Tensor:
        return mask if self.visible is None else mask[..., self.visible]

    def outputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """Negative mean squared reconstruction error of each clip: of every patch with
        nothing hidden, else of the hidden patches, averaged over the masks."""
        # A batch of one clip repeated (the masked scorers' batches) has one target.
        repeated = len(pixels) > 1 and pixels.stride(0) == 0
        target = self.patch_targets(pixels[:1] if repeated else pixels)
        target = target.expand(len(pixels), -1, -1)
        if not self.hidden_sets:
            model = self.model
            encoded = model.encoder_to_decoder(model.videomae(pixel_values=pixels)[0])
            position = model.position_embeddings.to(encoded.device, encoded.dtype)
            # Hugging Face's forward needs a hidden token (its loss indexes them): the
            # decoder is called directly, returning every token (return_token_num 0).
            error = target - model.decoder(encoded + position, 0).logits  # fp32
            squares = torch.linalg.vector_norm(error, dim=(1, 2)).square()
            return -(squares / error[0].numel())[:, None]
        errors = []
        try:
            for hidden in self.hidden_sets:
                self.visible = (~hidden).nonzero()[:, 0]
                masked = hidden.expand(len(pixels), -1)
                out = self.model(pixel_values=pixels, bool_masked_pos=masked).logits
                errors.append((out.float() - target[:, hidden]).pow(2).mean((1, 2)))
        finally:
            self.visible = None
        return -torch.stack(errors).mean(0)[:, None]

    def patch_targets(self, pixels: torch.Tensor) -> torch.Tensor:
        return patch_targets(self.config, pixels)


def patch_targets(config, pixels: torch.Tensor) -> torch.Tensor:
    """What the decoder is trained to output for each patch (B, N, tubelet*p*p*3).

    Hugging Face computes these inside ``forward`` and returns only a batch-mean
    loss; CRIS needs one score per row, so they are rebuilt here the same way: pixels
    back in [0, 1] with ImageNet statistics, cut into tubelets, channels last, and
    normalised per patch when the model was trained with ``norm_pix_loss``.
    """
    c = config
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

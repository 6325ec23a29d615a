"""Random-weight checkpoints of every supported family, saved the way a download is.

Used by the tests (``tiny``: every family takes 4 frames of 32x32 pixels in 8-pixel
patches, 2 layers of 4 heads of width 8) and the benchmarks (``base``: ViT-B sized,
12 layers of 12 heads of width 64, each family at its usual clip size). Loading one
back goes through exactly the code a user's checkpoint does.

``initializer_range=0.2``: at Hugging Face's default of 0.02 a random model's output
barely depends on its attention (masking changes it by less than 1e-4), which would
hide masking bugs in tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import transformers

from videoconcepts.plan.families import FAMILIES

Size = Literal["tiny", "base"]
CLASSES = ("moves_left", "moves_right", "stops")
LABELS = {"id2label": dict(enumerate(CLASSES)), "label2id": {c: i for i, c in enumerate(CLASSES)}}
ENCODERS: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "initializer_range": 0.2,
    },
    "base": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "initializer_range": 0.2,
    },
}
# (frames, pixels, patch) per family and size; tiny is the same small clip for all.
CLIPS = {
    "videomae": (16, 224, 16),
    "videomae_pretraining": (16, 224, 16),
    "timesformer": (8, 224, 16),
    "vivit": (32, 224, 16),
    "xclip": (8, 224, 32),
    "vjepa2": (16, 256, 16),
    "dinov2": (16, 224, 14),
}


def _videomae(size: Size, clip: tuple[int, int, int], pretraining: bool):
    frames, pixels, patch = clip
    common = {"image_size": pixels, "patch_size": patch, "num_frames": frames, "tubelet_size": 2}
    if pretraining:
        tiny = size == "tiny"
        config = transformers.VideoMAEConfig(
            **common,
            **ENCODERS[size],
            decoder_hidden_size=16 if tiny else 384,
            decoder_num_hidden_layers=1 if tiny else 4,
            decoder_num_attention_heads=2 if tiny else 6,
            decoder_intermediate_size=32 if tiny else 1536,
            norm_pix_loss=True,
        )
        return transformers.VideoMAEForPreTraining(config)
    config = transformers.VideoMAEConfig(**common, **ENCODERS[size], **LABELS)
    return transformers.VideoMAEForVideoClassification(config)


def _timesformer(size: Size, clip: tuple[int, int, int]):
    frames, pixels, patch = clip
    config = transformers.TimesformerConfig(
        image_size=pixels, patch_size=patch, num_frames=frames, **ENCODERS[size], **LABELS
    )
    return transformers.TimesformerForVideoClassification(config)


def _vivit(size: Size, clip: tuple[int, int, int]):
    frames, pixels, patch = clip
    config = transformers.VivitConfig(
        image_size=pixels,
        num_frames=frames,
        tubelet_size=[2, patch, patch],
        **ENCODERS[size],
        **LABELS,
    )
    return transformers.VivitForVideoClassification(config)


def _vjepa2(size: Size, clip: tuple[int, int, int]):
    frames, pixels, patch = clip
    encoder = {k: v for k, v in ENCODERS[size].items() if k != "intermediate_size"}
    tiny = size == "tiny"
    config = transformers.VJEPA2Config(
        crop_size=pixels,
        patch_size=patch,
        frames_per_clip=frames,
        tubelet_size=2,
        mlp_ratio=2.0 if tiny else 4.0,
        pred_hidden_size=16 if tiny else 384,
        pred_num_hidden_layers=1 if tiny else 4,
        pred_num_attention_heads=2 if tiny else 12,
        num_pooler_layers=1 if tiny else 3,
        **encoder,
        **LABELS,
    )
    return transformers.VJEPA2ForVideoClassification(config)


def _xclip(size: Size, clip: tuple[int, int, int], path: Path):
    frames, pixels, patch = clip
    # A character-level CLIP tokenizer: enough to give every class name its own text.
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in "abcdefghijklmnopqrstuvwxyz_":
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    transformers.CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(path)
    tiny = size == "tiny"
    projection = 16 if tiny else 512
    encoder = ENCODERS[size]
    text = {**encoder, "vocab_size": len(vocab), "max_position_embeddings": 32}
    if not tiny:  # CLIP's text tower is narrower than its vision tower
        text.update(hidden_size=512, num_attention_heads=8, intermediate_size=2048)
    vision = {
        **encoder,
        "image_size": pixels,
        "patch_size": patch,
        "num_frames": frames,
        "mit_hidden_size": projection,  # the MIT runs on projected embeddings
        "mit_intermediate_size": 2 * projection if tiny else 4 * projection,
        "mit_num_hidden_layers": 1,
        "mit_num_attention_heads": 2 if tiny else 8,
    }
    config = transformers.XCLIPConfig(
        text_config=text,
        vision_config=vision,
        projection_dim=projection,
        prompt_layers=1 if tiny else 2,
        prompt_attention_heads=2 if tiny else 8,
        initializer_range=0.2,
    )
    return transformers.XCLIPModel(config)


# The clip a frame-by-frame family's model section names (``frames``, ``size``), per
# size: an image checkpoint does not fix it.
FRAME_BY_FRAME_OPTIONS: dict[Size, dict[str, int]] = {
    "tiny": {"frames": 4, "size": 32},
    "base": {"frames": 16, "size": 224},
}


def model_options(family: str, size: Size = "tiny") -> dict[str, int]:
    """What a model section adds to a random ``family`` checkpoint of ``size`` to take
    its usual clip (only frame-by-frame families need anything)."""
    return dict(FRAME_BY_FRAME_OPTIONS[size]) if FAMILIES[family].frame_by_frame else {}


def _dinov2(size: Size, clip: tuple[int, int, int]):
    """An image model: the clip's frames and side are the model section's, not its own."""
    _, pixels, patch = clip
    config = transformers.Dinov2Config(
        **ENCODERS[size], image_size=pixels, patch_size=patch, layerscale_value=1.0
    )
    return transformers.Dinov2Model(config)


def save_random(family: str, path: Path, size: Size = "tiny") -> Path:
    """Build a random ``family`` model of ``size`` and ``save_pretrained`` it to ``path``."""
    torch.manual_seed(0)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    clip = (4, 32, 8) if size == "tiny" else CLIPS[family]
    builders = {
        "videomae": lambda: _videomae(size, clip, False),
        "videomae_pretraining": lambda: _videomae(size, clip, True),
        "timesformer": lambda: _timesformer(size, clip),
        "vivit": lambda: _vivit(size, clip),
        "vjepa2": lambda: _vjepa2(size, clip),
        "xclip": lambda: _xclip(size, clip, path),
        "dinov2": lambda: _dinov2(size, clip),
    }
    builders[family]().save_pretrained(path)
    return path


@torch.no_grad()
def randomise_weights(model: torch.nn.Module, seed: int, std: float = 0.02) -> torch.nn.Module:
    """Redraw every weight of ``model`` in place (the random-weights control of an
    analysis): modules with ``reset_parameters`` (linear, convolution, normalisation
    layers) reset to PyTorch's initialisation, any other parameter (class tokens,
    learned position embeddings) drawn from N(0, std^2). Hugging Face's own
    ``_init_weights`` skips modules it marks as loaded, so it cannot do this."""
    torch.manual_seed(seed)
    reset = set()
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
            reset.update(id(p) for p in module.parameters(recurse=False))
    for parameter in model.parameters():
        if id(parameter) not in reset:
            parameter.normal_(0.0, std)
    return model

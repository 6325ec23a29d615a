"""Tiny random checkpoints of every supported family, saved the way a download is.

Every family gets the same small video: 4 frames of 32x32 pixels, 8-pixel patches, 2
layers of 4 heads of width 8. ``initializer_range=0.2``: at Hugging Face's default of
0.02 a random model's output barely depends on its attention (masking changes it by
less than 1e-4), which would hide masking bugs.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers

SIZE, PATCH, FRAMES, CLASSES = 32, 8, 4, ("moves_left", "moves_right", "stops")
ENCODER = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "initializer_range": 0.2,
}
LABELS = {"id2label": dict(enumerate(CLASSES)), "label2id": {c: i for i, c in enumerate(CLASSES)}}


def _videomae(pretraining: bool) -> transformers.PreTrainedModel:
    common = {"image_size": SIZE, "patch_size": PATCH, "num_frames": FRAMES, "tubelet_size": 2}
    if pretraining:
        config = transformers.VideoMAEConfig(
            **common,
            **ENCODER,
            decoder_hidden_size=16,
            decoder_num_hidden_layers=1,
            decoder_num_attention_heads=2,
            decoder_intermediate_size=32,
            norm_pix_loss=True,
        )
        return transformers.VideoMAEForPreTraining(config)
    config = transformers.VideoMAEConfig(**common, **ENCODER, **LABELS)
    return transformers.VideoMAEForVideoClassification(config)


def _timesformer() -> transformers.PreTrainedModel:
    config = transformers.TimesformerConfig(
        image_size=SIZE, patch_size=PATCH, num_frames=FRAMES, **ENCODER, **LABELS
    )
    return transformers.TimesformerForVideoClassification(config)


def _vivit() -> transformers.PreTrainedModel:
    config = transformers.VivitConfig(
        image_size=SIZE, num_frames=FRAMES, tubelet_size=[2, PATCH, PATCH], **ENCODER, **LABELS
    )
    return transformers.VivitForVideoClassification(config)


def _vjepa2() -> transformers.PreTrainedModel:
    encoder = {k: v for k, v in ENCODER.items() if k != "intermediate_size"}
    config = transformers.VJEPA2Config(
        crop_size=SIZE,
        patch_size=PATCH,
        frames_per_clip=FRAMES,
        tubelet_size=2,
        mlp_ratio=2.0,
        pred_hidden_size=16,
        pred_num_hidden_layers=1,
        pred_num_attention_heads=2,
        num_pooler_layers=1,
        **encoder,
        **LABELS,
    )
    return transformers.VJEPA2ForVideoClassification(config)


def _xclip(path: Path) -> transformers.PreTrainedModel:
    # A character-level CLIP tokenizer: enough to give every class name its own text.
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in "abcdefghijklmnopqrstuvwxyz_":
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    transformers.CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(path)
    text = {**ENCODER, "vocab_size": len(vocab), "max_position_embeddings": 32}
    vision = {
        **ENCODER,
        "image_size": SIZE,
        "patch_size": PATCH,
        "num_frames": FRAMES,
        "mit_hidden_size": 16,  # the MIT runs on projected embeddings
        "mit_intermediate_size": 32,
        "mit_num_hidden_layers": 1,
        "mit_num_attention_heads": 2,
    }
    config = transformers.XCLIPConfig(
        text_config=text,
        vision_config=vision,
        projection_dim=16,
        prompt_layers=1,
        prompt_attention_heads=2,
        initializer_range=0.2,
    )
    return transformers.XCLIPModel(config)


def save_tiny(family: str, path: Path) -> Path:
    """Build a random ``family`` model and ``save_pretrained`` it to ``path``."""
    torch.manual_seed(0)
    path.mkdir(parents=True, exist_ok=True)
    builders = {
        "videomae": lambda: _videomae(False),
        "videomae_pretraining": lambda: _videomae(True),
        "timesformer": _timesformer,
        "vivit": _vivit,
        "vjepa2": _vjepa2,
        "xclip": lambda: _xclip(path),
    }
    builders[family]().save_pretrained(path)
    return path

"""Train the demo model: a small ``VideoMAEForVideoClassification`` on synthetic events.

Reproduces the weights shipped in ``videoconcepts/demo/weights`` (seeded; bit-exact
results need the same torch build and thread count):

    videoconcepts train_demo_model --out src/videoconcepts/demo/weights --threads 2
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

from videoconcepts.demo.synthetic import EVENTS, generate_dataset
from videoconcepts.methods.decoding import DecodeSettings, decode_clip, resolve_backend
from videoconcepts.models.videomae import VideoMAEAdapter
from videoconcepts.plan.checkpoints import IMAGENET_MEAN, IMAGENET_STD

LEARNING_RATE = 1e-3
CLIP = DecodeSettings(num_frames=16, frame_stride=2, clip_start="center", size=64, sampling="index")


def demo_config() -> VideoMAEConfig:
    """64 px, 16 frames, 8 px patches, 2-frame tubelets: an 8x8x8 token grid, 4 layers x 4 heads."""
    return VideoMAEConfig(
        image_size=CLIP.size,
        patch_size=8,
        num_frames=CLIP.num_frames,
        tubelet_size=2,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=256,
        use_mean_pooling=True,
        # At the default 0.02 this small model sits at chance for hundreds of steps: its
        # mean-pooled tokens barely depend on where the target is. A wider init gives the
        # MLPs position-content interactions from the start; it trains in a few hundred steps.
        initializer_range=0.2,
        num_labels=len(EVENTS),
        id2label=dict(enumerate(EVENTS)),
        label2id={event: i for i, event in enumerate(EVENTS)},
    )


def load_split(root: Path, videos_per_event: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate, encode to H.264, and decode a split exactly as the pipeline will."""
    table = generate_dataset(root, videos_per_event=videos_per_event, seed=seed)
    clips = [
        decode_clip(root / path, CLIP, resolve_backend("auto")).frames
        for path in tqdm(table["path"], "decode")
    ]
    labels = [EVENTS.index(label) for label in table["label"]]
    return torch.from_numpy(np.stack(clips)), torch.tensor(labels)


def accuracy(adapter: VideoMAEAdapter, clips: torch.Tensor, labels: torch.Tensor) -> float:
    adapter.model.eval()
    predictions = torch.cat([adapter.logits(batch).argmax(1) for batch in clips.split(32)])
    return float((predictions == labels).float().mean())


def train(
    out: Path, seed: int, train_per_event: int, val_per_event: int, epochs: int, batch: int
) -> dict:
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as work:
        train_x, train_y = load_split(Path(work) / "train", train_per_event, seed)
        val_x, val_y = load_split(Path(work) / "val", val_per_event, seed + 1)
    model = VideoMAEForVideoClassification(demo_config())
    adapter = VideoMAEAdapter(model, IMAGENET_MEAN, IMAGENET_STD)
    optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.05)
    steps = epochs * -(-len(train_x) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=LEARNING_RATE, total_steps=steps, pct_start=0.1
    )
    generator = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        losses = []
        for idx in tqdm(order.split(batch), f"epoch {epoch + 1}/{epochs}", leave=False):
            loss = model(pixel_values=adapter.preprocess(train_x[idx]), labels=train_y[idx]).loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
        val_acc = accuracy(adapter, val_x, val_y)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_acc": val_acc})
        tqdm.write(f"epoch {epoch + 1}: loss {history[-1]['loss']:.3f} val acc {val_acc:.3f}")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor = {"image_mean": list(IMAGENET_MEAN), "image_std": list(IMAGENET_STD)}
    (out / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    report = {
        "seed": seed,
        "train_videos": len(train_x),
        "val_videos": len(val_x),
        "val_seed": seed + 1,
        "val_accuracy": history[-1]["val_acc"],
        "history": history,
    }
    (out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    return report

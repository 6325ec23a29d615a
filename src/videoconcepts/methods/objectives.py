"""Target metrics for importance: how well a (masked) model output does on a video.

Every metric maps the model's output for a batch (the adapter's ``outputs``: class
logits, text similarities or reconstruction scores, (B, columns)) and the target column
of each row (B,) to one score per row, where higher is better; that is why ``loss``
scores the negative cross-entropy. Families declare which metrics apply to them
(:mod:`videoconcepts.plan.families`); importance code only ever calls :func:`get_metric`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
METRICS: dict[str, Metric] = {}


def register_metric(name: str) -> Callable[[Metric], Metric]:
    def register(fn: Metric) -> Metric:
        METRICS[name] = fn
        return fn

    return register


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r} (known: {', '.join(sorted(METRICS))})")
    return METRICS[name]


@register_metric("correctness")
def correctness(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 where the target class is the top prediction, else 0."""
    return (logits.argmax(-1) == target).float()


@register_metric("prob")
def probability(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return logits.float().softmax(-1).gather(-1, target[:, None])[:, 0]


@register_metric("logit")
def target_column(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The target's column of the outputs: its logit for classifiers, and for video-text
    models (registered again as ``similarity``) the cosine similarity between the video
    and the target's text."""
    return outputs.float().gather(-1, target[:, None])[:, 0]


register_metric("similarity")(target_column)


@register_metric("reconstruction")
def reconstruction(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Self-supervised VideoMAE: its output is already the negative reconstruction loss."""
    return scores.float()[:, 0]


@register_metric("straightness")
def straightness(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Frame-by-frame image models (DINOv2): the output is already minus the curvature of
    the clip's path through the CLS embedding."""
    return scores.float()[:, 0]


@register_metric("loss")
def negative_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative cross-entropy, so that higher is better like every other metric."""
    return -F.cross_entropy(logits.float(), target, reduction="none")


def resolve_targets(
    target: str | int,
    labels: Sequence[str],
    predicted: Sequence[int],
    class_names: Sequence[str],
    video_ids: Sequence[str],
) -> list[int]:
    """Target class index per video.

    ``target`` is ``"label"`` (the sample sheet's label, required), ``"predicted"`` (the
    model's own unmasked prediction), ``"auto"`` (label where given, else predicted),
    one fixed class given by name or index, or ``"none"`` for models without classes.
    """
    if target == "none":
        return [0] * len(video_ids)
    index = {name: i for i, name in enumerate(class_names)}

    def from_label(video_id: str, label: str) -> int:
        if label in index:
            return index[label]
        if label.isdigit() and int(label) < len(class_names):
            return int(label)
        raise ValueError(
            f"video {video_id}: label {label!r} is not a class of the model "
            f"(classes: {', '.join(class_names[:10])}{', ...' if len(class_names) > 10 else ''})"
        )

    if target in ("label", "auto"):
        missing = [v for v, label in zip(video_ids, labels, strict=True) if not label]
        if target == "label" and missing:
            raise ValueError(
                f"masking.target is 'label' but {len(missing)} videos have no label "
                f"(e.g. {missing[0]}); add a label column to the sample sheet or set "
                "masking.target to 'predicted', 'auto' or a class name"
            )
        return [
            from_label(v, label) if label else int(p)
            for v, label, p in zip(video_ids, labels, predicted, strict=True)
        ]
    if target == "predicted":
        return [int(p) for p in predicted]
    return [from_label("(all)", str(target))] * len(video_ids)

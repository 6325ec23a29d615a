"""The model families we support, as facts read from a checkpoint's ``config.json``.

No torch here: the Snakefile resolves the model at parse time, so a wrong family, a
missing checkpoint or an unsupported input size fails before any job runs. The
adapters that run the models live in :mod:`videoconcepts.models`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from videoconcepts.plan.checkpoints import TOKENIZER, WEIGHTS, read_model_config, require_files


@dataclass(frozen=True)
class Family:
    """What one family is: how to recognise its checkpoints and what it scores.

    ``config_path`` is where the vision encoder's settings sit in ``config.json``
    (X-CLIP nests them under ``vision_config``); ``frames_key``/``size_key`` name its
    clip length and input side there.
    """

    name: str
    model_type: str
    architecture: str
    metrics: tuple[str, ...]
    has_classes: bool = True
    config_path: tuple[str, ...] = ()
    frames_key: str = "num_frames"
    size_key: str = "image_size"
    attention: tuple[str, ...] = ()
    compactness: float = 0.1
    # An image model run on every frame alone: the clip length and input side are the
    # model section's (``frames``, ``size``), not the checkpoint's.
    frame_by_frame: bool = False

    @property
    def default_metric(self) -> str:
        return self.metrics[0]

    def vision_config(self, config: dict[str, Any]) -> dict[str, Any]:
        for key in self.config_path:
            config = config[key]
        return config


CLASSIFIER_METRICS = ("correctness", "prob", "logit", "loss")

# SLIC compactness: VTCD's 0.1 for every family; feature scales differ, so
# `tubelets.compactness` overrides it per run.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("videomae", "videomae", "VideoMAEForVideoClassification", CLASSIFIER_METRICS),
        Family(
            "videomae_pretraining",
            "videomae",
            "VideoMAEForPreTraining",
            ("reconstruction",),
            has_classes=False,
        ),
        Family(
            "timesformer",
            "timesformer",
            "TimesformerForVideoClassification",
            CLASSIFIER_METRICS,
            attention=("spatial", "temporal"),
        ),
        Family("vivit", "vivit", "VivitForVideoClassification", CLASSIFIER_METRICS),
        Family(
            "xclip",
            "xclip",
            "XCLIPModel",
            ("similarity", "correctness"),
            config_path=("vision_config",),
        ),
        Family(
            "vjepa2",
            "vjepa2",
            "VJEPA2ForVideoClassification",
            CLASSIFIER_METRICS,
            frames_key="frames_per_clip",
            size_key="crop_size",
        ),
        Family(
            "dinov2",
            "dinov2",
            "Dinov2Model",
            ("straightness",),
            has_classes=False,
            frame_by_frame=True,
        ),
    )
}
# A frame-by-frame model's clip when the model section names none: 16 frames of
# 224 x 224 pixels (ReStraV's DINOv2 input side; it takes 24 frames over 2 s, which is
# `frames: 24` with `decode: {sampling: time, window: 2}`).
FRAME_BY_FRAME_CLIP = {"frames": 16, "size": 224}


def detect_family(config: dict[str, Any]) -> Family:
    """The family of a checkpoint from its ``model_type`` and saved architecture."""
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    for family in FAMILIES.values():
        if family.model_type == model_type and family.architecture in architectures:
            return family
    known = ", ".join(f"{f.name} ({f.architecture})" for f in FAMILIES.values())
    raise ValueError(
        f"model_type {model_type!r} with architectures {architectures} has no adapter; "
        f"supported: {known}"
    )


def resolve_family(checkpoint: str, family: str | None) -> Family:
    """The checkpoint's family, checked against the one the config names (if any)."""
    try:
        detected = detect_family(read_model_config(checkpoint))
    except ValueError as err:
        raise ValueError(f"checkpoint {checkpoint!r}: {err}") from None
    if family is not None and family != detected.name:
        raise ValueError(
            f"model.family is {family!r} but checkpoint {checkpoint!r} is a {detected.name} "
            f"model ({detected.architecture}); set model.family to {detected.name!r} or "
            "leave it unset"
        )
    return detected


def class_names(spec: ModelSpec) -> list[str]:
    """Names of the classes a model scores: the checkpoint's ``id2label``, or
    ``model.classes`` for video-text models; empty for models without classes."""
    if spec.classes is not None:
        return list(spec.classes)
    if not FAMILIES[spec.family].has_classes:
        return []
    id2label = read_model_config(spec.checkpoint).get("id2label") or {}
    return [str(id2label[key]) for key in sorted(id2label, key=int)]


def model_facts(model: dict[str, Any]) -> dict[str, Any]:
    """Family, layer count, clip length and input side of a model section's checkpoint
    (a frame-by-frame model's clip from the section, its defaults filled in)."""
    config = read_model_config(model["checkpoint"])
    family = detect_family(config)
    vision = family.vision_config(config)
    if family.frame_by_frame:
        frames = model.get("frames") or FRAME_BY_FRAME_CLIP["frames"]
        size = model.get("size") or FRAME_BY_FRAME_CLIP["size"]
        patch = int(vision["patch_size"])
        if size % patch:
            raise ValueError(
                f"model.size {size} is not a multiple of the {family.name} model's patch "
                f"size {patch}"
            )
    else:
        frames, size = int(vision[family.frames_key]), int(vision[family.size_key])
    return {
        "family": family.name,
        "num_layers": int(vision["num_hidden_layers"]),
        "num_frames": int(frames),
        "size": int(size),
        "compactness": family.compactness,
    }


@dataclass(frozen=True)
class ModelSpec:
    """Everything that picks and configures the model; stages load it with this."""

    checkpoint: str
    family: str
    attention: str | None = None
    classes: list[str] | None = None
    reconstruction_mask_ratio: float | None = None
    reconstruction_masks: int | None = None
    frames: int | None = None  # frame-by-frame families: frames per clip
    size: int | None = None  # frame-by-frame families: input side in pixels


# Scored with nothing hidden (the reference code's way): on the demo's self-supervised
# VideoMAE its attribution curves separate 2.7x more and its ranking is steadier than
# under one or four seeded 90% tube masks (docs/ARCHITECTURE.md, "Masking and scoring").
RECONSTRUCTION_MASK_RATIO = 0.0
RECONSTRUCTION_MASKS = 1


def resolve_model(model: dict[str, Any], labels: list[str] | None = None) -> ModelSpec:
    """The config's ``model`` section checked against the checkpoint, defaults filled in.

    ``labels`` are the sample sheet's labels: a video-text model scores them as its
    class names unless ``model.classes`` lists them.
    """
    checkpoint = model["checkpoint"]
    family = resolve_family(checkpoint, model.get("family"))
    require_files(checkpoint, "weights", WEIGHTS)
    if family.name == "xclip":
        require_files(checkpoint, "tokenizer for the class names", TOKENIZER)
    attention, classes = model.get("attention"), model.get("classes")
    ratio = model.get("reconstruction_mask_ratio")
    n_masks = model.get("reconstruction_masks")
    if family.attention:
        attention = attention or family.attention[0]
        if attention not in family.attention:
            raise ValueError(
                f"model.attention {attention!r} is not one of {family.name}'s "
                f"attentions ({', '.join(family.attention)})"
            )
    elif attention is not None:
        raise ValueError(f"model.attention only applies to timesformer, not {family.name}")
    if family.name == "xclip":
        classes = classes or sorted({label for label in labels or [] if label})
        if not classes:
            raise ValueError(
                "model.classes is needed for xclip (the text the videos are scored against): "
                "list the class names, or give the sample sheet a label column"
            )
    elif classes is not None:
        raise ValueError(
            f"model.classes only applies to video-text models (xclip); {family.name} "
            "takes its class names from the checkpoint"
        )
    if family.name == "videomae_pretraining":
        ratio = RECONSTRUCTION_MASK_RATIO if ratio is None else ratio
        n_masks = RECONSTRUCTION_MASKS if n_masks is None else n_masks
        if ratio == 0 and n_masks != 1:
            raise ValueError(
                f"reconstruction_masks is {n_masks} but reconstruction_mask_ratio is 0: "
                "with nothing hidden there is one way to score, leave reconstruction_masks unset"
            )
    else:
        for key, value in (("reconstruction_mask_ratio", ratio), ("reconstruction_masks", n_masks)):
            if value is not None:
                raise ValueError(
                    f"model.{key} only applies to videomae_pretraining, not {family.name}"
                )
    frames, size = model.get("frames"), model.get("size")
    if family.frame_by_frame:
        facts = model_facts(model)
        frames, size = facts["num_frames"], facts["size"]
    else:
        for key, value in (("frames", frames), ("size", size)):
            if value is not None:
                raise ValueError(
                    f"model.{key} only applies to frame-by-frame image models (dinov2); "
                    f"{family.name} takes its clip from the checkpoint"
                )
    return ModelSpec(checkpoint, family.name, attention, classes, ratio, n_masks, frames, size)

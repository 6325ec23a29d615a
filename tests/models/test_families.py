"""Every model family, from a tiny random checkpoint saved to disk and loaded back through
the code a user runs: token layout, masking in both modes, outputs and the workflow."""

from __future__ import annotations

import re
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import transformers
import yaml
from helpers import REPO, messages, planned, run_snakemake, write_config
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from videoconcepts.demo.synthetic import write_mp4
from videoconcepts.methods.pruning import pruning_flops
from videoconcepts.models import load_adapter
from videoconcepts.models.dinov2 import negative_curvature
from videoconcepts.models.masking import TokenMasker
from videoconcepts.models.random_checkpoints import CLASSES, model_options, save_random
from videoconcepts.models.scorer import MaskingSettings, MaskScorer
from videoconcepts.plan.checkpoints import MissingCheckpointError
from videoconcepts.plan.families import FAMILIES, resolve_model
from videoconcepts.stages.connectome import concept_objective, lower_gradients, score_objective
from videoconcepts.stores.features import open_features


def adapter_for(checkpoint, **model) -> object:
    spec = resolve_model({"checkpoint": str(checkpoint), **model}, list(CLASSES))
    return load_adapter(spec, "cpu")


@pytest.fixture(scope="module")
def family_adapter(family_checkpoint):
    family, path = family_checkpoint
    return family, adapter_for(path, **model_options(family))


def clips(adapter, n: int = 2, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    shape = (n, adapter.num_frames, adapter.image_size, adapter.image_size, 3)
    return torch.from_numpy(rng.integers(0, 256, shape, dtype=np.uint8))


def test_capture_has_the_grid_shapes_and_leaves_outputs_unchanged(family_adapter):
    family, adapter = family_adapter
    assert adapter.family == family
    frames = clips(adapter)
    captured = adapter.capture(frames, kinds=("keys", "queries", "values"))
    g = adapter.grid
    heads = (2, adapter.num_layers, adapter.num_heads, g.frames, g.height, g.width, 8)
    assert all(tuple(t.shape) == heads for t in captured.heads.values())
    assert tuple(captured.residual.shape) == (2, 2, g.frames, g.height, g.width, 32)
    assert captured.logits.shape == (2, len(adapter.class_names))
    assert torch.equal(captured.logits, adapter.logits(frames))


def changed_positions(adapter, kind: str, layer: int = 0) -> set[tuple[int, int, int]]:
    """Grid positions whose ``kind`` at ``layer`` changes when one 8x8 patch of frame 2
    (row 1, column 2) changes."""
    frames = clips(adapter, 1)
    edited = frames.clone()
    edited[0, 2, 8:16, 16:24] = 255 - edited[0, 2, 8:16, 16:24]
    kinds = () if kind == "residual" else (kind,)
    before, after = (
        adapter.capture(f, [layer], kinds, kind == "residual") for f in (frames, edited)
    )
    a = before.residual if kind == "residual" else before.heads[kind]
    b = after.residual if kind == "residual" else after.heads[kind]
    diff = (a - b).abs().flatten(start_dim=a.dim() - 4 + (kind == "residual"))
    diff = diff.reshape(*a.shape[: a.dim() - 4 + (kind == "residual")], -1)
    if kind != "residual":
        diff = diff.amax(2)  # over heads
    diff = diff.reshape(adapter.grid.frames, adapter.grid.height, adapter.grid.width, -1)
    return {tuple(map(int, p)) for p in torch.nonzero(diff.amax(-1) > 1e-6)}


def test_patch_tokens_follow_the_token_grid(family_adapter):
    """Layer 0 keys are a per-token function of the input, so editing one patch moves
    exactly that grid position: this pins each family's token order and special tokens."""
    family, adapter = family_adapter
    t = 2 * adapter.grid.frames // adapter.num_frames  # frame 2 -> its tubelet
    expected = {(t, 1, 2)}
    if family == "timesformer":  # spatial keys come after temporal attention over frames
        expected = {(f, 1, 2) for f in range(adapter.grid.frames)}
    assert changed_positions(adapter, "keys") == expected


def test_timesformer_temporal_attention_and_residual_layout(tmp_path):
    adapter = adapter_for(save_random("timesformer", tmp_path), attention="temporal")
    # temporal attention sees each token before any mixing
    assert changed_positions(adapter, "keys") == {(2, 1, 2)}
    # the residual stream holds CLS then patches in (H', W', T) order; ours is T'H'W'
    frames = clips(adapter, 1)
    residual = adapter.capture(frames, [1], ()).residual[0, 0]
    with torch.inference_mode():
        out = adapter.model(pixel_values=adapter.preprocess(frames), output_hidden_states=True)
    stream = out.hidden_states[2][0]
    for t, h, w in [(0, 0, 1), (3, 1, 2), (2, 3, 0)]:
        assert torch.equal(residual[t, h, w], stream[1 + (h * 4 + w) * 4 + t])


@pytest.mark.parametrize("mode", ["zero", "remove"])
def test_masking_changes_outputs_and_an_empty_mask_does_not(family_adapter, mode):
    _, adapter = family_adapter
    frames = clips(adapter)
    plain = adapter.logits(frames)
    masks = torch.zeros(2, adapter.num_layers, adapter.num_heads, adapter.grid.size, dtype=bool)
    with TokenMasker(adapter, range(adapter.num_layers), mode) as masker:
        masker.set(masks)
        assert torch.equal(adapter.logits(frames), plain)
        masks[:, :, :2, ::2] = True  # half the tokens of two heads
        masks[:, :, 2] = True  # every token of a third
        masker.set(masks)
        masked = adapter.logits(frames)
    assert (masked - plain).abs().max() > 1e-4
    assert torch.equal(adapter.logits(frames), plain)  # hooks are gone


def probe(adapter, kind: str, layer: int, frames: torch.Tensor, masks) -> torch.Tensor:
    """Raw output of ``layer``'s ``kind`` projection in the scored forward, with masks
    applied in zero mode (the probe hook runs after the masker's)."""
    seen = {}
    with TokenMasker(adapter, [layer], "zero", kind) as masker:
        masker.set(masks)
        handle = adapter.projection(layer, kind).register_forward_hook(
            lambda _m, _i, out: seen.setdefault("raw", out)
        )
        try:
            adapter.logits(frames)
        finally:
            handle.remove()
    return seen["raw"]


def test_zero_mode_zeroes_exactly_the_masked_tokens_and_heads(family_adapter, family_checkpoint):
    family, adapter = family_adapter
    if family == "videomae_pretraining":  # scored under a tube mask: the hidden layout
        adapter = adapter_for(family_checkpoint[1], reconstruction_mask_ratio=0.9)
    frames = clips(adapter, 1)
    g = torch.Generator().manual_seed(1)
    masks = torch.rand(1, 1, adapter.num_heads, adapter.grid.size, generator=g) < 0.5
    raw = probe(adapter, "keys", 1, frames, masks)
    plain = probe(adapter, "keys", 1, frames, None)
    if family == "videomae_pretraining":  # the encoder sees only the visible tokens
        keys = raw.unflatten(-1, (adapter.num_heads, -1))[0]
        expected = masks[0, 0][:, ~adapter.hidden_sets[0]].T
    else:
        keys = adapter.patch_tokens(raw, "keys", 1).unflatten(-1, (adapter.num_heads, -1))[0]
        expected = masks[0, 0].T
    zeroed = (keys == 0).all(-1)
    assert torch.equal(zeroed, expected)
    if adapter.fused_qkv:  # queries and values of the fused projection are untouched
        q_v = raw.unflatten(-1, (3, -1))[..., 1:, :]
        assert torch.equal(q_v, plain.unflatten(-1, (3, -1))[..., 1:, :])


@pytest.mark.parametrize("family", ["timesformer", "xclip", "dinov2"])
def test_remove_mode_stays_inside_each_frames_attention(family, tmp_path):
    """Per-frame attention: removing tokens of frame 1 changes that layer's output in
    frame 1 only (the key bias is laid out per frame sequence)."""
    adapter = adapter_for(save_random(family, tmp_path), **model_options(family))
    frames = clips(adapter, 1)
    masks = torch.zeros(1, 1, adapter.num_heads, adapter.grid.size, dtype=bool)
    per_frame = adapter.grid.height * adapter.grid.width
    masks[..., per_frame : per_frame + 5] = True  # five tokens of frame 1, every head
    plain = adapter.capture(frames, [1], ()).residual
    with TokenMasker(adapter, [1], "remove") as masker:
        masker.set(masks)
        masked = adapter.capture(frames, [1], ()).residual
    change = (masked - plain).abs()[0, 0].flatten(1).amax(1)  # per frame
    assert change[1] > 1e-3
    assert change[[0, 2, 3]].max() < 1e-5


def perturbed(adapter, seed: int = 0):
    """The adapter with 0.05 N(0, 1) added to every weight: tiny random models have zero
    biases and exactly zero vectors (ViViT's CLS value at layer 0) that hide bugs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for weight in adapter.model.parameters():
            weight.add_(0.05 * torch.randn(weight.shape, generator=g))
    return adapter


def head_contexts(adapter, layer: int, masks: torch.Tensor) -> torch.Tensor:
    """max |.| of each head's attention output entering ``layer``'s output projection,
    (rows, heads) over every row the module sees, under ``remove`` masks."""
    seen = {}
    module = adapter.output_projection(layer)
    handle = module.register_forward_pre_hook(lambda _m, inputs: seen.setdefault("x", inputs[0]))
    try:
        with TokenMasker(adapter, [layer], "remove") as masker:
            masker.set(masks)
            adapter.logits(clips(adapter, 1))
    finally:
        handle.remove()
    context = seen["x"].float().unflatten(-1, (adapter.num_heads, adapter.head_dim))
    assert torch.isfinite(context).all()
    return context.abs().amax(-1).flatten(0, -2)


def test_remove_mode_on_every_token_of_a_head_zeroes_its_output(family_checkpoint):
    """A pruned head outputs exactly zero, CLS and message tokens included, while a head
    with one frame's tokens removed still attends to what is left (CLS at least)."""
    family, path = family_checkpoint
    adapter = perturbed(adapter_for(path, **model_options(family)))  # its own copy
    layer, pruned, partial = 1, 2, 1
    masks = torch.zeros(1, 1, adapter.num_heads, adapter.grid.size, dtype=bool)
    masks[0, 0, pruned] = True
    masks[0, 0, partial, : adapter.grid.height * adapter.grid.width] = True  # frame 0
    heads = head_contexts(adapter, layer, masks)
    assert (heads[:, pruned] == 0).all(), heads[:, pruned].max()
    others = [h for h in range(adapter.num_heads) if h != pruned]
    assert (heads[:, others] > 1e-4).all()


def test_pretraining_scores_each_clip_by_its_reconstruction_loss(tmp_path):
    adapter = adapter_for(
        save_random("videomae_pretraining", tmp_path), reconstruction_mask_ratio=0.9
    )
    frames = clips(adapter, 2)
    scores = adapter.logits(frames)[:, 0]
    assert scores.shape == (2,) and (scores < 0).all() and scores[0] != scores[1]
    # each row equals Hugging Face's own loss for that clip alone
    pixels = adapter.preprocess(frames)
    (hidden,) = adapter.hidden_sets
    with torch.inference_mode():
        for i in range(2):
            loss = adapter.model(pixel_values=pixels[i : i + 1], bool_masked_pos=hidden[None]).loss
            assert scores[i].item() == pytest.approx(-loss.item(), rel=1e-5)
    assert hidden.float().mean() == pytest.approx(14 / 16)  # 0.9 of 16 columns


def test_pretraining_scores_with_nothing_hidden_or_averaged_over_masks(tmp_path):
    """Ratio 0: every patch reconstructed from an encoder that sees every token, so
    masking any token moves the score; several masks: the mean of each mask's score."""
    path = save_random("videomae_pretraining", tmp_path)
    frames = clips(adapter_for(path), 2)
    full = perturbed(adapter_for(path))  # the default: nothing hidden
    assert full.hidden_sets == [] and full.flop_count().head  # one forward, every token
    plain = full.logits(frames)[:, 0]
    assert plain.shape == (2,) and (plain < 0).all()
    masks = torch.zeros(1, 1, full.num_heads, full.grid.size, dtype=bool)
    masks[..., :3] = True  # three tokens, every head of layer 1: hidden ones if masked
    with TokenMasker(full, [1], "remove") as masker:
        masker.set(masks)
        assert (full.logits(frames)[:, 0] - plain).abs().min() > 1e-6
    three = perturbed(adapter_for(path, reconstruction_mask_ratio=0.9, reconstruction_masks=3))
    assert len(three.hidden_sets) == 3 and not torch.equal(*three.hidden_sets[:2])
    averaged = three.logits(frames)[:, 0]
    singles = []
    for hidden in list(three.hidden_sets):
        three.hidden_sets = [hidden]
        singles.append(three.logits(frames)[:, 0])
    assert averaged == pytest.approx(torch.stack(singles).mean(0), rel=1e-5)
    assert len({round(float(s[0]), 6) for s in singles}) == 3  # each mask its own score
    with pytest.raises(
        ValueError, match="reconstruction_masks is 2 but reconstruction_mask_ratio is 0"
    ):
        resolve_model(
            {"checkpoint": str(path), "reconstruction_mask_ratio": 0, "reconstruction_masks": 2}
        )
    with pytest.raises(
        ValueError, match="reconstruction_masks only applies to videomae_pretraining"
    ):
        resolve_model(
            {"checkpoint": str(save_random("videomae", tmp_path / "v")), "reconstruction_masks": 2}
        )


def test_family_problems_are_clear_errors(tmp_path):
    videomae = save_random("videomae", tmp_path / "videomae")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((videomae / "config.json").read_text())
    with pytest.raises(MissingCheckpointError, match="no weights found"):
        resolve_model({"checkpoint": str(partial)})
    xclip = save_random("xclip", tmp_path / "xclip")
    (xclip / "tokenizer.json").unlink()
    with pytest.raises(MissingCheckpointError, match="no tokenizer for the class names"):
        resolve_model({"checkpoint": str(xclip), "classes": ["a"]})
    with pytest.raises(ValueError, match="model.family is 'vivit' but .* is a videomae model"):
        resolve_model({"checkpoint": str(videomae), "family": "vivit"})
    with pytest.raises(ValueError, match="model.attention only applies to timesformer"):
        resolve_model({"checkpoint": str(videomae), "attention": "temporal"})
    with pytest.raises(ValueError, match="model.classes only applies to video-text"):
        resolve_model({"checkpoint": str(videomae), "classes": ["a"]})
    with pytest.raises(ValueError, match="model.classes is needed for xclip"):
        resolve_model({"checkpoint": str(save_random("xclip", tmp_path / "xclip2"))}, ["", ""])
    encoder = tmp_path / "vjepa2_encoder"
    vjepa2 = transformers.VJEPA2Config(
        crop_size=32, patch_size=8, frames_per_clip=4, hidden_size=32, num_hidden_layers=1
    )
    transformers.VJEPA2Model(vjepa2).save_pretrained(encoder)
    with pytest.raises(ValueError, match="has no adapter.*vjepa2 \\(VJEPA2ForVideoClassification"):
        resolve_model({"checkpoint": str(encoder)})


def family_model(family: str, root: Path) -> dict:
    """A model section for a saved tiny checkpoint of ``family``, with its metric."""
    checkpoint = save_random(family, root / "checkpoints" / family)
    metric = "logit" if FAMILIES[family].default_metric == "correctness" else None
    return {
        "checkpoint": str(checkpoint),
        "family": family,
        **model_options(family),
        # a continuous metric: 8 masks rarely flip a random classifier's top class
        "masking": {"metric": metric},
    }


@pytest.fixture(scope="module")
def family_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One run of decode to the CRIS gather with a saved tiny checkpoint of every family
    as its models, on three short labelled videos: one Snakemake and one job server for
    all (seven runs paid seven start-ups), ``--keep-going`` so one family's failure does
    not hide the others'."""
    workdir = tmp_path_factory.mktemp("families")
    (workdir / "clips").mkdir()
    rows = ["path\tlabel"]
    for i, label in enumerate(CLASSES):
        rng = np.random.default_rng(zlib.crc32(label.encode()))
        frames = rng.integers(0, 256, (10, 40, 48, 3), dtype=np.uint8)
        frames[:, 8 + 4 * i : 24 + 4 * i, 10:30] = 255  # a bright block, placed per video
        write_mp4(workdir / "clips" / f"{label}.mp4", frames, fps=10)
        rows.append(f"clips/{label}.mp4\t{label}")
    (workdir / "samples.tsv").write_text("\n".join(rows) + "\n")
    write_config(
        workdir,
        samples=str(workdir / "samples.tsv"),
        models={family: family_model(family, workdir) for family in sorted(FAMILIES)},
        decode={"frame_stride": 2},
        features={"layers": [1], "videos_per_job": 3},
        tubelets={"n_segments": 4},
        concepts={"max_concepts": 3, "max_iter": 50},
        cris={"num_masks": 8, "shards": 1},
        masking={"masks_per_batch": 4},
        connectome={"enabled": False},  # one analysed layer, and the run stops before it
    )
    return workdir, run_snakemake(workdir, "--until", "cris_gather", "--keep-going", check=False)


@pytest.mark.integration
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_runs_through_the_workflow(family, family_run):
    """decode, features, tubelets, concepts, units and a few CRIS masks from a saved
    checkpoint directory, on three short labelled videos."""
    workdir, run = family_run
    failed = f"snakemake failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    shards = list((workdir / "results/features").glob(f"{family}-*/shard-000.zarr"))
    assert len(shards) == 1, failed
    store = open_features(shards[0])
    assert store.attrs["family"] == family
    assert store.attrs["settings"]["model"]["family"] == family
    tables = list((workdir / "results/cris_gather").glob(f"{family}-*/*/concept_importance.tsv"))
    assert len(tables) == 1, failed
    importance = pd.read_csv(tables[0], sep="\t")
    assert len(importance) > 0 and importance["importance"].notna().all()
    assert set(importance["layer"]) == {1}
    assert (importance["importance"].abs() <= 1 + 1e-9).all() or family == "videomae_pretraining"
    assert importance["stderr"].gt(0).any()  # the masks moved the family's metric


EXAMPLES = sorted((REPO / "config" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_configs_plan_a_full_run(example, tmp_path, video_dir):
    """Each example, with its hub checkpoint swapped for a tiny saved one of the same
    family and the samples for a local sheet, validates and plans every stage."""
    settings = yaml.safe_load(example.read_text())
    labels = list(CLASSES)
    for name, model in settings["models"].items():
        model["checkpoint"] = str(save_random(model["family"], tmp_path / name))
        model.update(model_options(model["family"]))
        labels = model.get("classes") or labels
    rows = [f"{video_dir / 'wide.mp4'}\tv{i}\t{label}" for i, label in enumerate(labels[:2])]
    (tmp_path / "samples.tsv").write_text("path\tid\tlabel\n" + "\n".join(rows) + "\n")
    settings["samples"] = str(tmp_path / "samples.tsv")
    if "detector" in settings:  # a detection sheet: two natural videos, two generated
        detector = settings["detector"]
        rows = [f"{video_dir / 'wide.mp4'}\tv{i}\t{detector['natural']}" for i in range(2)]
        rows += [f"{video_dir / 'short.mp4'}\tfake{i}\tgenerated" for i in range(2)]
        detector["folds"] = 2
        (tmp_path / "detection.tsv").write_text(
            f"path\tid\t{detector['column']}\n" + "\n".join(rows) + "\n"
        )
        detector["samples"] = str(tmp_path / "detection.tsv")
    settings.setdefault("features", {})["layers"] = [0, 1]  # the tiny model has two
    if settings.get("masking", {}).get("target") not in (None, "auto", "label"):
        settings["masking"]["target"] = CLASSES[0]  # a class the tiny model has
    write_config(tmp_path, **settings)
    plan = planned(tmp_path)
    assert {"features", "tubelets", "concepts", "cris", "connectome", "report"} <= plan.keys()
    # one shard per model, and one of the detection sheet's other videos
    assert plan["features"] == len(settings["models"]) * (1 + ("detector" in settings))
    assert plan.get("rosetta", 0) == (len(settings["models"]) > 1)


def test_a_hub_checkpoint_that_is_not_downloaded_says_how_to_get_it(tmp_path, video_dir):
    (tmp_path / "samples.tsv").write_text(f"path\n{video_dir / 'wide.mp4'}\n")
    write_config(
        tmp_path,
        samples=str(tmp_path / "samples.tsv"),
        models={"m": {"checkpoint": "MCG-NJU/videomae-base-finetuned-ssv2"}},
    )
    result = run_snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0
    assert "hf download MCG-NJU/videomae-base-finetuned-ssv2" in messages(result)


@pytest.mark.parametrize(
    ("masking", "error"),
    [
        ({"target": "flying"}, r"masking.target \['flying'\] are not classes of the model"),
        ({"metric": "similarity"}, "masking.metric 'similarity' does not apply to videomae"),
    ],
)
def test_targets_and_metrics_the_model_cannot_score_stop_the_plan(
    masking, error, tmp_path, tiny_checkpoint, video_dir
):
    (tmp_path / "samples.tsv").write_text(f"path\tlabel\n{video_dir / 'wide.mp4'}\tmoves_left\n")
    write_config(
        tmp_path,
        samples=str(tmp_path / "samples.tsv"),
        models={"m": {"checkpoint": str(tiny_checkpoint)}},
        masking=masking,
    )
    result = run_snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0
    assert re.search(error, messages(result)), messages(result)[-2000:]


def test_flops_follow_each_familys_attention_pattern(tmp_path):
    """Per-head FLOPs (2 per multiply-add): projections over the tokens the attention
    sees plus the (query, key) products of the attention actually run (divided, per
    frame or over visible tokens)."""
    dh, d = 8, 32
    expected = {
        # family: (tokens through the projections, (query, key) pairs per head)
        "videomae": (32, 32**2),
        "vivit": (33, 33**2),  # CLS + 32 tubelets
        "timesformer": (64 + 4, 4 * 17**2),  # spatial: 4 frames of CLS + 16 patches
        "xclip": (4 * 18, 4 * 18**2),  # per frame: CLS, 16 patches, message token
        "videomae_pretraining": (32, 32**2),  # scored with nothing hidden (the default)
    }
    for family, (n, pairs) in expected.items():
        adapter = adapter_for(save_random(family, tmp_path / family))
        head = adapter.flop_count().head
        assert head == (2 * (4 * n * d * dh + 2 * pairs * dh),) * adapter.num_layers


# The module holding every head's projections, products and output, per layer.
ATTENTION_BLOCKS = {
    "videomae": "attention",
    "videomae_pretraining": "attention",
    "timesformer": "attention",  # the spatial one; its temporal attention is not pruned
    "vivit": "attention",
    "xclip": "self_attn",
    "vjepa2": "attention",
    "dinov2": "attention",
}


def test_flop_count_is_the_counters_and_pruning_saves_the_attention_share(family_adapter):
    """The total is FlopCounterMode's on one scored forward pass (X-CLIP's text encoder,
    MIT and prompts, TimeSformer's temporal attention included); pruning every head saves
    exactly the counted share of the masked attention blocks."""
    family, adapter = family_adapter
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        adapter.logits(clips(adapter, 1))
    flops = adapter.flop_count()
    assert flops.total == counter.get_total_flops()
    # keyed by the outermost module called and the path below it (the model's, or its
    # encoder's where self-supervised VideoMAE calls its parts)
    counts = {k.partition(".")[2]: sum(v.values()) for k, v in counter.get_flop_counts().items()}

    def block(path: str) -> int:
        (found,) = [n for k, n in counts.items() if k and (path == k or path.endswith("." + k))]
        return found

    attention = sum(
        block(f"{adapter.layers_path}.{layer}.{ATTENTION_BLOCKS[family]}")
        for layer in range(adapter.num_layers)
    )
    assert 0 < attention < flops.total
    units = adapter.num_layers * adapter.num_heads
    masks = np.zeros((3, units), bool)
    masks[1, :3] = True
    masks[2] = True
    columns = pruning_flops(flops, masks)
    np.testing.assert_allclose(
        columns["model_flops_saved"],
        [0, 3 / units * attention / flops.total, attention / flops.total],
    )
    np.testing.assert_allclose(columns["attention_flops_saved"], [0, 3 / units, 1])
    np.testing.assert_allclose(
        columns["gmacs_per_clip"][[0, 2]], np.array([flops.total, flops.total - attention]) / 2e9
    )


@pytest.mark.parametrize("mode", ["zero", "remove"])
def test_bf16_autocast_path_masks_like_fp32(family_adapter, mode, monkeypatch):
    """bf16 precision (autocast, on CUDA and on CPUs with native bf16): hooks, the key
    bias and the outputs cope with bf16 projections; results stay near fp32's."""
    _, adapter = family_adapter
    frames = clips(adapter)
    masks = torch.zeros(2, adapter.num_layers, adapter.num_heads, adapter.grid.size, dtype=bool)
    masks[:, :, :2] = True  # two whole heads: dead in `remove` mode

    def masked() -> torch.Tensor:
        with TokenMasker(adapter, range(adapter.num_layers), mode) as masker:
            masker.set(masks)
            return adapter.logits(frames)

    fp32 = masked()
    monkeypatch.setattr(adapter, "precision", torch.bfloat16)
    bf16 = masked()
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    scale = fp32.abs().max().clamp(min=1)
    assert (bf16 - fp32).abs().max() / scale < 0.1
    assert adapter.capture(frames).heads["keys"].dtype == torch.float32


def test_a_frame_by_frame_model_scores_the_straightness_of_its_cls_path(tmp_path):
    """DINOv2 runs each frame alone: its score is minus the curvature of the clip's CLS
    path (0 for a straight path, -90 for right-angled turns), every frame's tokens are
    its own, and its clip comes from the model section, not the checkpoint."""
    line = torch.arange(5.0)[None, :, None] * torch.tensor([1.0, 2.0])
    zigzag = torch.tensor([[[0.0, 0], [1, 0], [1, 1], [2, 1], [2, 2]]])
    assert torch.allclose(negative_curvature(line), torch.zeros(1), atol=0.05)  # arccos near 1
    assert torch.allclose(negative_curvature(zigzag), torch.tensor([-90.0]))
    path = save_random("dinov2", tmp_path / "dinov2")
    adapter = adapter_for(path, frames=5, size=24)
    g = adapter.grid
    assert (adapter.num_frames, adapter.image_size, g.frames, g.height, g.width) == (5, 24, 5, 3, 3)
    frames = clips(adapter, 2)
    score = adapter.logits(frames)
    assert score.shape == (2, 1) and (score <= 0).all() and (score >= -180).all()
    still = frames[:, :1].expand_as(frames).contiguous()  # one frame held: no steps at all
    edited = frames.clone()
    edited[0, 3] = 255 - edited[0, 3]  # frame 3 only
    captured = [adapter.capture(f, [0], (), True).residual[0, 0] for f in (frames, edited)]
    moved = (captured[0] - captured[1]).abs().flatten(1).amax(1)
    assert moved[3] > 1e-3 and moved[[0, 1, 2, 4]].max() == 0  # frames never mix
    assert torch.allclose(adapter.logits(still), torch.full((1,), -90.0), atol=1e-3)
    with pytest.raises(ValueError, match="model.size 30 is not a multiple of .* patch size 8"):
        adapter_for(path, size=30)
    with pytest.raises(ValueError, match="model.frames only applies to frame-by-frame"):
        adapter_for(save_random("vivit", tmp_path / "vivit"), frames=8)


def shifted_stream(adapter, layer: int, shift: torch.Tensor):
    """A hook adding ``shift`` to every token of the residual stream after ``layer``."""

    def hook(_module, _inputs, output):
        if isinstance(output, tuple):
            return (output[0] + shift, *output[1:])
        return output + shift

    return adapter.block(layer).register_forward_hook(hook)


def test_connectome_gradients_are_the_derivative_along_a_shift_of_the_stream(family_adapter):
    """ITCAV's and TCAV's gradients (summed over a clip's tokens) against central
    differences of the objective when every token of the stream moves along one
    direction; at the last block too, which a CLS readout sees through its CLS alone."""
    family, adapter = family_adapter
    frames = clips(adapter, 2).numpy()
    g = torch.Generator().manual_seed(2)
    direction = torch.randn(adapter.hidden_size, generator=g)
    metric = "logit" if FAMILIES[family].has_classes else FAMILIES[family].default_metric
    masks = (torch.rand(2, adapter.grid.size, generator=g) < 0.5).float()
    masks[:, 0] = 1
    centres = torch.randn(2, adapter.hidden_size, generator=g)
    cases = [
        (0, concept_objective(adapter, 1, masks, centres)),
        (adapter.num_layers - 1, score_objective(adapter, metric, torch.zeros(2, dtype=int))),
    ]
    for lower, objective in cases:
        grads = lower_gradients(adapter, frames, lower, objective, 2)
        eps = 1e-2
        for k in range(2):
            values = []
            for sign in (1, -1):
                handle = shifted_stream(adapter, lower, sign * eps * direction)
                try:
                    with torch.no_grad():
                        pixels = adapter.preprocess(torch.from_numpy(frames[k : k + 1]))
                        values.append(float(objective(pixels, torch.tensor([k]))))
                finally:
                    handle.remove()
            numeric = (values[0] - values[1]) / (2 * eps)
            analytic = float(grads[k] @ direction.numpy())
            assert analytic != 0, (family, lower)
            assert analytic == pytest.approx(numeric, rel=0.05, abs=1e-4), (family, lower)


@pytest.mark.parametrize("ratio", [0.0, 0.9])
def test_pretraining_scores_a_repeated_clip_as_the_clip_alone(tmp_path, ratio):
    """The masked scorers' batches repeat one clip (a stride-0 view): the target is built
    once for it, and every row still scores that clip, the same as a batch of copies."""
    adapter = adapter_for(
        save_random("videomae_pretraining", tmp_path), reconstruction_mask_ratio=ratio
    )
    pixels = adapter.preprocess(clips(adapter, 2))
    with torch.inference_mode():
        repeated = adapter.outputs(pixels[1:].expand(3, *pixels.shape[1:]))[:, 0]
        copies = adapter.outputs(pixels[1:].repeat(3, 1, 1, 1, 1))[:, 0]
        pair = adapter.outputs(pixels)[:, 0]
    torch.testing.assert_close(repeated, copies, rtol=1e-5, atol=1e-6)
    assert repeated[0].item() == pytest.approx(pair[1].item(), rel=1e-5)
    assert pair[0] != pair[1]  # the clips differ, so a target from the wrong clip shows


@pytest.mark.parametrize("mode", ["zero", "remove"])
def test_the_scorer_runs_the_layers_below_the_first_masked_one_once(
    family_adapter, mode, monkeypatch
):
    """Units in every layer, masked alone, in pairs and not at all: the scorer's outputs
    are those of the full batch run, and where the family shares the layers below a
    mask, the first layer sees one row for each batch whose masks start higher up."""
    family, adapter = family_adapter
    n_layers, heads, n = adapter.num_layers, adapter.num_heads, adapter.grid.size
    tokens = np.full((n_layers, heads, n), -1)
    for layer in range(n_layers):  # units 2l and 2l+1: halves of two heads of layer l
        tokens[layer, layer % heads, : n // 2] = 2 * layer
        tokens[layer, (layer + 1) % heads, n // 2 :] = 2 * layer + 1
    single = np.eye(2 * n_layers, dtype=bool)
    masks = np.concatenate([single, single[1:] | single[-1], np.zeros((1, 2 * n_layers), bool)])
    settings = MaskingSettings(str(adapter.spec.checkpoint), mode, "keys", "logit", "auto")
    frames = clips(adapter, 1)[0].numpy()

    def run(masks: np.ndarray) -> tuple[torch.Tensor, int]:
        rows = []
        hook = adapter.block(0).register_forward_pre_hook(lambda m, a: rows.append(len(a[0])))
        try:
            with MaskScorer(adapter, range(n_layers), settings, batch_size=4) as scorer:
                return scorer.logits(frames, tokens, masks), sum(rows)
        finally:
            hook.remove()

    counted = np.concatenate([single, masks[-1:]])  # single units and the empty mask
    (shared, _), (_, shared_rows) = run(masks), run(counted)
    monkeypatch.setattr(type(adapter), "shares_prefix", False)
    (full, _), (_, full_rows) = run(masks), run(counted)
    torch.testing.assert_close(shared, full, atol=2e-5, rtol=1e-5)
    changed = (shared - shared[-1]).abs().amax(1)[:-1]  # against the unmasked clip
    # Zeroing keys barely moves a random model's attention logits above its first layer
    # (TimeSformer's last layer: by 1e-7); removing tokens moves every mask's output.
    assert (changed if mode == "remove" else changed[:2]).min() > 1e-5
    per_clip = full_rows // len(counted)  # sequences a clip (frames, for per-frame models)
    # Layer 0's rows: both units of layer 0 in one batch, then one row for each layer
    # above and one for the empty mask.
    assert shared_rows == (full_rows if family == "xclip" else per_clip * (n_layers + 2))

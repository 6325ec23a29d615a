import json

import pytest
import torch

from videoconcepts import devices
from videoconcepts.demo.synthetic import EVENTS
from videoconcepts.models import load_adapter
from videoconcepts.plan.checkpoints import DEMO_CHECKPOINTS, MissingCheckpointError
from videoconcepts.plan.families import model_facts


@pytest.fixture(scope="module")
def adapter(tiny_checkpoint):
    return load_adapter(str(tiny_checkpoint), device="cpu")


@pytest.fixture(scope="module")
def clips():
    return torch.randint(
        0, 256, (3, 4, 32, 32, 3), generator=torch.Generator().manual_seed(1), dtype=torch.uint8
    )


def test_capture_shapes(adapter, clips):
    captured = adapter.capture(clips, layers=[1, 0], kinds=["keys", "values"], residual=True)
    assert captured.logits.shape == (3, 3)
    assert set(captured.heads) == {"keys", "values"}
    assert captured.heads["keys"].shape == (3, 2, 4, 2, 4, 4, 8)  # B, L, heads, T', H', W', C
    assert captured.residual.shape == (3, 2, 2, 4, 4, 32)


def test_hooks_do_not_change_logits(adapter, clips):
    plain = adapter.logits(clips)
    captured = adapter.capture(clips, kinds=["keys", "queries", "values"], residual=True)
    assert torch.equal(captured.logits, plain)
    # and no hook is left behind on the model
    assert all(not m._forward_hooks for m in adapter.model.modules())


def test_captured_keys_match_the_models_own_key_projection(adapter, clips):
    """Keys on the grid equal the layer's key Linear applied to its normed input."""
    layer = adapter.model.videomae.encoder.layer[1]
    seen = {}
    handle = layer.attention.attention.register_forward_pre_hook(
        lambda _m, args: seen.setdefault("x", args[0])
    )
    captured = adapter.capture(clips, layers=[1], kinds=["keys"], residual=False)
    handle.remove()
    with torch.inference_mode():
        keys = layer.attention.attention.key(seen["x"])  # (B, N, heads*dim), tokens t-major
    token = 1 * 16 + 2 * 4 + 3  # t'=1, h'=2, w'=3 on the 2x4x4 grid
    head = 2
    expected = keys[:, token, head * 8 : (head + 1) * 8]
    torch.testing.assert_close(captured.heads["keys"][:, 0, head, 1, 2, 3], expected)


def test_batch_rows_are_independent(adapter, clips):
    whole = adapter.capture(clips, layers=[0], residual=False).heads["keys"]
    alone = adapter.capture(clips[1:2], layers=[0], residual=False).heads["keys"]
    torch.testing.assert_close(whole[1:2], alone, atol=1e-5, rtol=1e-5)


def test_wrong_clip_shape_and_layer_are_rejected(adapter):
    with pytest.raises(ValueError, match="expects clips of shape"):
        adapter.logits(torch.zeros(1, 4, 48, 48, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="out of range"):
        adapter.capture(torch.zeros(1, 4, 32, 32, 3, dtype=torch.uint8), layers=[2])


def test_demo_checkpoints_are_shipped_small_and_trained():
    """The three demo models: at most 10 MB together, the clips the demo decodes, the
    classifiers' classes the generator's events and >= 90% right on held-out videos, the
    self-supervised one reconstructing better than a decoder that ignores the context."""
    files = [p for d in DEMO_CHECKPOINTS.values() for p in d.iterdir()]
    assert sum(p.stat().st_size for p in files) <= 10 * 2**20
    expected = {
        "demo": ("videomae", 16, 48),
        "demo-timesformer": ("timesformer", 8, 48),
        "demo-videomae-ssl": ("videomae_pretraining", 16, 48),
    }
    for name, facts in expected.items():
        found = model_facts({"checkpoint": name})
        assert (found["family"], found["num_frames"], found["size"]) == facts
        training = json.loads((DEMO_CHECKPOINTS[name] / "training.json").read_text())
        if facts[0] == "videomae_pretraining":
            assert training["val_loss"] < 0.95 * training["val_loss_visible_mean"]
            assert training["history"][-1]["loss"] < training["history"][1]["loss"]
        else:
            assert training["val_accuracy"] >= 0.9
            assert load_adapter(name, device="cpu").class_names == list(EVENTS)


def test_missing_checkpoint_is_reported(tmp_path):
    with pytest.raises(MissingCheckpointError, match="does not exist"):
        load_adapter(str(tmp_path / "nope"))
    with pytest.raises(MissingCheckpointError, match="not in the Hugging Face cache"):
        load_adapter("someone/not-downloaded-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingCheckpointError, match="no config.json"):
        load_adapter(str(tmp_path / "empty"))


@pytest.mark.parametrize(
    ("precision", "device", "native", "expected"),
    [
        ("auto", "cpu", False, torch.float32),
        ("auto", "cpu", True, torch.bfloat16),
        ("auto", "cuda", False, torch.bfloat16),
        ("float32", "cuda", True, torch.float32),
        ("bfloat16", "cpu", False, torch.bfloat16),
    ],
)
def test_precision_rule(monkeypatch, precision, device, native, expected):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    assert devices.pick_precision(precision, torch.device(device)) == expected


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="float16"):
        devices.pick_precision("float16", torch.device("cpu"))


def test_bf16_adapter_runs_under_autocast_and_stays_near_fp32(tiny_checkpoint, clips, capsys):
    """The bf16 adapter's products run in bf16 (its keys differ from fp32's by rounding,
    not by more); the log line names the precision."""
    fp32 = load_adapter(str(tiny_checkpoint), "cpu", "float32")
    bf16 = load_adapter(str(tiny_checkpoint), "cpu", "bfloat16")
    assert "precision bfloat16" in capsys.readouterr().err
    exact, rounded = (a.capture(clips, layers=[1], residual=False) for a in (fp32, bf16))
    keys, keys_bf16 = exact.heads["keys"], rounded.heads["keys"]
    assert keys_bf16.dtype == torch.float32  # captures stay fp32 whatever the precision
    assert not torch.equal(keys, keys_bf16)
    torch.testing.assert_close(keys_bf16, keys, atol=0.05, rtol=0.05)
    assert torch.equal(exact.logits.argmax(1), rounded.logits.argmax(1))

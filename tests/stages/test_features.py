import numpy as np
import pytest
import torch
from helpers import defaults

from videoconcepts.methods.decoding import DecodeSettings
from videoconcepts.models import load_adapter
from videoconcepts.runtime import Runtime
from videoconcepts.stages.decode import write_decode_store
from videoconcepts.stages.features import FeatureSettings, write_feature_store
from videoconcepts.stores.decode import open_decoded
from videoconcepts.stores.features import open_features

CLIP = DecodeSettings(
    num_frames=4, frame_stride=3, clip_start="start", size=32, sampling="index", window=None
)
RUNTIME = Runtime("auto", None, 8, 1)


def features(model: str, **overrides) -> FeatureSettings:
    """The schema's feature settings (runtime options apart) for ``model``."""
    values = {**defaults("features"), "model": model, **overrides}
    runtime = ("batch_size", "device", "threads")
    return FeatureSettings(**{k: v for k, v in values.items() if k not in runtime})


@pytest.fixture(scope="module")
def decoded(video_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("decoded")
    stores = []
    for i, start in enumerate(["start", "center", 20]):
        settings = DecodeSettings(4, 3, start, 32, "index", None)
        stores.append(root / f"v{i}.zarr")
        write_decode_store(video_dir / "wide.mp4", stores[-1], f"v{i}", settings)
    (root / "bad.mp4").write_text("not a video")
    stores.append(root / "bad.zarr")
    write_decode_store(root / "bad.mp4", stores[-1], "bad", CLIP, on_bad_video="skip")
    return stores


def test_feature_store_layout_and_values(decoded, tiny_checkpoint, tmp_path):
    settings = features(str(tiny_checkpoint), layers=[0, 1], heads=["keys", "queries"])
    out = tmp_path / "shard.zarr"
    assert write_feature_store(decoded, out, settings, Runtime("auto", None, 2, 1)) == 3
    store = open_features(out)
    assert store.attrs["video_ids"] == ["v0", "v1", "v2"]
    assert store.attrs["skipped"][0]["id"] == "bad"
    assert store.attrs["grid"] == [2, 4, 4] and store.attrs["num_heads"] == 4
    assert store["keys"].shape == (3, 2, 4, 2, 4, 4, 8)
    assert store["keys"].chunks == (1, 1, 4, 2, 4, 4, 8)  # one chunk per (video, layer)
    assert store["residual"].shape == (3, 2, 2, 4, 4, 32)
    assert store["residual"].chunks == (1, 1, 2, 4, 4, 32)
    assert "values" not in store

    adapter = load_adapter(str(tiny_checkpoint), device="cpu")
    frames = torch.from_numpy(np.stack([open_decoded(s)["frames"][...] for s in decoded[:3]]))
    np.testing.assert_allclose(store["logits"][...], adapter.logits(frames).numpy(), atol=1e-6)
    # the last batch holds a single video: its keys match a capture of that clip alone
    alone = adapter.capture(frames[2:], layers=[1], kinds=["queries"], residual=False)
    np.testing.assert_allclose(
        store["queries"][2, 1], alone.heads["queries"][0, 0].numpy(), atol=1e-5
    )


def test_float16_storage(decoded, tiny_checkpoint, tmp_path):
    settings = features(str(tiny_checkpoint), dtype="float16", residual=False)
    write_feature_store(decoded[:1], tmp_path / "h.zarr", settings, RUNTIME)
    store = open_features(tmp_path / "h.zarr")
    assert store["keys"].dtype == np.float16 and "residual" not in store


def test_clip_shape_mismatch_names_the_store(decoded, tmp_path):
    with pytest.raises(ValueError, match=r"v0\.zarr: decoded clip has shape \(4, 32, 32, 3\)"):
        write_feature_store(decoded[:1], tmp_path / "x.zarr", features("demo"), RUNTIME)
    assert not (tmp_path / "x.zarr").exists()

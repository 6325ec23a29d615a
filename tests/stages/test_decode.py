import numpy as np
import pytest

from videoconcepts.methods.decoding import (
    BadVideoError,
    DecodeSettings,
    decode_clip,
    sample_indices,
)
from videoconcepts.stages.decode import sha256_of, write_decode_store
from videoconcepts.stores.decode import SkippedVideoError, decode_status, open_decoded

SETTINGS = DecodeSettings(num_frames=8, frame_stride=3, clip_start="center", size=32)


@pytest.mark.parametrize(
    ("start", "expected_first"), [("start", 0), ("center", 9), (5, 5), (18, 18)]
)
def test_sample_indices(start, expected_first):
    settings = DecodeSettings(num_frames=8, frame_stride=3, clip_start=start, size=32)
    idx = sample_indices(40, settings)
    np.testing.assert_array_equal(idx, expected_first + 3 * np.arange(8))


def test_sample_indices_too_short():
    with pytest.raises(ValueError, match="too few frames: 21"):
        sample_indices(21, SETTINGS)
    with pytest.raises(ValueError, match="clip_start=19"):
        sample_indices(40, DecodeSettings(8, 3, 19, 32))


def test_decode_samples_resizes_and_centre_crops(video_dir):
    clip = decode_clip(video_dir / "wide.mp4", SETTINGS)
    assert clip.frames.shape == (8, 32, 32, 3) and clip.frames.dtype == np.uint8
    assert clip.original_size == (48, 64)
    assert clip.resized_size == (32, 43)
    assert clip.crop_box == (0, 5, 32, 32)
    np.testing.assert_array_equal(clip.indices, 9 + 3 * np.arange(8))
    # red encodes the source frame index: sampled frames must follow the index map
    red = clip.frames[..., 0].mean(axis=(1, 2))
    np.testing.assert_allclose(red, clip.indices * 255 / 39, atol=6)
    # blue encodes the source column: the crop drops 5 of 43 resized columns on the left
    blue_left = clip.frames[0, :, 0, 2].mean()
    assert abs(blue_left - 5 / 42 * 255) < 12


def test_store_has_frames_chunked_per_frame_and_provenance(video_dir, tmp_path):
    out = tmp_path / "wide.zarr"
    assert write_decode_store(video_dir / "wide.mp4", out, "wide", SETTINGS) == "ok"
    group = open_decoded(out)
    assert group["frames"].shape == (8, 32, 32, 3)
    assert group["frames"].chunks == (1, 32, 32, 3)
    attrs = group.attrs
    assert attrs["source_sha256"] == sha256_of(video_dir / "wide.mp4")
    assert attrs["fps"] == pytest.approx(20)
    assert attrs["original_size"] == [48, 64]
    assert attrs["sampled_indices"] == list(range(9, 31, 3))
    assert attrs["settings"]["frame_stride"] == 3


def _bad_files(video_dir, tmp_path):
    data = (video_dir / "wide.mp4").read_bytes()
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbled.mp4").write_bytes(data[:2000] + bytes(len(data) - 2000))
    return {
        "empty.mp4": "empty file",
        "text.mp4": "not a readable video",
        "truncated.mp4": "corrupt or truncated|not a readable video",
        "garbled.mp4": "corrupt or truncated|not a readable video",
        "missing.mp4": "does not exist",
    }


def test_bad_files_fail_naming_file_and_reason_and_write_nothing(video_dir, tmp_path):
    for name, reason in _bad_files(video_dir, tmp_path).items():
        out = tmp_path / "out" / f"{name}.zarr"
        with pytest.raises(BadVideoError, match=reason) as err:
            write_decode_store(tmp_path / name, out, "x", SETTINGS)
        assert name in str(err.value)
        assert not out.exists()
    with pytest.raises(BadVideoError, match=r"short\.mp4: too few frames: 6"):
        write_decode_store(video_dir / "short.mp4", tmp_path / "s.zarr", "s", SETTINGS)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_skip_mode_records_reason_and_refuses_to_read_frames(video_dir, tmp_path):
    _bad_files(video_dir, tmp_path)
    out = tmp_path / "t.zarr"
    assert write_decode_store(tmp_path / "text.mp4", out, "t", SETTINGS, "skip") == "skipped"
    status = decode_status(out)
    assert status["status"] == "skipped" and "not a readable video" in status["reason"]
    with pytest.raises(SkippedVideoError, match="skipped"):
        open_decoded(out)

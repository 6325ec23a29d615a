import json
from dataclasses import asdict
from fractions import Fraction
from importlib.util import find_spec

import av
import numpy as np
import pytest

from videoconcepts.cli import run
from videoconcepts.demo.synthetic import write_mp4
from videoconcepts.methods.decoding import (
    BadVideoError,
    DecodeSettings,
    decode_clip,
    resolve_backend,
    sample_indices,
)
from videoconcepts.stages.decode import sha256_of, write_decode_store
from videoconcepts.stores.decode import SkippedVideoError, decode_status, open_decoded

SETTINGS = DecodeSettings(
    num_frames=8, frame_stride=3, clip_start="center", size=32, sampling="index", window=None
)
BACKENDS = [
    "pyav",
    pytest.param(
        "decord",
        marks=pytest.mark.skipif(not find_spec("decord"), reason="decord is not installed"),
    ),
]


@pytest.mark.parametrize(
    ("start", "expected_first"), [("start", 0), ("center", 9), (5, 5), (18, 18)]
)
def test_sample_indices(start, expected_first):
    settings = DecodeSettings(
        num_frames=8, frame_stride=3, clip_start=start, size=32, sampling="index", window=None
    )
    idx = sample_indices(40, settings)
    np.testing.assert_array_equal(idx, expected_first + 3 * np.arange(8))


def test_sample_indices_too_short():
    with pytest.raises(ValueError, match="too few frames: 21"):
        sample_indices(21, SETTINGS)
    with pytest.raises(ValueError, match="clip_start=19"):
        sample_indices(40, DecodeSettings(8, 3, 19, 32, "index", None))


@pytest.mark.parametrize("backend", BACKENDS)
def test_decode_samples_resizes_and_centre_crops(video_dir, backend):
    clip = decode_clip(video_dir / "wide.mp4", SETTINGS, backend)
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
    assert attrs["backend"] == ("decord" if find_spec("decord") else "pyav")
    np.testing.assert_allclose(attrs["sampled_times"], np.arange(9, 31, 3) / 20)


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


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_files_fail_naming_file_and_reason_and_write_nothing(video_dir, tmp_path, backend):
    for name, reason in _bad_files(video_dir, tmp_path).items():
        out = tmp_path / "out" / f"{name}.zarr"
        with pytest.raises(BadVideoError, match=reason) as err:
            write_decode_store(tmp_path / name, out, "x", SETTINGS, "fail", backend)
        assert name in str(err.value)
        assert not out.exists()
    with pytest.raises(BadVideoError, match=r"short\.mp4: too few frames: 6"):
        write_decode_store(
            video_dir / "short.mp4", tmp_path / "s.zarr", "s", SETTINGS, "fail", backend
        )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_skip_mode_records_reason_and_refuses_to_read_frames(video_dir, tmp_path):
    _bad_files(video_dir, tmp_path)
    out = tmp_path / "t.zarr"
    assert write_decode_store(tmp_path / "text.mp4", out, "t", SETTINGS, "skip") == "skipped"
    status = decode_status(out)
    assert status["status"] == "skipped" and "not a readable video" in status["reason"]
    with pytest.raises(SkippedVideoError, match="skipped"):
        open_decoded(out)


def test_the_command_writes_a_store_per_video_of_its_shard(video_dir, tmp_path, capsys):
    """One job decodes a shard: each video's store under its id, a bad one skipped (or,
    with on_bad_video fail, the job fails naming it after the stores before it)."""
    _bad_files(video_dir, tmp_path)
    settings = json.dumps(asdict(SETTINGS))
    wide, text = video_dir / "wide.mp4", tmp_path / "text.mp4"
    videos = [f"a={wide}", f"t={text}", f"b={wide}"]
    out = tmp_path / "shard-000"
    command = ["decode", "--out", str(out), "--settings", settings, "--backend", "pyav"]
    run([*command, "--on-bad-video", "skip", *videos])
    assert sorted(p.name for p in out.iterdir()) == ["a.zarr", "b.zarr", "t.zarr"]
    assert [decode_status(out / f"{v}.zarr")["status"] for v in "atb"] == ["ok", "skipped", "ok"]
    np.testing.assert_array_equal(
        open_decoded(out / "a.zarr")["frames"][...], open_decoded(out / "b.zarr")["frames"][...]
    )
    assert "decode: 100%" in capsys.readouterr().err  # progress in the job's log
    with pytest.raises(BadVideoError, match=r"text\.mp4: not a readable video"):
        run([*command, "--out", str(tmp_path / "failed"), "--on-bad-video", "fail", *videos])
    assert [p.name for p in (tmp_path / "failed").iterdir()] == ["a.zarr"]


def _encode(path, frames, codec, pix_fmt, pts, time_base):
    """Encode RGB frames with the given presentation timestamps (uneven ones: VFR)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.codec_context.time_base = time_base
        for rgb, t in zip(frames, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = t, time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _textured(n_frames, height, width, seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.integers(-40, 40, (n_frames, height, width, 3)).cumsum(axis=2) // 6 + 128
    return np.clip(noise, 0, 255).astype(np.uint8)


@pytest.mark.skipif(not find_spec("decord"), reason="decord is not installed")
def test_pyav_frames_equal_decords_across_codecs_sizes_and_resizing(video_dir, tmp_path):
    """The backend is a runtime option only because both give the same frames, bit for bit,
    when the clip is shrunk, enlarged or kept, on odd aspect ratios and several codecs."""
    frames = _textured(20, 72, 130)
    clips = [video_dir / "wide.mp4", tmp_path / "demo.mp4"]
    write_mp4(clips[1], _textured(24, 64, 64, seed=1), fps=24)
    for name, codec, pix_fmt in [
        ("h264_444.mp4", "libx264", "yuv444p"),
        ("mpeg4.avi", "mpeg4", "yuv420p"),
        ("vp9.webm", "libvpx-vp9", "yuv420p"),
        ("mjpeg.avi", "mjpeg", "yuvj420p"),
    ]:
        _encode(tmp_path / name, frames, codec, pix_fmt, range(20), Fraction(1, 24))
        clips.append(tmp_path / name)
    compared = 0
    for path in clips:
        for size in (32, 50, 96):
            settings = DecodeSettings(6, 3, "center", size, "index", None)
            pyav, decord = (decode_clip(path, settings, b) for b in ("pyav", "decord"))
            np.testing.assert_array_equal(pyav.frames, decord.frames, err_msg=f"{path} {size}")
            np.testing.assert_array_equal(pyav.indices, decord.indices)
            assert pyav.backend == "pyav" and decord.backend == "decord"
            compared += 1
    assert compared == 18


@pytest.mark.skipif(not find_spec("decord"), reason="decord is not installed")
@pytest.mark.parametrize("size", [48, 72])
def test_sizes_decord_cannot_give_are_decoded_by_pyav(tmp_path, size):
    """decord returns four channels at these widths and fails to copy them (dmlc/decord#336)
    on a sound video: the clip comes from PyAV, identical to asking PyAV, and says so."""
    import decord

    path = tmp_path / "demo.mp4"
    write_mp4(path, _textured(24, 64, 64, seed=2), fps=24)
    with pytest.raises(decord.DECORDError, match="size must exactly match"):
        decord.VideoReader(str(path), width=size, height=size).get_batch([0]).asnumpy()
    settings = DecodeSettings(8, 2, "center", size, "index", None)
    clip, pyav = (decode_clip(path, settings, b) for b in ("decord", "pyav"))
    assert clip.frames.shape == (8, size, size, 3) and clip.backend == "pyav"
    np.testing.assert_array_equal(clip.frames, pyav.frames)


def _vfr_video(path):
    """30 frames whose red channel is the frame index x 8; the first 20 are 1/40 s apart,
    the last 10 1/4 s apart (timestamps in 1/1000 s)."""
    pts = [25 * i for i in range(20)] + [475 + 250 * i for i in range(1, 11)]
    frames = np.zeros((30, 32, 32, 3), np.uint8)
    frames[..., 0] = (8 * np.arange(30))[:, None, None]
    _encode(path, frames, "libx264", "yuv420p", pts, Fraction(1, 1000))
    return np.array(pts) / 1000


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_sampling_takes_evenly_spaced_instants_of_a_vfr_video(tmp_path, backend):
    times = _vfr_video(tmp_path / "vfr.mp4")
    by_index = decode_clip(
        tmp_path / "vfr.mp4", DecodeSettings(8, 3, "start", 32, "index", None), backend
    )
    by_time = decode_clip(
        tmp_path / "vfr.mp4", DecodeSettings(8, 2, "start", 32, "time", None), backend
    )
    # by index: every third frame, uneven in time (0.075 s steps, then 0.525 s)
    np.testing.assert_array_equal(by_index.indices, 3 * np.arange(8))
    np.testing.assert_allclose(by_index.times, times[by_index.indices])
    assert np.ptp(np.diff(by_index.times)) > 0.4
    # by time: 2 frames of the average rate apart; the frame shown at each instant
    step = 2 / by_time.fps
    instants = times[0] + step * np.arange(8)
    expected = np.searchsorted(times, instants + 1e-9, side="right") - 1
    np.testing.assert_array_equal(by_time.indices, expected)
    np.testing.assert_allclose(by_time.times, times[expected])
    assert np.all(by_time.times <= instants + 1e-9)
    assert np.all(instants - by_time.times < np.diff(times, append=np.inf)[expected])
    # the frames are those frames: red encodes the source index
    red = by_time.frames[..., 0].mean(axis=(1, 2))
    np.testing.assert_allclose(red, 8 * expected, atol=3)
    assert len(set(by_time.indices.tolist())) < 8 < len(times)  # slow part: held frames repeat
    # a window: 8 instants spanning 2.1 s from the first frame, ReStraV's way
    window = decode_clip(
        tmp_path / "vfr.mp4", DecodeSettings(8, 2, "start", 32, "time", 2.1), backend
    )
    instants = times[0] + 0.3 * np.arange(8)
    np.testing.assert_array_equal(
        window.indices, np.searchsorted(times, instants + 1e-9, side="right") - 1
    )
    with pytest.raises(BadVideoError, match="too short: the clip spans 3.500 s"):
        decode_clip(tmp_path / "vfr.mp4", DecodeSettings(8, 2, "start", 32, "time", 3.5), backend)


@pytest.mark.parametrize("start", ["start", "center", 5])
def test_time_sampling_of_a_constant_frame_rate_is_index_sampling(video_dir, start):
    clips = [
        decode_clip(video_dir / "wide.mp4", DecodeSettings(8, 3, start, 32, s, None), "pyav")
        for s in ("index", "time", None)
    ]
    np.testing.assert_array_equal(clips[0].indices, clips[1].indices)
    np.testing.assert_array_equal(clips[0].frames, clips[1].frames)
    np.testing.assert_allclose(clips[1].times, clips[1].indices / 20)


def test_time_sampling_refuses_a_video_too_short_in_time(video_dir):
    # 40 frames at 20 fps: 1.95 s from the first frame to the last
    for start, message in [("start", "spans 2.100 s"), (30, "from 1.500 s"), (45, "clip_start=45")]:
        with pytest.raises(BadVideoError, match=message):
            decode_clip(
                video_dir / "wide.mp4", DecodeSettings(8, 6, start, 32, "time", None), "pyav"
            )


def test_auto_backend_is_decord_where_installed_else_pyav(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "decord" else real(name)
    )
    assert resolve_backend("auto") == "pyav"
    assert resolve_backend("pyav") == "pyav"
    with pytest.raises(RuntimeError, match="decord is not installed"):
        resolve_backend("decord")
    monkeypatch.setattr(importlib.util, "find_spec", real)
    if find_spec("decord"):
        assert resolve_backend("auto") == "decord"

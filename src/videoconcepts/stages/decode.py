"""decode: sample a clip the way the model expects and store it as uint8 frames."""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from videoconcepts.methods.decoding import (
    BadVideoError,
    DecodeSettings,
    decode_clip,
    resolve_backend,
)
from videoconcepts.runtime import typed_json
from videoconcepts.stores.base import atomic_store, write_array
from videoconcepts.stores.decode import KIND

HELP = "decode videos into frame stores, one per video"
Settings = DecodeSettings
OnBadVideo = Literal["fail", "skip"]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_decode_store(
    video: str | Path,
    out: str | Path,
    video_id: str,
    settings: DecodeSettings,
    on_bad_video: OnBadVideo = "fail",
    backend: str = "auto",
) -> str:
    """Decode ``video`` into the store ``out``; return ``"ok"`` or ``"skipped"``.

    ``backend`` (``auto``, ``decord`` or ``pyav``) is resolved here, on the machine that
    decodes, and recorded in the store.

    With ``on_bad_video="skip"`` a bad file yields a store holding no frames and the
    attributes ``status="skipped"`` and ``reason``; with ``"fail"`` the error propagates
    and nothing is written.
    """
    video = Path(video)
    provenance = {"video_id": video_id, "source_path": str(video.resolve())}
    try:
        clip = decode_clip(video, settings, resolve_backend(backend))
    except BadVideoError as err:
        if on_bad_video == "fail":
            raise
        with atomic_store(out, KIND, status="skipped", reason=err.reason, **provenance):
            pass
        return "skipped"
    with atomic_store(
        out,
        KIND,
        status="ok",
        **provenance,
        source_sha256=sha256_of(video),
        fps=clip.fps,
        original_size=list(clip.original_size),
        resized_size=list(clip.resized_size),
        crop_box=list(clip.crop_box),
        source_num_frames=clip.source_num_frames,
        sampled_indices=clip.indices.tolist(),
        sampled_times=clip.times.tolist(),
        backend=clip.backend,
        settings=asdict(settings),
    ) as group:
        write_array(group, "frames", clip.frames, chunks=(1, *clip.frames.shape[1:]))
    return "ok"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder: a store per video, ID.zarr")
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument("--on-bad-video", choices=["fail", "skip"], required=True)
    parser.add_argument("--backend", choices=["auto", "decord", "pyav"], required=True)
    parser.add_argument("videos", nargs="+", help="ID=path, one per video")


def run(args: argparse.Namespace) -> None:
    videos = [item.partition("=") for item in args.videos]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for video_id, _, path in tqdm(videos, desc="decode", mininterval=1.0):
        status = write_decode_store(
            path, out / f"{video_id}.zarr", video_id, args.settings, args.on_bad_video, args.backend
        )
        print(f"{video_id}: {status}", file=sys.stderr)

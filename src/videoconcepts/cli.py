"""Command line entry points the workflow rules call: ``videoconcepts <stage> ...``.

Each subcommand is a thin wrapper around one stage module; settings arrive as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd


def _decode(args: argparse.Namespace) -> None:
    from videoconcepts.decode import DecodeSettings, write_decode_store

    settings = DecodeSettings(**json.loads(args.settings))
    status = write_decode_store(args.video, args.out, args.id, settings, args.on_bad_video)
    print(f"{args.id}: {status}", file=sys.stderr)


def _skipped(args: argparse.Namespace) -> None:
    from videoconcepts.decode import decode_status

    table = pd.DataFrame([decode_status(store) for store in args.stores])
    table = table[table["status"] != "ok"].drop(columns="status")
    table.to_csv(args.out, sep="\t", index=False)
    print(f"{len(table)} of {len(args.stores)} videos skipped", file=sys.stderr)


def _features(args: argparse.Namespace) -> None:
    import torch

    from videoconcepts.features import FeatureSettings, write_feature_store

    torch.set_num_threads(args.threads)
    stored = json.loads(args.settings)
    stored.pop("videos_per_job")  # shapes the shards, handled by the workflow
    settings = FeatureSettings(**stored, batch_size=args.batch_size, device=args.device)
    count = write_feature_store(args.decode_stores, args.out, settings)
    print(f"features for {count} videos in {args.out}", file=sys.stderr)


def _tubelets(args: argparse.Namespace) -> None:
    from videoconcepts.proposals import ProposalSettings
    from videoconcepts.tubelets import write_tubelet_store

    settings = json.loads(args.settings)
    head_kind = settings.pop("head_kind")
    count = write_tubelet_store(
        args.features, args.layer, args.out, ProposalSettings(**settings), head_kind
    )
    print(f"{count} tubelets in {args.out}", file=sys.stderr)


def _concepts(args: argparse.Namespace) -> None:
    from videoconcepts.concepts import ConceptSettings, write_concept_store

    settings = ConceptSettings(**json.loads(args.settings))
    count = write_concept_store(args.tubelets, args.out, settings, args.device)
    print(f"{count} concepts in {args.out}", file=sys.stderr)


def _validate(args: argparse.Namespace) -> None:
    from videoconcepts.validation import validation_tables

    stores: dict[str, list[str]] = {}
    for item in args.concepts:
        method, _, path = item.partition("=")
        stores.setdefault(method, []).append(path)
    best, scores = validation_tables(stores, args.ground_truth, args.decode_dir)
    best.to_csv(args.out, sep="\t", index=False, float_format="%.4f")
    scores.to_csv(args.scores, sep="\t", index=False, float_format="%.4f")
    print(best.to_string(index=False), file=sys.stderr)


def _demo_data(args: argparse.Namespace) -> None:
    from videoconcepts.synthetic import generate_dataset

    table = generate_dataset(args.out, args.videos_per_event, args.seed, progress=True)
    print(f"{len(table)} demo videos in {args.out}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videoconcepts", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    decode = commands.add_parser("decode", help="decode one video into a frame store")
    decode.add_argument("--video", required=True)
    decode.add_argument("--id", required=True)
    decode.add_argument("--out", required=True)
    decode.add_argument("--settings", required=True, help="JSON DecodeSettings")
    decode.add_argument("--on-bad-video", choices=["fail", "skip"], default="fail")
    decode.set_defaults(run=_decode)

    skipped = commands.add_parser("skipped", help="table of videos the decode stage skipped")
    skipped.add_argument("--out", required=True)
    skipped.add_argument("stores", nargs="+")
    skipped.set_defaults(run=_skipped)

    features = commands.add_parser("features", help="capture features for a shard of videos")
    features.add_argument("--out", required=True)
    features.add_argument("--settings", required=True, help="JSON FeatureSettings")
    features.add_argument("--batch-size", type=int, default=8)
    features.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    features.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    features.add_argument("decode_stores", nargs="+")
    features.set_defaults(run=_features)

    tubelets = commands.add_parser("tubelets", help="tubelet proposals for one layer of a shard")
    tubelets.add_argument("--features", required=True)
    tubelets.add_argument("--layer", type=int, required=True, help="model layer (0-based)")
    tubelets.add_argument("--out", required=True)
    tubelets.add_argument("--settings", required=True, help="JSON ProposalSettings + head_kind")
    tubelets.set_defaults(run=_tubelets)

    concepts = commands.add_parser("concepts", help="Convex NMF concepts for one layer")
    concepts.add_argument("--out", required=True)
    concepts.add_argument("--settings", required=True, help="JSON ConceptSettings")
    concepts.add_argument("--device", default="auto")
    concepts.add_argument("tubelets", nargs="+", help="tubelet stores of every shard")
    concepts.set_defaults(run=_concepts)

    validate = commands.add_parser("validate", help="score concepts against ground truth")
    validate.add_argument("--ground-truth", required=True)
    validate.add_argument("--decode-dir", required=True)
    validate.add_argument("--out", required=True, help="best concept per method and role")
    validate.add_argument("--scores", required=True, help="every concept's score")
    validate.add_argument("concepts", nargs="+", help="METHOD=concept store, one per layer")
    validate.set_defaults(run=_validate)

    demo = commands.add_parser("demo-data", help="generate the synthetic demo videos")
    demo.add_argument("--out", required=True, type=Path)
    demo.add_argument("--videos-per-event", type=int, required=True)
    demo.add_argument("--seed", type=int, required=True)
    demo.set_defaults(run=_demo_data)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()

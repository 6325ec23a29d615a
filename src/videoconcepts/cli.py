"""Command line entry points the workflow rules call: ``videoconcepts <stage> ...``.

Each subcommand is a thin wrapper around one stage module; settings arrive as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from videoconcepts.stores import StoreError, write_table


def _decode(args: argparse.Namespace) -> None:
    from videoconcepts.decode import DecodeSettings, write_decode_store

    settings = DecodeSettings(**json.loads(args.settings))
    status = write_decode_store(args.video, args.out, args.id, settings, args.on_bad_video)
    print(f"{args.id}: {status}", file=sys.stderr)


def _skipped(args: argparse.Namespace) -> None:
    from videoconcepts.decode import decode_status

    table = pd.DataFrame([decode_status(store) for store in args.stores])
    table = table[table["status"] != "ok"].drop(columns="status")
    write_table(table, args.out)
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
    write_table(best, args.out, "%.4f")
    write_table(scores, args.scores, "%.4f")
    print(best.to_string(index=False), file=sys.stderr)


def _units(args: argparse.Namespace) -> None:
    from videoconcepts.concept_units import write_unit_store

    count = write_unit_store(args.concepts, args.out)
    print(f"{count} concept units in {args.out}", file=sys.stderr)


def _masking(args: argparse.Namespace):
    """The job's masking settings; also sets torch's CPU threads for the job."""
    import torch

    from videoconcepts.scoring import MaskingSettings

    torch.set_num_threads(args.threads)
    return MaskingSettings(**json.loads(args.masking))


def _cris(args: argparse.Namespace) -> None:
    from videoconcepts.importance import CrisSettings, write_cris_shard

    count = write_cris_shard(
        args.units,
        args.out,
        _masking(args),
        CrisSettings(**json.loads(args.settings)),
        args.shard,
        args.shards,
        args.samples,
        args.batch_size,
        args.device,
    )
    print(f"{count} masks scored in {args.out}", file=sys.stderr)


def _cris_gather(args: argparse.Namespace) -> None:
    from videoconcepts.importance import CrisSettings, gather_cris

    table, stability = gather_cris(
        args.units, args.shards, CrisSettings(**json.loads(args.settings))
    )
    write_table(table, args.importance, "%.6g")
    write_table(stability, args.stability, "%.4f")
    print(table.head(20).to_string(index=False), file=sys.stderr)
    print(stability.to_string(index=False), file=sys.stderr)


def _occlusion(args: argparse.Namespace) -> None:
    from videoconcepts.attribution import occlusion_table

    table = occlusion_table(args.units, _masking(args), args.samples, args.batch_size, args.device)
    write_table(table, args.out, "%.6g")
    print(table.head(20).to_string(index=False), file=sys.stderr)


def _curves(args: argparse.Namespace) -> None:
    from videoconcepts.attribution import curve_tables

    tables = dict(item.partition("=")[::2] for item in args.importance)
    curves, areas, checks = curve_tables(
        args.units,
        tables,
        _masking(args),
        json.loads(args.settings),
        args.samples,
        args.batch_size,
        args.device,
    )
    write_table(curves, args.curves, "%.6g")
    write_table(areas, args.fidelity, "%.6g")
    write_table(checks, args.checks, "%.6g")
    print(areas.to_string(index=False), file=sys.stderr)
    print(checks.to_string(index=False), file=sys.stderr)


def _heads(args: argparse.Namespace) -> None:
    from videoconcepts.heads import HeadSettings, head_importance

    table, curve = head_importance(
        args.decode_stores,
        _masking(args),
        HeadSettings(**json.loads(args.settings)),
        args.samples,
        args.batch_size,
        args.device,
    )
    write_table(table, args.importance, "%.6g")
    write_table(curve, args.pruning, "%.6g")
    print(table.to_string(index=False), file=sys.stderr)
    print(curve.to_string(index=False), file=sys.stderr)


def _report(args: argparse.Namespace) -> None:
    from videoconcepts.report import ReportInputs, ReportSettings, write_report

    inputs = ReportInputs(
        units=args.units,
        concept_stores=args.concepts,
        feature_stores=args.features,
        cris=args.cris,
        stability=args.stability,
        occlusion=args.occlusion,
        curves=args.curves,
        fidelity=args.fidelity,
        checks=args.checks,
        heads=args.heads,
        pruning=args.pruning,
        skipped=args.skipped,
        benchmarks=args.benchmarks,
        validation=args.validation,
    )
    settings = ReportSettings(**json.loads(args.settings))
    index = write_report(args.out, inputs, settings, json.loads(args.run_settings))
    print(f"report: {index}", file=sys.stderr)


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

    units = commands.add_parser("units", help="token masks of every concept (maskable units)")
    units.add_argument("--out", required=True)
    units.add_argument("concepts", nargs="+", help="concept stores, one per layer")
    units.set_defaults(run=_units)

    def masked_job(name: str, help: str) -> argparse.ArgumentParser:
        job = commands.add_parser(name, help=help)
        job.add_argument("--masking", required=True, help="JSON MaskingSettings")
        job.add_argument("--samples", default=None, help="sample sheet with labels")
        job.add_argument("--batch-size", type=int, default=32, help="masks per forward pass")
        job.add_argument("--device", default="auto")
        job.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
        return job

    cris = masked_job("cris", "score one shard of CRIS masks")
    cris.add_argument("--units", required=True)
    cris.add_argument("--out", required=True)
    cris.add_argument("--settings", required=True, help="JSON CrisSettings")
    cris.add_argument("--shard", type=int, required=True)
    cris.add_argument("--shards", type=int, required=True)
    cris.set_defaults(run=_cris)

    gather = commands.add_parser("cris-gather", help="reduce CRIS shards to importance")
    gather.add_argument("--units", required=True)
    gather.add_argument("--settings", required=True, help="JSON CrisSettings")
    gather.add_argument("--importance", required=True)
    gather.add_argument("--stability", required=True)
    gather.add_argument("shards", nargs="+")
    gather.set_defaults(run=_cris_gather)

    occlusion = masked_job("occlusion", "importance of each unit masked alone")
    occlusion.add_argument("--units", required=True)
    occlusion.add_argument("--out", required=True)
    occlusion.set_defaults(run=_occlusion)

    curves = masked_job("curves", "attribution curves and their areas")
    curves.add_argument("--units", required=True)
    curves.add_argument("--settings", required=True, help="JSON steps/random_orders/seed")
    curves.add_argument("--curves", required=True)
    curves.add_argument("--fidelity", required=True, help="area under each curve")
    curves.add_argument("--checks", required=True, help="first method vs. each baseline")
    curves.add_argument("importance", nargs="+", help="METHOD=importance table")
    curves.set_defaults(run=_curves)

    heads = masked_job("heads", "head importance and pruning curve")
    heads.add_argument("--settings", required=True, help="JSON HeadSettings")
    heads.add_argument("--importance", required=True)
    heads.add_argument("--pruning", required=True)
    heads.add_argument("decode_stores", nargs="+")
    heads.set_defaults(run=_heads)

    report = commands.add_parser("report", help="the HTML report of a run")
    report.add_argument("--out", required=True, help="report folder (index.html inside)")
    report.add_argument("--settings", required=True, help="JSON ReportSettings")
    report.add_argument("--run-settings", required=True, help="JSON resolved settings per stage")
    for name in ("units", "cris", "stability", "occlusion", "curves", "fidelity", "checks"):
        report.add_argument(f"--{name}", required=True)
    for name in ("heads", "pruning", "skipped"):
        report.add_argument(f"--{name}", required=True)
    report.add_argument("--benchmarks", nargs="+", default=[], help="benchmark file globs")
    report.add_argument("--validation", default=None, help="demo: concept_validation.tsv")
    report.add_argument("--concepts", nargs="+", required=True, help="concept stores")
    report.add_argument("--features", nargs="+", required=True, help="feature stores")
    report.set_defaults(run=_report)

    demo = commands.add_parser("demo-data", help="generate the synthetic demo videos")
    demo.add_argument("--out", required=True, type=Path)
    demo.add_argument("--videos-per-event", type=int, required=True)
    demo.add_argument("--seed", type=int, required=True)
    demo.set_defaults(run=_demo_data)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except StoreError as err:  # the message names the file and the problem
        sys.exit(f"videoconcepts {args.command}: error: {err}")


if __name__ == "__main__":
    main()

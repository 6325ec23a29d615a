"""The workflow through the Snakemake CLI: a real tiny run, its outputs and plans.

Reruns after changed settings or edited modules: test_reruns.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from helpers import (
    REPO,
    copy_run,
    dry_run,
    edited,
    job_stats,
    messages,
    planned,
    run_snakemake,
    snakemake_command,
    snakemake_env,
    write_config,
)

from videoconcepts.jobclient import SERVED
from videoconcepts.plan.sources import ROOT
from videoconcepts.stores.base import open_store
from videoconcepts.stores.decode import decode_status
from videoconcepts.stores.features import open_features


def test_fresh_plan_runs_every_stage(tmp_path):
    write_config(tmp_path)
    assert planned(tmp_path) == {
        "all": 1,
        "demo_data": 1,
        "decode": 2,  # 6 videos, then their manipulated variants (a job each)
        "features": 4,
        "skipped": 1,
        "tubelets": 4,  # 2 shards x (slic, random_crops), every layer in one job
        "concepts": 2,  # 2 methods, the demo model's layers in one job
        "validation": 1,
        "units": 1,
        "targets": 1,
        "cris": 2,
        "cris_gather": 1,
        "occlusion": 1,
        "curves": 1,
        "heads": 1,
        "straightening": 1,
        "detector": 1,
        "static_dynamic": 1,
        "sae": 2,  # lambda 0 and 1 on the deepest analysed layer below the model's last
        "sae_metrics": 1,
        "connectome": 1,
        "report": 1,
        "total": 32,
    }


def test_straightening_covers_every_video_and_layer_and_beats_shuffled_time(finished_run):
    table = pd.read_csv(
        next(finished_run.glob("results/straightening/*/straightening.tsv")), sep="\t"
    )
    assert sorted(table["layer"].unique()) == [-1, 1, 3]  # pixels and the analysed layers
    assert set(table["weights"]) == {"pixels", "trained", "random"}
    # the run's videos (natural) and their manipulated variants (generated)
    assert table.groupby(["weights", "layer"])["video"].nunique().eq(12).all()
    labels = table.drop_duplicates("video").set_index("video")["label"]
    assert labels["vid0000"] == "natural" and labels["vid0000-m"] == "generated"
    assert table["curvature"].between(0, 180).all()
    # the demo's objects move smoothly: pixels far straighter than in shuffled time
    pixels = table[(table["layer"] == -1) & (table["label"] == "natural")]
    assert pixels["curvature"].mean() < pixels["shuffled_curvature"].mean() - 10
    cv = pd.read_csv(next(finished_run.glob("results/detector/*/detector_cv.tsv")), sep="\t")
    assert set(cv["weights"]) == {"pixels", "trained", "random"}
    assert (cv["labels"] == "shuffled").sum() == 5  # the fitted detector's null, 5 folds
    assert (cv["labels"] == "selected").sum() == 5  # its layer choice, cross-validated


def test_the_detect_rule_scores_new_videos_with_the_fitted_detector(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    videos = run / "results/demo_data/n1-seed0/manipulated"
    write_config(run, detector={"score": str(videos)})
    assert planned(run) == {"detect": 1, "all": 1, "total": 2}
    run_snakemake(run)
    scores = pd.read_csv(next(run.glob("results/detect/*/*/scores.tsv")), sep="\t")
    assert scores["video"].tolist() == [f"vid{i:04d}-m" for i in range(6)]
    assert scores["score"].between(0, 1).all()


def test_a_users_detection_sheet_adds_its_videos_to_straightening_only(finished_run, tmp_path):
    demo = finished_run / "results/demo_data/n1-seed0"
    sheet = tmp_path / "detection.tsv"
    rows = [f"{demo}/videos/vid{i:04d}.mp4\tvid{i:04d}\treal" for i in range(6)]
    rows += [f"{demo}/manipulated/vid{i:04d}-m.mp4\tfake{i}\tsora" for i in range(6)]
    sheet.write_text("path\tid\tkind\n" + "\n".join(rows) + "\n")
    samples = tmp_path / "samples.tsv"
    samples.write_text("path\n" + "\n".join(f"{demo}/videos/vid{i:04d}.mp4" for i in range(6)))
    detector = {"samples": str(sheet), "column": "kind", "natural": "real"}
    write_config(tmp_path, samples=str(samples), detector=detector)
    plan = dry_run(tmp_path)
    assert plan.jobs["decode"] == 2 and plan.jobs["features"] == 4
    assert plan.jobs["detector"] == 1 and plan.jobs["tubelets"] == 2  # the run's 2 shards only
    straightening = next(j for j in plan.job_list if j.rule == "straightening")
    assert str(sheet) in straightening.inputs
    # one class only, or an id that names another file than the run's sheet: refused
    write_config(tmp_path, samples=str(samples), detector={**detector, "natural": "none"})
    result = run_snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0 and "bad detector.samples" in messages(result)
    sheet.write_text(
        f"path\tid\tkind\n{demo}/manipulated/vid0000-m.mp4\tvid0001\treal\n"
        f"{demo}/manipulated/vid0002-m.mp4\tfake\tsora\n"
    )
    write_config(tmp_path, samples=str(samples), detector=detector)
    result = run_snakemake(tmp_path, "-n", check=False)
    assert "other files than the run's samples for the ids vid0001" in messages(result)
    write_config(tmp_path, models={"demo": {"checkpoint": "demo", "detector": {"samples": "x"}}})
    result = run_snakemake(tmp_path, "-n", check=False)
    assert "models.demo.detector sets samples" in messages(result)
    # the demo's 6 scene pairs cannot fill 7 folds; a missing scoring source is named
    write_config(tmp_path, detector={"score": str(tmp_path / "nowhere")})
    result = run_snakemake(tmp_path, "-n", check=False)
    assert "bad detector.score" in messages(result) and "nowhere" in messages(result)
    write_config(tmp_path, detector={"folds": 7})
    result = run_snakemake(tmp_path, "-n", check=False)
    assert "detector.folds is 7 but the detection sheet has 6 videos" in messages(result)


def test_static_dynamic_scores_every_concept_and_the_report_shows_it(finished_run):
    """The run's analysed layers (1 and 3), the demo's two stylized copies per video,
    every concept of the concept stores scored, and the score in the concept table."""
    folder = next(finished_run.glob("results/static_dynamic/*/"))
    layers = pd.read_csv(folder / "static_dynamic_layers.tsv", sep="\t")
    assert sorted(layers["layer"].unique()) == [1, 3]
    assert set(layers["weights"]) == {"trained", "random"}
    versions = pd.read_csv(folder / "static_dynamic_versions.tsv", sep="\t")
    assert (
        versions.set_index(["weights", "version"])["clips"].to_dict()[("trained", "styled")] == 12
    )
    concepts = pd.read_csv(folder / "static_dynamic_concepts.tsv", sep="\t")
    importance = pd.read_csv(
        next(finished_run.glob("results/cris_gather/*/*/concept_importance.tsv")), sep="\t"
    )
    key = ["layer", "head", "concept"]
    assert sorted(map(tuple, concepts[key].to_numpy())) == sorted(
        map(tuple, importance[key].to_numpy())
    )
    removal = pd.read_csv(folder / "unit_removal.tsv", sep="\t")
    assert set(removal["layer"]) == {3}  # the last analysed layer
    page = next(finished_run.glob("results/report/run-*/models/demo/index.html")).read_text()
    assert "<th>s dynamic</th>" in page and "<th>static / dynamic</th>" in page


def test_sae_trains_every_lambda_and_measures_them_against_raw_and_untrained(finished_run):
    """One SAE per lambda (0 always among them) on the last analysed layer, each in its
    own folder with no checkpoint left; the measures' rows and the report's page."""
    stores = sorted(finished_run.glob("results/sae/*/sae.zarr"))
    settings = sorted(
        (open_store(s, "sae").attrs["layer"], open_store(s, "sae").attrs["settings"]["contrastive"])
        for s in stores
    )
    assert settings == [(1, 0.0), (1, 1.0)]  # the deepest analysed layer below the last
    assert not list(finished_run.glob("results/sae/*/*.checkpoint.pt"))
    metrics = pd.read_csv(
        next(finished_run.glob("results/sae_metrics/*/sae_metrics.tsv")), sep="\t"
    )
    assert list(metrics["sae"]) == [
        "layer1-k8-lambda0",
        "layer1-k8-lambda0-untrained",
        "layer1-k8-lambda1",
        "layer1-k8-lambda1-untrained",
    ]
    # 4 training videos: 256 features fit them (0.94-0.97) and barely carry over to the 2
    # held-out ones, but far better than the untrained SAE (tests/stages/test_sae.py
    # measures 12 videos)
    ev = metrics["explained_variance"].to_numpy()
    assert ev[0] > ev[1] + 0.1 and ev[2] > ev[3] + 0.1
    assert metrics["role_iou"].notna().all()  # the demo's ground truth
    page = next(finished_run.glob("results/report/run-*/analyses/sae/index.html")).read_text()
    assert "sae_tradeoff.png" in page and "clips/demo-sae1-feature" in page


def test_run_produces_complete_stores(finished_run):
    every = sorted((finished_run / "results" / "features").glob("*/shard-*.zarr"))
    assert [s.name for s in every] == [f"shard-{i:03d}.zarr" for i in range(4)]
    ids = [i for s in every for i in open_features(s).attrs["video_ids"]]
    # the run's videos, then the manipulated variants only straightening measures
    assert ids == [f"vid{i:04d}" for i in range(6)] + [f"vid{i:04d}-m" for i in range(6)]
    stores = every[:2]
    shard = open_features(stores[0])
    assert shard["keys"].shape == (4, 2, 4, 8, 6, 6, 16)
    assert shard["residual"].shape == (4, 2, 8, 6, 6, 64)
    assert shard.attrs["layers"] == [1, 3]
    # the demo model recognises its own synthetic events
    truth = open_store(
        finished_run / "results/demo_data/n1-seed0/ground_truth.zarr", "ground_truth"
    )
    labels = truth["labels"][...]
    predicted = [open_features(s)["logits"][...].argmax(1) for s in stores]
    assert (labels == list(predicted[0]) + list(predicted[1])).mean() >= 5 / 6
    skipped = next((finished_run / "results" / "skipped").glob("*/skipped.tsv"))
    assert skipped.read_text().splitlines() == ["id\tpath\treason"]
    validation = next((finished_run / "results" / "validation").glob("*/concept_validation.tsv"))
    best = pd.read_csv(validation, sep="\t")
    assert set(best["method"]) == {"slic", "random_crops"}
    assert set(best["role"]) == {"target", "distractor", "occluder", "container"}
    assert set(best["layer"]) <= {1, 3}
    rules = {job.rule for job in dry_run(finished_run, "--forceall").job_list} - {"all"}
    assert len(rules) == 21
    for rule in rules:  # outputs, logs and benchmarks under the rule's (= stage's) own name
        assert (finished_run / "results" / rule).is_dir(), rule
        assert list((finished_run / "results" / "logs" / rule).rglob("*.log")), rule
        assert list((finished_run / "results" / "benchmarks" / rule).rglob("*.tsv")), rule
    assert "batch" in next((finished_run / "results/logs/features").rglob("*.log")).read_text()


def test_no_job_server_where_a_job_may_use_a_gpu(tmp_path):
    """A device asking for a GPU keeps every job in its own process (the finished run,
    on the CPU, has the server's log)."""
    write_config(tmp_path, masking={"device": "cuda"})
    run_snakemake(tmp_path, "--until", "decode")
    assert list((tmp_path / "results/decode").rglob("*.zarr"))
    assert not (tmp_path / "results/logs/jobserver.log").exists()


def test_local_jobs_fork_from_the_job_server(finished_run):
    """Jobs started once the server was ready ran in it (the later model-running ones at
    least), and it ended with the run."""
    log = (finished_run / "results/logs/jobserver.log").read_text()
    assert log.startswith("job server ready at ")
    assert not Path(log.split()[-1]).parent.exists()  # its socket folder went with it
    served = [p for p in (finished_run / "results/logs").rglob("*.log") if SERVED in p.read_text()]
    assert {p.relative_to(finished_run / "results/logs").parts[0] for p in served} >= {"heads"}


def test_run_produces_importance_curves_and_head_pruning(finished_run):
    results = finished_run / "results"
    cris = next(results.glob("cris_gather/*/shards-2x4-*/concept_importance.tsv"))
    table = pd.read_csv(cris, sep="\t")
    assert set(table["layer"]) == {1, 3} and sorted(table["rank"]) == list(range(1, len(table) + 1))
    assert table["unit"].is_unique and table["stderr"].ge(0).all()
    units = open_store(next(results.glob("units/*/units.zarr")), "units")
    assert units["presence"].shape == (6, len(table))
    stability = pd.read_csv(cris.with_name("stability.tsv"), sep="\t")
    assert stability["n_masks"].iloc[-1] == 16
    occlusion = pd.read_csv(next(results.glob("occlusion/*/concept_importance.tsv")), sep="\t")
    assert sorted(occlusion["unit"]) == sorted(table["unit"])
    fidelity = pd.read_csv(next(results.glob("curves/*/shards-2x4-*/fidelity.tsv")), sep="\t")
    assert set(zip(fidelity["method"], fidelity["order"], strict=True)) == {
        ("cris", "positive"),
        ("cris", "negative"),
        ("occlusion", "positive"),
        ("occlusion", "negative"),
        ("random", "random"),
    }
    assert fidelity["auc"].between(0, 1).all()  # the metric is a probability
    heads = pd.read_csv(
        next((finished_run / "results/heads").glob("*/head_importance.tsv")), sep="\t"
    )
    assert len(heads) == 16  # every head of the 4-layer demo model, not only analysed layers
    pruning = pd.read_csv(
        next((finished_run / "results/heads").glob("*/pruning_curve.tsv")), sep="\t"
    )
    assert pruning.groupby("order")["heads_pruned"].apply(list).tolist() == [[0, 4, 8, 12, 16]] * 2
    assert (pruning["evaluated_on"] == "held-out videos").all()
    logs = list((finished_run / "results/logs/cris").rglob("shard-*.log"))
    assert len(logs) == 2 and all("batch" in log.read_text() for log in logs)
    # the precision `auto` chose is logged and recorded, with what the CPU can do
    shard = open_store(next((results / "cris").rglob("shard-000.zarr")), "cris_shard").attrs
    assert shard["precision"] in {"float32", "bfloat16"}
    assert all(f"precision {shard['precision']} (CPU" in log.read_text() for log in logs)
    page = next(results.glob("report/run-*/models/demo/index.html")).read_text()
    assert f"<td>masking: device, precision</td><td>cpu, {shard['precision']}</td>" in page


def test_nothing_to_do_after_a_run(finished_run):
    assert planned(finished_run) == {}


def test_single_stage_can_be_targeted(finished_run, tmp_path):
    write_config(tmp_path)
    plan = planned(tmp_path, "--until", "decode")
    assert plan == {"decode": 2, "demo_data": 1, "total": 3}
    store = next((finished_run / "results" / "decode").rglob("vid0003.zarr"))
    target = str(store.parent.relative_to(finished_run))  # its decode job's folder
    assert planned(tmp_path, target) == {"decode": 1, "demo_data": 1, "total": 2}


def test_a_run_exits_as_soon_as_its_last_job_is_done(tmp_path):
    """Snakemake's scheduler arms a re-scheduling timer (not a daemon thread) after every
    round, which the profile lengthens to 30 s (max-jobs-per-timespan) so that the
    timers stop multiplying; those left are cancelled when the run ends, not waited for."""
    write_config(tmp_path)
    cmd = snakemake_command(tmp_path, "--until", "decode")
    with subprocess.Popen(
        cmd, cwd=tmp_path, env=snakemake_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    ) as process:  # fmt: skip
        done = None
        for line in process.stdout:
            if line.startswith("Elapsed time:"):  # Snakemake's last words
                done = time.monotonic()
        code = process.wait()
    assert code == 0 and done is not None
    assert time.monotonic() - done < 3


def test_default_profile_is_picked_up(finished_run, tmp_path):
    """profiles/ (a link to workflow/profiles) sits next to the Snakefile, where Snakemake
    looks for the default profile: its printshellcmds shows the job's command."""
    write_config(tmp_path)
    store = next((finished_run / "results" / "decode").rglob("vid0001.zarr"))
    target = str(store.parent.relative_to(finished_run))
    out = run_snakemake(tmp_path, target, "-n").stdout
    assert "videoconcepts decode --out" in out


MODEL_RULES = {
    "features",
    "straightening",  # its random-weights model
    "concepts",
    "targets",
    "cris",
    "occlusion",
    "curves",
    "heads",
    "static_dynamic",
    "connectome",
    "sae",
    "sae_metrics",
}


def planned_resources(workdir: Path, *args: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job a dry run prints."""
    out = run_snakemake(workdir, "-n", *args).stdout
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", out, re.M)
    return [(rule, dict(item.split("=", 1) for item in res.split(", "))) for rule, res in jobs]


def test_plan_on_the_slurm_profile_sizes_every_job_and_gives_model_jobs_a_gpu(tmp_path):
    """Every job states memory and time for the cluster; model jobs ask for a GPU exactly
    when their device is CUDA, no job does on the CPU."""
    slurm = ("--workflow-profile", str(REPO / "profiles" / "slurm"))
    for device, gpus in (("cuda", 1), ("cpu", 0)):
        stages = ("features", "concepts", "masking")
        write_config(tmp_path, **{stage: {"device": device} for stage in stages})
        jobs = [(rule, res) for rule, res in planned_resources(tmp_path, *slurm) if rule != "all"]
        assert {rule for rule, _ in jobs} >= MODEL_RULES | {"decode", "report"}
        for rule, resources in jobs:
            assert int(resources["mem_mb"]) >= 1000 and int(resources["runtime"]) >= 5, rule
            assert int(resources.get("gpu", 0)) == (gpus if rule in MODEL_RULES else 0), rule


def test_bad_config_is_rejected_before_any_job(tmp_path):
    write_config(tmp_path, decode={"frame_stride": "two"})
    result = run_snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0 and "frame_stride" in messages(result)
    assert "'two' is not of type 'integer'" in messages(result)
    write_config(tmp_path, decode={"frames": 8})
    result = run_snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0 and "'frames' was unexpected" in messages(result)
    write_config(tmp_path, models={"m": {"checkpoint": str(tmp_path / "no-model")}})
    result = run_snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0 and "no-model" in messages(result)
    assert not (tmp_path / "results").exists()


def test_bad_videos_fail_or_are_skipped(tmp_path, video_dir):
    (tmp_path / "clips").mkdir()
    shutil.copy(video_dir / "wide.mp4", tmp_path / "clips" / "good.mp4")
    (tmp_path / "clips" / "broken.mp4").write_text("not a video")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("path\nclips/good.mp4\nclips/broken.mp4\n")
    write_config(tmp_path, samples=str(sheet), decode={"frame_stride": 1, "size": 48})
    failed = run_snakemake(tmp_path, check=False)
    assert failed.returncode != 0
    log = next((tmp_path / "results/logs/decode").rglob("shard-000.log")).read_text()
    assert "broken.mp4: not a readable video" in log
    assert not list((tmp_path / "results/decode").rglob("*.zarr"))  # the failed job left none

    write_config(
        tmp_path, samples=str(sheet), decode={"frame_stride": 1, "size": 48, "on_bad_video": "skip"}
    )
    # up to the skip table and the features, the first stage that reads the skip records
    result = run_snakemake(tmp_path, "--until", "features", "skipped", check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    skipped = next((tmp_path / "results/skipped").glob("*/skipped.tsv")).read_text()
    assert "broken\t" in skipped and "not a readable video" in skipped
    shard = open_features(next((tmp_path / "results/features").glob("*/shard-000.zarr")))
    assert shard.attrs["video_ids"] == ["good"]
    assert shard.attrs["skipped"][0]["id"] == "broken"


def test_missing_file_stops_before_any_job_or_is_skipped(tmp_path, video_dir):
    shutil.copy(video_dir / "wide.mp4", tmp_path / "good.mp4")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("path\ngood.mp4\ngone.mp4\n")
    write_config(tmp_path, samples=str(sheet), decode={"on_bad_video": "fail"})
    failed = run_snakemake(tmp_path, "-n", check=False)
    assert failed.returncode != 0
    assert "missing video files" in messages(failed) and "gone.mp4" in messages(failed)

    write_config(tmp_path, samples=str(sheet), decode={"on_bad_video": "skip"})
    decoded = run_snakemake(tmp_path, "--until", "decode")
    assert job_stats(messages(decoded))["decode"] == 1  # both videos, one job
    # this run made no report, so it names none
    assert "videoconcepts report:" not in messages(decoded)
    gone = decode_status(next((tmp_path / "results/decode").rglob("gone.zarr")))
    assert gone["status"] == "skipped" and gone["reason"] == "file does not exist"
    run_snakemake(tmp_path, "--until", "skipped")
    skipped = pd.read_csv(next((tmp_path / "results/skipped").glob("*/skipped.tsv")), sep="\t")
    assert skipped["id"].tolist() == ["gone"]
    assert skipped["path"][0] == str(tmp_path / "gone.mp4")


def test_report_path_is_printed_by_the_run_that_built_the_report_only(finished_run, tmp_path):
    index = next(finished_run.glob("results/report/run-*/index.html"))
    printed = (finished_run / "snakemake.out").read_text()
    assert f"videoconcepts report: {index.relative_to(finished_run)}" in printed
    # Decoding again outdates the report, which stays on disk from the earlier run
    run = copy_run(finished_run, tmp_path / "run")
    result = run_snakemake(run, "--until", "decode", "--forcerun", "decode")
    assert job_stats(messages(result))["decode"] == 2
    assert "videoconcepts report:" not in messages(result)


def test_sample_sheet_problems_are_rejected_before_any_job(tmp_path):
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("path\tid\nmissing.mp4\ta\n")
    write_config(tmp_path, samples=str(sheet))
    result = run_snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0
    assert "missing video files" in messages(result) and "missing.mp4" in messages(result)


CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# What the browser reads off each page: its images (lazy ones made eager first, so every
# one is fetched), its navigation links and its tables' visible first cells.
PAGE_FACTS = """() => ({
  images: Array.from(document.images).map(i =>
    [i.getAttribute('src'), i.complete, i.naturalWidth, i.naturalHeight]),
  links: Array.from(document.querySelectorAll('nav a')).map(a => a.href),
})"""
VISIBLE = """(table) => Array.from(document.querySelectorAll(table + ' tbody tr'))
  .filter(r => r.style.display !== 'none').map(r => r.children[0].textContent)"""


def browse_report(index: Path, shots: Path) -> dict[str, dict]:
    """Open every page the overview's navigation bar reaches in headless Chromium; each
    page's facts by its path below the report folder. Console errors, failed requests
    and requests off the disk fail the test; a screenshot of each page goes to ``shots``."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (`apt-get install chromium`; CI does)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    problems, requests, pages = [], [], {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda err: problems.append(str(err)))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            pending = [index]
            while pending:
                url = pending.pop(0)
                name = url.relative_to(index.parent).as_posix()
                if name in pages:
                    continue
                page.goto(url.as_uri(), wait_until="load")
                page.evaluate(
                    "() => document.querySelectorAll('img').forEach(i => i.loading = 'eager')"
                )
                page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
                pages[name] = page.evaluate(PAGE_FACTS)
                page.screenshot(path=shots / f"report-{name.replace('/', '-')}.png", full_page=True)
                for link in pages[name]["links"]:
                    target = Path(link.removeprefix("file://"))
                    assert target.is_file(), f"{name}: broken link {link}"
                    pending.append(target)
                if page.locator("#concepts").count():
                    pages[name]["concepts"] = concept_table_clicks(page, shots)
        finally:
            browser.close()
    assert problems == []
    assert all(url.startswith("file://") for url in requests), "the report must not use the network"
    broken = [
        (name, src)
        for name, facts in pages.items()
        for src, complete, width, height in facts["images"]
        if not (complete and width > 0 and height > 0)
    ]
    assert broken == []
    return pages


def concept_table_clicks(page, shots: Path) -> dict[str, list[str]]:
    """The concept table's first column (rank) as shown: the first page, the next page,
    after sorting by rank twice (descending), and filtered to layer 3."""
    shown = {"first": page.evaluate(VISIBLE, "#concepts")}
    page.locator("button.next").first.click()
    shown["next"] = page.evaluate(VISIBLE, "#concepts")
    rank = page.locator("#concepts th", has_text="rank").first
    rank.click()
    rank.click()
    shown["descending"] = page.evaluate(VISIBLE, "#concepts")
    page.select_option("select[data-column=layer]", "3")
    shown["layer 3"] = page.evaluate(
        "() => Array.from(document.querySelectorAll('#concepts tbody tr'))"
        ".filter(r => r.style.display !== 'none').map(r => r.children[1].textContent)"
    )
    page.screenshot(path=shots / "report-layer3.png")
    return shown


def test_report_opens_in_headless_chromium_without_errors(finished_run, tmp_path):
    index = next(finished_run.glob("results/report/run-*/index.html"))
    size = sum(p.stat().st_size for p in index.parent.rglob("*") if p.is_file())
    assert size < 50e6
    pages = browse_report(index, tmp_path)
    # one model: no Rosetta page; straightening's page
    assert set(pages) == {
        "index.html",
        "models/demo/index.html",
        "analyses/straightening/index.html",
        "analyses/static_dynamic/index.html",
        "analyses/sae/index.html",
        "analyses/connectome/index.html",
    }
    overview = [src for src, *_ in pages["index.html"]["images"]]
    assert "figures/models.png" in overview
    assert [s for s in overview if s.startswith("models/demo/clips/")]  # the model's card
    sources = [src for src, *_ in pages["models/demo/index.html"]["images"]]
    assert sum(s.startswith("clips/") for s in sources) >= 5
    assert {"figures/attribution_curves.png", "figures/pruning_curve.png"} <= set(sources)
    assert {"figures/head_importance.png", "figures/layer_importance.png"} <= set(sources)
    assert "figures/cris_masked.png" in sources  # predictions under the masks, per video
    shown = pages["models/demo/index.html"]["concepts"]
    concepts = len(
        pd.read_csv(
            next(finished_run.glob("results/cris_gather/*/*/concept_importance.tsv")), sep="\t"
        )
    )
    assert concepts > 25  # more than a page
    assert shown["first"] == [str(r) for r in range(1, 26)]  # one page of 25, by rank
    assert shown["next"] == [str(r) for r in range(26, min(concepts, 50) + 1)]
    assert shown["descending"] == [str(r) for r in range(concepts, concepts - 25, -1)]
    assert shown["layer 3"] and set(shown["layer 3"]) == {"3"}  # the layer filter works
    assert (tmp_path / "report-models-demo-index.html.png").stat().st_size > 0


def test_snakemake_report_includes_the_outputs(finished_run, tmp_path):
    out = tmp_path / "snakemake_report.zip"
    run_snakemake(finished_run, "--report", str(out))
    names = zipfile.ZipFile(out).namelist()
    assert any(n.endswith("concept_importance.tsv") for n in names)
    # the report folder goes in whole: its page and its clips
    assert any(
        n.startswith("snakemake_report/data/raw/") and n.endswith("/index.html") for n in names
    )
    assert any(n.endswith(".webp") for n in names)
    assert any(n.endswith("fidelity.tsv") for n in names)


def test_workflow_passes_lint_and_format_checks(tmp_path):
    write_config(tmp_path)
    lint = run_snakemake(tmp_path, "--lint", check=False)
    assert lint.returncode == 0, messages(lint)[-3000:]
    snakefmt = Path(sys.executable).parent / "snakefmt"
    files = [str(REPO / "Snakefile"), str(REPO / "workflow")]
    result = subprocess.run([snakefmt, "--check", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_second_model_runs_only_its_own_stages_and_rosetta_matches_it_to_its_copy(
    finished_run, tmp_path
):
    """Adding a copy of the model (same checkpoint and VTCD settings, another name, its
    other analyses switched off for it alone) plans only the copy's stages, Rosetta and
    the report (decode stores are shared), and Rosetta finds every important concept of
    the model in its copy with R-score 1. Removing the copy again plans only the report,
    which is the first run's, back."""
    run = copy_run(finished_run, tmp_path / "run")
    off = {"enabled": False}
    analyses = ("straightening", "static_dynamic", "connectome", "sae")
    copy = {"checkpoint": "demo", **dict.fromkeys(analyses, off)}
    write_config(run, models={"demo": {"checkpoint": "demo"}, "copy": copy})
    plan = dry_run(run)
    # the natural videos' two feature shards (the manipulated ones are straightening's)
    assert plan.jobs["features"] == 2 and plan.jobs["rosetta"] == 1 and plan.jobs["report"] == 1
    assert "decode" not in plan.jobs and "demo_data" not in plan.jobs
    assert not set(plan.jobs) & {*analyses, "sae_metrics", "detector"}
    model_outputs = [
        p
        for job in plan.job_list
        if job.rule not in ("rosetta", "report", "all")
        for p in job.outputs
    ]
    assert model_outputs and all("/copy-" in p for p in model_outputs)
    run_snakemake(run)
    tuples = pd.read_csv(next(run.glob("results/rosetta/*/rosetta_concepts.tsv")), sep="\t")
    cris = pd.read_csv(
        next(run.glob("results/cris_gather/demo-*/*/concept_importance.tsv")), sep="\t"
    )
    candidates = -(-len(cris) * 15 // 100)  # epsilon 0.15, rounded up
    same = tuples[tuples["demo_unit"] == tuples["copy_unit"]]
    assert len(same) == candidates and (same["r_score"] == 1).all()
    assert (same["null_mean"] < 1).all()  # shuffled videos no longer match
    summary = pd.read_csv(next(run.glob("results/rosetta/*/rosetta_summary.tsv")), sep="\t")
    assert summary["tuples"].iloc[0] >= candidates
    # the copied run's one-model report is there too: this run's is the newer
    report = max(run.glob("results/report/run-*/index.html"), key=lambda p: p.stat().st_mtime)
    assert (report.parent / "models" / "copy" / "index.html").is_file()
    assert "Rosetta concepts" in report.read_text()  # its card on the overview
    if shutil.which("chromium"):
        pages = browse_report(report, tmp_path)
        assert "analyses/rosetta/index.html" in pages and "models/copy/index.html" in pages
        clips = [s for s, *_ in pages["analyses/rosetta/index.html"]["images"]]
        assert any(s.startswith("clips/rosetta-") for s in clips)
    # an edit to the Rosetta method reruns Rosetta and the report, nothing else
    with edited(ROOT / "methods" / "rosetta.py"):
        assert planned(run) == {"rosetta": 1, "report": 1, "all": 1, "total": 3}
    write_config(run, models={"demo": {"checkpoint": "demo"}})
    assert planned(run) == {}  # the first run's report is still there

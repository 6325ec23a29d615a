"""Report pieces: clip highlighting, stage times, tables (the page itself: test_workflow)."""

from __future__ import annotations

import time
from functools import partial

import numpy as np
import pandas as pd
import pytest
from helpers import defaults

from videoconcepts.report.cris import highlight
from videoconcepts.report.page import Analysis, Inputs, Markup, ReportSettings, table, write_report
from videoconcepts.report.run import stage_times
from videoconcepts.stages.report import ANALYSES, OVERVIEW, PER_MODEL
from videoconcepts.stores.base import IncompleteStoreError


def test_highlight_keeps_the_support_dims_the_rest_and_outlines_it():
    frames = np.full((4, 8, 8, 3), 200, np.uint8)
    support = np.zeros((2, 4, 4), bool)  # coarser grid: each cell is 2 frames x 2 x 2 pixels
    support[0, 1:3, 1:3] = True
    out = highlight(frames, support)
    inside = np.zeros((4, 8, 8), bool)
    inside[:2, 2:6, 2:6] = True
    edge = inside.copy()
    edge[:, 3:5, 3:5] = False
    assert (out[~inside] == 50).all()  # dimmed to a quarter
    assert (out[inside & ~edge] == 200).all()  # kept
    assert (out[edge] == (240, 228, 66)).all()  # yellow outline
    # support reaching the image border is not outlined along the border
    full = highlight(frames, np.ones((2, 4, 4), bool))
    assert (full == 200).all()


def test_stage_times_sum_this_runs_jobs_per_stage(tmp_path):
    root = tmp_path / "benchmarks"
    jobs = [
        ("decode/d1", "a", 1.5),
        ("decode/d1", "b", 2.0),
        ("decode/d2", "a", 9.0),
        ("cris/x", "s0", 4),
    ]
    for folder, name, seconds in jobs:
        (root / folder).mkdir(parents=True, exist_ok=True)
        table = pd.DataFrame({"s": [seconds], "h:m:s": ["0:00:01"], "max_rss": [1.0]})
        table.to_csv(root / folder / f"{name}.tsv", sep="\t", index=False)
    # d2 belongs to another configuration: not matched, not counted
    times = stage_times([f"{root}/decode/d1/*.tsv", f"{root}/cris/x/*.tsv"]).set_index("stage")
    assert times.loc["decode", "jobs"] == 2 and times.loc["decode", "seconds"] == 3.5
    assert times.loc["cris", "seconds"] == 4


def test_tables_escape_text_but_keep_our_markup():
    clip = Markup('<img src="a.webp">')
    html = table(pd.DataFrame({"id": ["<script>x</script>", "<img src=x>"], "clip": [clip, ""]}))
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert '<img src="a.webp">' in html


def test_inputs_are_split_by_model_in_order():
    inputs = Inputs({"b:units": ["u"], "rosetta_concepts": ["r"], "a:units": ["v", "w"]})
    assert inputs.models == ["b", "a"]
    assert inputs.of_model("a").many("units") == ["v", "w"]
    assert "units" not in inputs.of_model("c") and "rosetta_concepts" in inputs


def test_a_failed_report_leaves_no_folder_that_looks_finished(tmp_path):
    missing = str(tmp_path / "missing.tsv")
    names = ("units", "cris", "stability", "occlusion", "curves", "fidelity", "checks")
    names = (*names, "heads", "pruning", "skipped")
    inputs = Inputs({f"demo:{name}": [missing] for name in names})
    out = tmp_path / "run" / "report"
    out.parent.mkdir()
    with pytest.raises((FileNotFoundError, IncompleteStoreError), match="missing.tsv"):
        write_report(
            out,
            OVERVIEW,
            PER_MODEL,
            ANALYSES,
            inputs,
            ReportSettings(**defaults("report")),
            {"models": {"demo": {}}},
        )
    assert not out.exists()


def test_an_analysis_gets_a_page_a_card_and_a_link_only_when_it_ran(tmp_path):
    def shown(context):
        (context.out / "figures" / "x.png").write_bytes(b"png")
        return "<h2>shown page</h2>"

    analyses = [
        Analysis("shown", "Shown analysis", shown, lambda context: "<p>shown card</p>"),
        Analysis("absent", "Absent analysis", lambda context: "", lambda context: "never"),
    ]
    inputs = Inputs({"a:units": ["u"], "b:units": ["v"]})
    index = write_report(
        tmp_path / "report",
        [lambda context: "<h2>models</h2>", lambda context: "<h2>run</h2>"],
        [lambda context: f"<p>{context.run_settings['name']}</p>"],
        analyses,
        inputs,
        ReportSettings(**defaults("report")),
        {"models": {"a": {"name": "model a"}, "b": {"name": "model b"}}},
    )
    root = index.parent
    overview = index.read_text()
    # the card sits between the first overview section and the others
    assert overview.index("models</h2>") < overview.index("shown card") < overview.index("run</h2>")
    assert "never" not in overview and "Absent analysis" not in overview
    assert (root / "analyses" / "shown" / "figures" / "x.png").is_file()
    assert not (root / "analyses" / "absent").exists()
    for page, back in [("analyses/shown", "../../"), ("models/a", "../../"), (".", "")]:
        text = (root / page / "index.html").read_text()
        assert f'href="{back}analyses/shown/index.html"' in text
        assert f'href="{back}models/b/index.html"' in text
    assert "model a" in (root / "models" / "a" / "index.html").read_text()


def slow_page(log, name: str, context) -> str:
    """A page that takes 0.3 s and notes when it started (module level: pages are pickled
    to the report's worker processes)."""
    with open(log, "a") as file:
        file.write(f"{name} {time.perf_counter()}\n")
    time.sleep(0.3)
    return f"<h2>{name} page</h2>"


def test_the_slowest_page_is_drawn_first_and_every_body_lands_on_its_own_page(tmp_path):
    log = tmp_path / "starts.txt"
    page = partial(slow_page, log)
    analyses = [
        Analysis(name, name, partial(page, name), partial(page, f"{name} card"), first=first)
        for name, first in [("light", False), ("heavy", True)]
    ]
    index = write_report(
        tmp_path / "report",
        [partial(page, "overview")],
        [partial(page, "model")],
        analyses,
        Inputs({"a:units": ["u"], "b:units": ["v"]}),
        ReportSettings(**defaults("report")),
        {"models": {"a": {}, "b": {}}},
        workers=2,
    )
    starts = dict(line.split() for line in log.read_text().splitlines() if "card" not in line)
    starts = {name: float(t) for name, t in starts.items() if name != "overview"}
    # two workers, four pages of 0.3 s: the heavy page, listed last, starts in the first pair
    first_pair = sorted(starts.values())[:2]
    assert starts["heavy"] in first_pair and starts["light"] > min(first_pair) + 0.2
    root = index.parent
    assert "heavy page" in (root / "analyses" / "heavy" / "index.html").read_text()
    assert "light page" in (root / "analyses" / "light" / "index.html").read_text()

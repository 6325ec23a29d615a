"""Incremental reruns, checked with dry runs against the finished tiny run.

A changed setting, or an edited module, must rerun its stage and everything downstream,
nothing upstream, and write new paths (so the earlier outputs stay and switching back
plans nothing).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import Plan, dry_run, edited, write_config

from videoconcepts.plan.sources import ROOT

IMPORTANCE = {"units": 1, "cris": 2, "cris_gather": 1, "occlusion": 1, "curves": 1}
# static_dynamic scores the concepts (and removes units against the targets)
CONCEPTS_ON = {
    "concepts": 2,
    "validation": 1,
    **IMPORTANCE,
    "static_dynamic": 1,
    "report": 1,
    "all": 1,
}
TUBELETS_ON = {"tubelets": 4, **CONCEPTS_ON}  # (2 methods) x (2 shards)
SAE_ON = {"sae": 2, "sae_metrics": 1}  # lambda 0 and 1, and their measures
STRAIGHTENING_ON = {"straightening": 1, "detector": 1}
# the run's 6 videos in 2 shards, their 6 manipulated variants in 2 more (straightening's)
FEATURES_ON = {"features": 4, **STRAIGHTENING_ON, **SAE_ON, **TUBELETS_ON, "connectome": 1}
DECODE_ON = {"decode": 2, "skipped": 1, "targets": 1, "heads": 1, **FEATURES_ON}
CRIS_ON = {"cris": 2, "cris_gather": 1, "curves": 1, "report": 1, "all": 1}
REPORT_ON = {"report": 1, "all": 1}

# One setting per stage -> the jobs it must plan (counts per rule), nothing else.
SETTING_CHANGES = {
    "decode": ({"decode": {"clip_start": "start"}}, DECODE_ON),
    "features": ({"features": {"heads": ["keys", "values"]}}, FEATURES_ON),
    "features_shards": ({"features": {"videos_per_job": 3}}, FEATURES_ON),
    # tuning SLIC reruns the random-crop baseline too: its crops are matched to SLIC's
    # tubelet count per (video, head) (n_crops: matched), so they change with SLIC's
    "tubelets_slic": ({"tubelets": {"n_segments": 8}}, TUBELETS_ON),
    # the baseline feeds the demo's validation (and the report showing it) only
    "tubelets_random_crops": (
        {"tubelets": {"n_crops": 8}},
        {"tubelets": 2, "concepts": 1, "validation": 1, **REPORT_ON},
    ),
    # switching methods reuses the concepts the validation already computed
    "tubelets_method": (
        {"tubelets": {"method": "random_crops"}},
        {**IMPORTANCE, "static_dynamic": 1, "report": 1, "all": 1},
    ),
    "concepts": ({"concepts": {"selection": "silhouette"}}, CONCEPTS_ON),
    "concepts_elbow": ({"concepts": {"elbow_threshold": 0.9}}, CONCEPTS_ON),
    "validation": ({"validation": {"crossfit_splits": 5}}, {"validation": 1, **REPORT_ON}),
    "cris": ({"cris": {"num_masks": 24}}, CRIS_ON),
    "cris_shards": ({"cris": {"shards": 3}}, {**CRIS_ON, "cris": 3}),
    # early stopping in the shards uses the estimator, so it names their folder
    "cris_estimator": ({"cris": {"estimator": "difference"}}, CRIS_ON),
    # the video bootstrap is the gather's alone: no CRIS shard reruns
    "cris_bootstrap": (
        {"cris": {"video_bootstrap": 50}},
        {"cris_gather": 1, "curves": 1, **REPORT_ON},
    ),
    "masking": (  # every job that masks the model, and the targets scored by the metric
        {"masking": {"metric": "logit"}},
        {
            **CRIS_ON,
            "targets": 1,
            "occlusion": 1,
            "heads": 1,
            "static_dynamic": 1,
            "sae_metrics": 1,
            "connectome": 1,
        },
    ),
    # the masking mode does not change what a video's target or unmasked score is, nor
    # the heads, which are always ranked and pruned by removing them
    "masking_mode": (
        {"masking": {"mode": "zero"}},
        {**CRIS_ON, "occlusion": 1},
    ),
    "curves": ({"curves": {"steps": 5}}, {"curves": 1, **REPORT_ON}),
    "heads": ({"heads": {"held_out": 0.5}}, {"heads": 1, **REPORT_ON}),
    "report": ({"report": {"top_concepts": 5}}, {"report": 1, "all": 1}),
    "straightening": ({"straightening": {"permutations": 5}}, {**STRAIGHTENING_ON, **REPORT_ON}),
    "straightening_random": (
        {"straightening": {"random_weights": False}},
        {**STRAIGHTENING_ON, **REPORT_ON},
    ),
    "detector": ({"detector": {"folds": 3}}, {"detector": 1, **REPORT_ON}),
    "detector_off": ({"detector": {"enabled": False}}, REPORT_ON),
    # switched off: nothing to compute, and a report without its page
    "straightening_off": ({"straightening": {"enabled": False}}, REPORT_ON),
    "static_dynamic": ({"static_dynamic": {"pairs": 3}}, {"static_dynamic": 1, **REPORT_ON}),
    "static_dynamic_off": ({"static_dynamic": {"enabled": False}}, REPORT_ON),
    # a new lambda trains its SAE alone; the measures and the report take it in
    "sae_lambda": ({"sae": {"contrastive": [1, 3]}}, {"sae": 1, "sae_metrics": 1, **REPORT_ON}),
    "sae_training": ({"sae": {"epochs": 3}}, {**SAE_ON, **REPORT_ON}),
    "sae_measures": ({"sae": {"random_repeats": 3}}, {"sae_metrics": 1, **REPORT_ON}),
    "sae_off": ({"sae": {"enabled": False}}, REPORT_ON),
    "connectome": ({"connectome": {"alpha": 0.01}}, {"connectome": 1, **REPORT_ON}),
    "connectome_off": ({"connectome": {"enabled": False}}, REPORT_ON),
    # runtime options do not change results: nothing reruns
    "runtime_options": (
        {
            "features": {"batch_size": 3, "threads": 2},
            "masking": {"device": "cpu", "threads": 2, "precision": "float32"},
            "sae": {"checkpoint_every": 7},
        },
        {},
    ),
    "decode_on_bad_video": ({"decode": {"on_bad_video": "skip"}}, {}),
    # both backends give the same frames
    "decode_backend": ({"decode": {"backend": "pyav"}}, {}),
    "decode_sampling": ({"decode": {"sampling": "time"}}, DECODE_ON),
    "decode_window": ({"decode": {"sampling": "time", "window": 1.0}}, DECODE_ON),
    # the same frames in other folders: decoding and what reads the stores rerun
    "decode_shards": ({"decode": {"videos_per_job": 4}}, {**DECODE_ON, "decode": 4}),
    # a model's own override of a stage setting acts as the run's would
    "model_override": (
        {"models": {"demo": {"checkpoint": "demo", "tubelets": {"n_segments": 8}}}},
        TUBELETS_ON,
    ),
}


def _with_total(jobs: dict[str, int]) -> dict[str, int]:
    return {**jobs, "total": sum(jobs.values())} if jobs else {}


@pytest.fixture(scope="module")
def setting_plans(finished_run, tmp_path_factory) -> dict[str, Plan]:
    """Dry-run plans of every changed setting, two Snakemake processes at a time."""
    configs = tmp_path_factory.mktemp("configs")
    for name, (overrides, _) in SETTING_CHANGES.items():
        write_config(configs, f"{name}.yaml", **overrides)
    with ThreadPoolExecutor(2) as pool:
        plans = pool.map(
            lambda name: dry_run(finished_run, configfile=configs / f"{name}.yaml"),
            SETTING_CHANGES,
        )
        return dict(zip(SETTING_CHANGES, plans, strict=True))


@pytest.mark.parametrize("case", SETTING_CHANGES)
def test_changed_setting_reruns_its_stage_and_downstream_into_new_paths(
    case, setting_plans, finished_run
):
    plan = setting_plans[case]
    assert plan.jobs == _with_total(SETTING_CHANGES[case][1])
    # New paths only: the earlier setting's outputs stay, so switching back plans nothing
    # (the finished run itself plans nothing: test_nothing_to_do_after_a_run).
    overwritten = [p for p in plan.outputs if (finished_run / p).exists()]
    assert overwritten == []


# Edited module -> the jobs it must plan: every method module, and the stage and store
# modules whose reach is easy to get wrong.
MASKING_ON = {"cris": 2, "cris_gather": 1, "occlusion": 1, "curves": 1, "heads": 1, **REPORT_ON}
METHOD_EDITS = {
    "methods/decoding.py": DECODE_ON,
    "methods/proposals.py": TUBELETS_ON,  # both tubelet methods use it
    "methods/cnmf.py": CONCEPTS_ON,
    "methods/tokens.py": {**IMPORTANCE, "heads": 1, **REPORT_ON},
    "methods/objectives.py": {
        "targets": 1,
        "static_dynamic": 1,
        "sae_metrics": 1,
        "connectome": 1,
        **MASKING_ON,
    },  # fmt: skip
    "methods/cris.py": {**CRIS_ON, "heads": 1},  # head importance is CRIS over heads
    "methods/ranking.py": {"cris_gather": 1, "occlusion": 1, "curves": 1, "heads": 1, **REPORT_ON},
    "methods/occlusion.py": {"occlusion": 1, "curves": 1, **REPORT_ON},
    "methods/curves.py": {"curves": 1, **REPORT_ON},
    "methods/removal.py": {"curves": 1, "heads": 1, **REPORT_ON},
    "methods/pruning.py": {"heads": 1, **REPORT_ON},
    # one model: no Rosetta stage to rerun (the two-model test in test_workflow.py
    # shows an edit rerunning it)
    "methods/rosetta.py": {},
    "methods/straightening.py": {**STRAIGHTENING_ON, **REPORT_ON},
    "methods/detection.py": {"detector": 1, **REPORT_ON},
    "methods/static_dynamic.py": {"static_dynamic": 1, **REPORT_ON},
    "methods/sae.py": {**SAE_ON, **REPORT_ON},
    "methods/connectome.py": {"connectome": 1, **REPORT_ON},
}
MODULE_EDITS = {
    **METHOD_EDITS,
    "stages/features.py": FEATURES_ON,
    "stages/targets.py": {
        "targets": 1,
        "static_dynamic": 1,
        "sae_metrics": 1,
        "connectome": 1,
        **MASKING_ON,
    },  # fmt: skip
    "models/scorer.py": MASKING_ON,
    # the units store module is read by every masking job, heads included
    "stores/units.py": {**IMPORTANCE, "heads": 1, **REPORT_ON},
    "report/heads.py": REPORT_ON,
}


def test_every_method_module_has_its_rerun_test():
    methods = {f"methods/{p.name}" for p in (ROOT / "methods").glob("*.py")}
    assert methods - {"methods/__init__.py"} == set(METHOD_EDITS)


@pytest.mark.parametrize("module", MODULE_EDITS)
def test_edited_module_reruns_its_stage_and_downstream_only(module, finished_run):
    """An edit (content and mtime change; Snakemake ignores a bare mtime bump when the
    checksum it recorded still matches) plans exactly its stage and what follows."""
    with edited(ROOT / module):
        plan = dry_run(finished_run)
    assert plan.jobs == _with_total(MODULE_EDITS[module])


def test_every_rule_depends_on_the_modules_it_runs(finished_run):
    """Each job lists its stage module (named as the rule) and the store module among its
    inputs."""
    plan = dry_run(finished_run, "--forceall")
    for job in plan.job_list:
        if job.rule != "all":
            expected = {str(ROOT / "stages" / f"{job.rule}.py"), str(ROOT / "stores" / "base.py")}
            assert expected <= set(job.inputs), job.rule

"""One name per stage: rule = CLI subcommand = stage module; settings read back typed."""

from __future__ import annotations

import argparse
import json
import re

import pytest
from helpers import REPO, model_view, tiny_config

from videoconcepts.cli import build_parser, load_stage, stage_names
from videoconcepts.plan import settings as plan
from videoconcepts.runtime import typed_json


def test_every_rule_is_a_stage_module_and_a_subcommand():
    rules = set()
    for path in [REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]:
        text = path.read_text()
        for rule, body in re.findall(r"^rule (\w+):\n((?:\s.*\n?)*)", text, re.M):
            rules.add(rule)
            command = re.search(r'"videoconcepts (\w+)', body)
            assert rule == "all" or (command and command[1] == rule), rule
    assert rules - {"all"} == set(stage_names())
    for name in stage_names():
        stage = load_stage(name)
        assert stage.HELP and callable(stage.add_arguments) and callable(stage.run), name
    assert set(build_parser()._subparsers._group_actions[0].choices) == set(stage_names())


def test_resolved_settings_read_back_into_each_stage_type():
    """What the workflow hashes and passes is exactly each stage's settings type."""
    config = model_view(tiny_config())
    model = plan.resolve_model_section(config)
    masking = plan.resolve_masking(config, model)
    resolved = {
        "decode": plan.resolve_decode(config),
        "features": plan.resolve_features(config, model),
        "tubelets": plan.resolve_proposals(config, "slic"),
        "concepts": plan.resolve_concepts(config),
        "validation": plan.resolve_validation(config),
        "targets": plan.resolve_targets(masking),
        "cris": plan.resolve_cris(config),
        "cris_gather": plan.resolve_cris_gather(config),
        "curves": plan.resolve_curves(config),
        "heads": plan.resolve_heads(config),
        "rosetta": plan.resolve_rosetta(config),
        "report": plan.resolve_report(config),
    }
    for stage, values in resolved.items():
        parsed = typed_json(load_stage(stage).Settings)(json.dumps(values))
        assert {k: getattr(parsed, k) for k in values} == {
            k: tuple(v) if isinstance(v, list) and stage == "tubelets" else v
            for k, v in values.items()
        }, stage
    random = plan.resolve_proposals(config, "random_crops")
    assert load_stage("tubelets").Settings(**random).n_segments is None
    slic = plan.resolve_proposals(config, "slic")
    assert random["matched_to"] == plan.settings_hash(slic) and "matched_to" not in slic
    # no defaults of their own: a missing key is refused, and so is an unknown one
    cris = load_stage("cris").Settings
    with pytest.raises(argparse.ArgumentTypeError, match="CrisSettings"):
        typed_json(cris)(json.dumps({"num_masks": 8}))
    with pytest.raises(argparse.ArgumentTypeError, match="unexpected"):
        typed_json(cris)(json.dumps({**resolved["cris"], "shards": 2}))


def test_scripts_installed_before_the_client_moved_still_find_the_command():
    """An environment installed earlier runs `from videoconcepts.cli import main`."""
    from videoconcepts import cli, jobclient

    assert cli.main is jobclient.main

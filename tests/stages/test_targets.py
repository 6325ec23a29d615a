"""The targets stage: one table of target classes and unmasked scores, read back exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import cpu

from videoconcepts.methods.objectives import get_metric
from videoconcepts.models import load_adapter
from videoconcepts.stages.targets import TargetSettings, target_table
from videoconcepts.stores.decode import Clips
from videoconcepts.stores.targets import read_targets


def test_targets_follow_the_rule_and_baselines_read_back_bit_for_bit(demo_decoded, targets):
    ids, stores, samples = demo_decoded
    sheet = pd.read_csv(samples, sep="\t").set_index("id")
    adapter = load_adapter("demo", "cpu")
    clips = Clips(ids, stores)
    logits = torch.cat([adapter.logits(torch.from_numpy(clips.frames(v))[None]) for v in range(6)])
    labels = [adapter.class_names.index(sheet.loc[v, "label"]) for v in ids]
    for metric in ("correctness", "prob"):
        target, baseline = read_targets(targets(metric), ids[::-1])  # in the order asked
        assert target.tolist() == labels[::-1]
        expected = get_metric(metric)(logits, torch.tensor(labels)).numpy()[::-1]
        assert baseline.dtype == np.float32 and np.array_equal(baseline, expected)
    predicted = target_table(stores, TargetSettings("demo", "prob", "predicted"), None, cpu(8))
    assert predicted["target"].tolist() == logits.argmax(1).tolist()
    assert (predicted["label"] == "").all()


def test_a_video_missing_from_the_table_is_refused(targets):
    with pytest.raises(ValueError, match=r"no target for videos \['elsewhere'\]"):
        read_targets(targets(), ["elsewhere"])

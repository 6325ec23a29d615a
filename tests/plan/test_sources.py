"""The package files each rule lists as its code inputs."""

from __future__ import annotations

from videoconcepts.plan.sources import ROOT, stage_sources


def test_concepts_runs_no_model_code():
    """concepts imports the device rule, not the model adapters (nor transformers): editing
    an adapter does not rerun it, and its jobs do not pay for loading them."""
    files = {str(p) for p in stage_sources("stages.concepts")}
    assert str(ROOT / "devices.py") in files and str(ROOT / "methods" / "cnmf.py") in files
    assert not any(f.startswith(str(ROOT / "models")) for f in files)
    assert str(ROOT / "devices.py") in {str(p) for p in stage_sources("stages.features")}

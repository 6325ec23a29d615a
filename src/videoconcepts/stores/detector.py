"""Fitted detectors (``detector.joblib``): a scikit-learn pipeline and what computes its
input (the model, its precision, the layer, the decode settings), written by the
detector stage and read by ``videoconcepts detect``. joblib, as scikit-learn recommends
for its estimators; like any pickle, load only files you trust."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import joblib

KIND = "videoconcepts-detector"


def write_detector(fitted: dict[str, Any], path: str | Path) -> None:
    """Write atomically (temp file, then rename): never half a detector."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        joblib.dump({"kind": KIND, **fitted}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_detector(path: str | Path) -> dict[str, Any]:
    """A fitted detector; a missing or foreign file fails by name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such detector (the detector stage writes it)")
    try:
        fitted = joblib.load(path)
    except Exception as err:  # joblib raises whatever unpickling met
        raise ValueError(f"{path}: not a fitted detector ({err})") from err
    if not isinstance(fitted, dict) or fitted.get("kind") != KIND:
        raise ValueError(f"{path}: not a fitted detector written by the detector stage")
    return fitted

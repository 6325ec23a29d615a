"""detector: natural vs generated video from trajectory geometry, cross-validated per layer.

Reads one model's straightening store: ReStraV's 21 numbers per video and trajectory
(pixels, each layer, each layer with random weights) and each video's class from the
detection sheet. For every trajectory, and for each weights' layers side by side
(``all``), both classifiers are cross-validated (stratified k-fold, each group of
videos in one fold); the configured classifier on the chosen layer is cross-validated
again with the labels shuffled (the null, about 0.5), then fitted on every labelled
video and saved for ``videoconcepts detect``. Where the stage chooses the layer, the
choice is cross-validated too (nested: each training part chooses on its own folds;
rows labelled ``selected``, one per fold with the layer it chose): the chosen layer's
own AUROC is the best of several noisy ones and promises more than the choice delivers.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import sklearn
import zarr
from tqdm import tqdm

from videoconcepts.methods.detection import (
    CLASSIFIERS,
    best_of,
    cross_validate,
    make_classifier,
    select_and_cross_validate,
)
from videoconcepts.plan.samples import GENERATED, NATURAL
from videoconcepts.runtime import typed_json
from videoconcepts.stores.base import write_table
from videoconcepts.stores.decode import open_decoded
from videoconcepts.stores.detector import write_detector
from videoconcepts.stores.features import open_features
from videoconcepts.stores.straightening import PIXELS, open_straightening

HELP = "cross-validated detection of generated video per layer; the fitted detector"
ALL_LAYERS = "all"
CV_COLUMNS = (
    "model",
    "weights",
    "layer",
    "classifier",
    "labels",
    "fold",
    "auroc",
    "accuracy",
    "f1",
)
SCORE_COLUMNS = ("weights", "layer", "classifier", "video", "label", "score")


@dataclass(frozen=True)
class DetectorSettings:
    folds: int
    hidden: list[int]  # the MLP's hidden widths
    max_iter: int
    classifier: str  # of the fitted detector
    layer: int | None  # of the fitted detector (-1 pixels); None: the best by CV AUROC
    seed: int


Settings = DetectorSettings


def feature_sets(store: zarr.Group, path: str) -> list[tuple[str, str, np.ndarray]]:
    """(weights, layer, ReStraV vectors (V, features)) of every trajectory of the
    straightening store at ``path``, then each weights' layers side by side."""
    if not store.attrs["restrav"]:
        raise ValueError(
            f"{path}: the token grid has fewer than 8 time steps, too few for "
            "ReStraV's 21 numbers; the detector needs a model with 8 or more"
        )
    vectors = store["restrav"][...]
    weights, layers = store.attrs["weights"], store.attrs["layers"]
    sets = [
        (w, str(layer), vectors[:, j])
        for j, (w, layer) in enumerate(zip(weights, layers, strict=True))
    ]
    for kind in ("trained", "random"):
        columns = [j for j, w in enumerate(weights) if w == kind]
        if len(columns) > 1:
            sets.append((kind, ALL_LAYERS, vectors[:, columns].reshape(len(vectors), -1)))
    return sets


def detector(
    name: str, straightening_path: str, settings: DetectorSettings
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The cross-validation table, the out-of-fold scores and the fitted detector (a
    dict: the pipeline and what ``detect`` needs to compute its input)."""
    store = open_straightening(straightening_path)
    labels = np.asarray(store.attrs["labels"])
    labelled = np.isin(labels, [NATURAL, GENERATED])
    if len(set(labels[labelled])) < 2:
        raise ValueError(
            f"{straightening_path}: the detector needs natural and generated videos; the "
            f"store's videos are labelled {sorted(set(labels))}"
        )
    generated = labels[labelled] == GENERATED
    videos = np.asarray(store.attrs["video_ids"])[labelled]
    groups = np.asarray(store.attrs["groups"])[labelled]
    sets = feature_sets(store, straightening_path)
    rows, scores = [], []

    def evaluate(weights: str, layer: str, x: np.ndarray, kind: str, y, shuffled: bool):
        cv = cross_validate(
            x, y, kind, settings.hidden, settings.max_iter, settings.folds, settings.seed, groups
        )
        labels_kind = "shuffled" if shuffled else "true"
        rows.append(
            cv.folds.assign(weights=weights, layer=layer, classifier=kind, labels=labels_kind)
        )
        if not shuffled:
            scores.append(
                pd.DataFrame(
                    {
                        "weights": weights,
                        "layer": layer,
                        "classifier": kind,
                        "video": videos,
                        "label": labels[labelled],
                        "score": cv.scores,
                    }
                )
            )

    for weights, layer, x in tqdm(sets, desc=f"detector {name}", unit="trajectory"):
        for kind in CLASSIFIERS:
            evaluate(weights, layer, x[labelled], kind, generated, False)
    table = pd.concat(rows, ignore_index=True).assign(model=name)
    chosen = choose_layer(table, settings)
    source = "pixels" if chosen == str(PIXELS) else "trained"
    x = dict(((w, layer), x) for w, layer, x in sets)[(source, chosen)][labelled]
    rng = np.random.default_rng(settings.seed)
    evaluate(source, chosen, x, settings.classifier, rng.permutation(generated), True)
    candidates = {
        layer: x[labelled] for w, layer, x in sets if w == "trained" and layer != ALL_LAYERS
    }
    nested = None
    if settings.layer is None and len(candidates) > 1:
        try:
            nested = select_and_cross_validate(
                candidates, generated, settings.classifier, settings.hidden, settings.max_iter,
                settings.folds, settings.seed, groups,
            )  # fmt: skip
        except ValueError as error:
            raise ValueError(
                f"{straightening_path}: {error}; set detector.layer to fit one layer unchosen"
            ) from error
        rows.append(
            nested.folds.rename(columns={"chosen": "layer"}).assign(
                weights="trained", classifier=settings.classifier, labels="selected"
            )
        )
    table = pd.concat(rows, ignore_index=True).assign(model=name)[list(CV_COLUMNS)]
    layer_auroc = float(
        table.query("weights == @source and layer == @chosen and labels == 'true'")
        .query("classifier == @settings.classifier")["auroc"]
        .mean()
    )
    pipeline = make_classifier(
        settings.classifier, settings.hidden, settings.max_iter, settings.seed
    )
    features = open_features(store.attrs["feature_stores"][0])
    decoded = open_decoded(features.attrs["decode_stores"][0])
    fitted = {
        "pipeline": pipeline.fit(x, generated),
        "model_name": name,
        "classifier": settings.classifier,
        "weights": source,
        "layer": int(chosen),
        "model": features.attrs["settings"]["model"],
        "precision": features.attrs["settings"]["precision"],
        "time_steps": int(features.attrs["grid"][0]),
        "decode": dict(decoded.attrs["settings"]),
        # the honest figure: the layer choice cross-validated too, where one was made
        "cv_auroc": layer_auroc if nested is None else float(nested.folds["auroc"].mean()),
        "layer_cv_auroc": layer_auroc,
        "trained_on": list(videos),
        "sklearn": sklearn.__version__,
    }
    return table, pd.concat(scores, ignore_index=True)[list(SCORE_COLUMNS)], fitted


def choose_layer(table: pd.DataFrame, settings: DetectorSettings) -> str:
    """The fitted detector's layer: the configured one, else the trained model's layer
    (pixels excluded) whose mean cross-validated AUROC is highest, the deeper on a tie."""
    trained = table[(table["weights"] == "trained") & (table["classifier"] == settings.classifier)]
    if settings.layer is not None:
        layers = {str(PIXELS), *trained["layer"]}
        if str(settings.layer) not in layers:
            raise ValueError(f"detector.layer {settings.layer} is not measured: {sorted(layers)}")
        return str(settings.layer)
    single = trained[trained["layer"] != ALL_LAYERS]
    return best_of(single.groupby("layer")["auroc"].mean())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="the model's name in the run")
    parser.add_argument("--cv", required=True, help="the cross-validation table (.tsv)")
    parser.add_argument("--scores", required=True, help="out-of-fold scores (.tsv)")
    parser.add_argument("--detector", required=True, help="the fitted detector (.joblib)")
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument("straightening", help="the model's straightening store")


def run(args: argparse.Namespace) -> None:
    table, scores, fitted = detector(args.name, args.straightening, args.settings)
    write_table(table, args.cv, "%.6g")
    write_table(scores, args.scores, "%.6g")
    write_detector({**fitted, "settings": asdict(args.settings)}, args.detector)
    summary = table.groupby(["weights", "layer", "classifier", "labels"])["auroc"].mean()
    print(summary.to_string(), file=sys.stderr)
    print(
        f"fitted detector: layer {fitted['layer']} ({fitted['classifier']}), its "
        f"cross-validated AUROC {fitted['layer_cv_auroc']:.3f}; with the layer chosen inside "
        f"each fold (nested) {fitted['cv_auroc']:.3f}",
        file=sys.stderr,
    )

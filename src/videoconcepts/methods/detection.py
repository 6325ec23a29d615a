"""Telling generated from natural videos by their trajectory geometry (ReStraV, paper 001).

Each video is ReStraV's 21 numbers of one layer's trajectory (see
:mod:`videoconcepts.methods.straightening`), or several layers' side by side. The
classifiers are scikit-learn's: ReStraV's MLP (21-64-32-1; L-BFGS here, which suits a
few hundred videos better than their Adam) and logistic regression, each after a median
imputer (an angle beside a frozen step is NaN) and standardisation. Scores are the
probability of ``generated``; cross-validation is stratified k-fold over groups, its
folds seeded: videos of one group (a natural video and the generated one made from it)
always fall in the same fold. Without groups a scene's twin sits in the training folds
with the other label, and its near-identical geometry pulls the held-out video's score
the wrong way: on the demo's 18 scene pairs that gave AUROCs of 0.12 to 0.39, far
below chance, where grouped folds give 0.5 to 0.7.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

CLASSIFIERS = ("mlp", "logistic")


def make_classifier(kind: str, hidden: Sequence[int], max_iter: int, seed: int) -> Pipeline:
    """An unfitted detector: impute, standardise, classify (``mlp`` or ``logistic``)."""
    if kind == "mlp":
        model = MLPClassifier(
            hidden_layer_sizes=tuple(hidden), solver="lbfgs", max_iter=max_iter, random_state=seed
        )
    elif kind == "logistic":
        model = LogisticRegression(max_iter=max_iter)
    else:
        raise ValueError(f"unknown classifier {kind!r}; expected one of {CLASSIFIERS}")
    imputer = SimpleImputer(strategy="median", keep_empty_features=True)
    return make_pipeline(imputer, StandardScaler(), model)


@dataclass(frozen=True)
class CrossValidation:
    folds: pd.DataFrame  # fold, auroc, accuracy, f1 (on each held-out fold)[, chosen]
    scores: np.ndarray  # (videos,) out-of-fold probability of generated


def cross_validate(
    x: np.ndarray,
    generated: np.ndarray,
    kind: str,
    hidden: Sequence[int],
    max_iter: int,
    folds: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> CrossValidation:
    """Stratified ``folds``-fold cross-validation of one classifier on features ``x``
    (videos, features) and labels ``generated`` (videos,) bool, keeping each of
    ``groups`` (videos,) in one fold (default: every video its own group)."""
    generated, groups = checked_folds(generated, groups, folds)
    scores = np.empty(len(generated))
    rows = []
    for fold, (train, test) in enumerate(splits(generated, groups, folds, seed)):
        model = make_classifier(kind, hidden, max_iter, seed).fit(x[train], generated[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
        rows.append({"fold": fold, **metrics(generated[test], scores[test])})
    return CrossValidation(pd.DataFrame(rows), scores)


def select_and_cross_validate(
    candidates: Mapping[str, np.ndarray],
    generated: np.ndarray,
    kind: str,
    hidden: Sequence[int],
    max_iter: int,
    folds: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> CrossValidation:
    """Nested cross-validation of choosing among ``candidates`` (a layer as text ->
    its features) by :func:`best_of` their cross-validated AUROCs, then fitting it.

    The best candidate's own cross-validated AUROC is the maximum of several noisy
    estimates, so it promises more than the choice delivers; here each outer training
    part makes the choice by inner cross-validation on itself alone (as many folds as
    its smaller class allows, at most ``folds``), and the chosen candidate is scored on
    the held-out part. ``folds`` gains a ``chosen`` column.
    """
    generated, groups = checked_folds(generated, groups, folds)
    scores = np.empty(len(generated))
    rows = []
    for fold, (train, test) in enumerate(splits(generated, groups, folds, seed)):
        y = generated[train]
        inner = min(folds, int(y.sum()), int((~y).sum()), len(set(groups[train])))
        if inner < 2:
            raise ValueError(
                f"choosing among candidates inside {folds}-fold cross-validation needs 2 "
                f"videos of each class in every training part; one has {min(y.sum(), (~y).sum())}"
            )
        auroc = pd.Series(
            {
                name: cross_validate(
                    x[train], y, kind, hidden, max_iter, inner, seed, groups[train]
                )
                .folds["auroc"]
                .mean()
                for name, x in candidates.items()
            }
        )
        chosen = best_of(auroc)
        x = candidates[chosen]
        model = make_classifier(kind, hidden, max_iter, seed).fit(x[train], y)
        scores[test] = model.predict_proba(x[test])[:, 1]
        rows.append({"fold": fold, "chosen": chosen, **metrics(generated[test], scores[test])})
    return CrossValidation(pd.DataFrame(rows), scores)


def best_of(auroc: pd.Series) -> str:
    """The name (a layer number as text) with the highest AUROC, the deeper on a tie."""
    best = auroc[auroc == auroc.max()].index
    return max(best, key=int)


def checked_folds(
    generated: np.ndarray, groups: np.ndarray | None, folds: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels as bool and groups (default: every video its own), or an error saying why
    ``folds`` folds cannot be made of them."""
    generated = np.asarray(generated, bool)
    smallest = min(generated.sum(), (~generated).sum())
    if smallest < folds:
        raise ValueError(
            f"{folds}-fold cross-validation needs {folds} videos of each class or more; "
            f"the smaller class has {smallest}"
        )
    groups = np.arange(len(generated)) if groups is None else np.asarray(groups)
    if len(set(groups)) < folds:
        raise ValueError(
            f"{folds}-fold cross-validation needs {folds} groups, got {len(set(groups))}"
        )
    return generated, groups


def splits(generated: np.ndarray, groups: np.ndarray, folds: int, seed: int):
    """(train, test) index pairs: stratified, each group in one fold, seeded."""
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    return splitter.split(np.zeros(len(generated)), generated, groups)


def metrics(generated: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUROC, accuracy and F1 of one held-out fold's scores (generated at 0.5)."""
    predicted = scores >= 0.5
    return {
        "auroc": roc_auc_score(generated, scores),
        "accuracy": accuracy_score(generated, predicted),
        "f1": f1_score(generated, predicted, zero_division=0.0),
    }

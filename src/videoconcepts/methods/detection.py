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

from collections.abc import Sequence
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
    folds: pd.DataFrame  # fold, auroc, accuracy, f1 (on each held-out fold)
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
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    scores = np.empty(len(generated))
    rows = []
    for fold, (train, test) in enumerate(splitter.split(x, generated, groups)):
        model = make_classifier(kind, hidden, max_iter, seed).fit(x[train], generated[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
        predicted = scores[test] >= 0.5
        rows.append(
            {
                "fold": fold,
                "auroc": roc_auc_score(generated[test], scores[test]),
                "accuracy": accuracy_score(generated[test], predicted),
                "f1": f1_score(generated[test], predicted, zero_division=0.0),
            }
        )
    return CrossValidation(pd.DataFrame(rows), scores)

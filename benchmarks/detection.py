"""The detector on more demo scenes than the demo draws: how well each demo model's
trajectories tell manipulated scenes from natural ones, against pixels and random weights.

    python benchmarks/detection.py [--videos-per-event 10] [--threads 2]

Generates the scenes and their manipulated variants, then runs the stages' own code
(decode, features, straightening with random weights, the detector: 5 grouped folds)
for each demo model, and prints per trajectory the cross-validated AUROC of both
classifiers, the AUROC per defect (the logistic detector's out-of-fold scores), the
trained model's best layer (chosen by the folds that score it), the same choice
cross-validated (nested) and their ratios to pixels. About 4 minutes at 10 per event.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from videoconcepts.demo.synthetic import generate_dataset
from videoconcepts.methods.decoding import DecodeSettings
from videoconcepts.plan.samples import detection_labels
from videoconcepts.runtime import Runtime
from videoconcepts.stages.decode import write_decode_store
from videoconcepts.stages.detector import DetectorSettings, detector
from videoconcepts.stages.features import FeatureSettings, write_feature_store
from videoconcepts.stages.straightening import StraighteningSettings, straightening

# The demo models and the clips they were trained on (the default config's).
MODELS = {
    "demo": DecodeSettings(16, 2, "center", 48, "index", None),
    "demo-videomae-ssl": DecodeSettings(16, 2, "center", 48, "index", None),
    "demo-timesformer": DecodeSettings(8, 4, "center", 48, "index", None),
}


def per_defect(scores: pd.DataFrame, defects: pd.Series) -> pd.DataFrame:
    """AUROC of natural against each defect's manipulated videos, per trajectory."""
    scores = scores.assign(defect=scores["video"].map(defects))
    rows = {}
    for (weights, layer), group in scores.groupby(["weights", "layer"]):
        natural = group[group["label"] == "natural"]["score"]
        rows[(weights, layer)] = {
            defect: roc_auc_score(
                np.r_[np.zeros(len(natural)), np.ones(len(caught))], np.r_[natural, caught["score"]]
            )
            for defect, caught in group[group["label"] == "generated"].groupby("defect")
        }
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos-per-event", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", module="sklearn")
    pd.set_option("display.width", 200)
    runtime = Runtime("cpu", None, 16, args.threads)
    settings = DetectorSettings(5, [64, 32], 500, "mlp", None, 0)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        generate_dataset(root / "demo", args.videos_per_event, 0, manipulated=True)
        sheet = root / "demo" / "detection.tsv"
        table = pd.read_csv(sheet, sep="\t", keep_default_na=False)
        labels = detection_labels(sheet, "label", "natural")
        defects = table.set_index("id")["defect"]
        print(f"{len(table)} videos: {len(table) // 2} scenes and their manipulated variants")
        for model, clip in MODELS.items():
            decoded = []
            for path, video in zip(table["path"], table["id"], strict=True):
                decoded.append(root / model / f"{video}.zarr")
                write_decode_store(root / "demo" / path, decoded[-1], video, clip)
            features = FeatureSettings(
                model=model, layers=None, heads=["keys"], residual=True, dtype="float32",
                videos_per_job=len(decoded), precision="float32",
            )  # fmt: skip
            shard = root / model / "features.zarr"
            write_feature_store(decoded, shard, features, runtime)
            store = root / model / "straightening.zarr"
            straightening(model, [shard], StraighteningSettings(5, 0, True), store, labels, runtime)
            cv, scores, _ = detector(model, str(store), settings)
            true = cv[cv["labels"] == "true"]
            auroc = true.pivot_table(
                index="classifier", columns=["weights", "layer"], values="auroc"
            )
            print(f"\n{model}: cross-validated AUROC\n{auroc.round(2).to_string()}")
            logistic = scores[scores["classifier"] == "logistic"]
            print(f"{model}: AUROC per defect (logistic)\n{per_defect(logistic, defects).round(2)}")
            mlp = auroc.loc["mlp"]
            best = mlp["trained"].drop("all").max()
            pixels = mlp["pixels"].iloc[0]
            nested = cv[cv["labels"] == "selected"]
            print(
                f"{model}: best trained layer {best:.3f}, the choice nested "
                f"{nested['auroc'].mean():.3f} (layers {', '.join(nested['layer'])}), pixels "
                f"{pixels:.3f}; ratios to pixels {best / pixels:.2f}x and "
                f"{nested['auroc'].mean() / pixels:.2f}x"
            )


if __name__ == "__main__":
    main()

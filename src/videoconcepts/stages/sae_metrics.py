"""sae_metrics: what each of a model's sparse autoencoders gives, against the raw
features and against the same SAE untrained.

Per SAE: explained variance and the lag-1 temporal autocorrelation of the codes on the
held-out videos (paper 000's coherence measure), per token position and per frame (each
feature's mean over the frame's positions); the raw residual channels' is the reference,
and the plain SAE's (lambda 0) the one the contrastive term is judged by;
dead and dense features, a linear probe of the sample labels on pooled codes
(cross-validated over videos) against one on pooled raw features, the model's output
with the layer replaced by the reconstruction (spliced), and a causal ablation: the
features most predictive of a class subtracted from the layer (the reconstruction error
kept, so nothing else changes) on that class's videos, against as many random live
features. On the demo each feature's active tokens are scored against every
ground-truth role (IoU over all videos): the best feature's IoU per role (averaged over
roles) and the mean best-role IoU of the ten most role-like features, with raw channels
made as sparse as the SAE's features as the baseline. A gallery store keeps the top
features' activation maps for the report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from videoconcepts.methods.objectives import get_metric
from videoconcepts.methods.sae import DENSE_SHARE, LagCorrelation, Moments, RoleOverlap, TopKSAE
from videoconcepts.models import ModelAdapter, load_adapter
from videoconcepts.plan.samples import load_samples
from videoconcepts.runtime import Runtime, typed_json
from videoconcepts.stages.sae import LayerTokens
from videoconcepts.stages.targets import TargetSettings
from videoconcepts.stages.validation import role_masks_on_grid
from videoconcepts.stores.base import atomic_store, open_store, write_array, write_table
from videoconcepts.stores.decode import Clips, open_decoded
from videoconcepts.stores.sae import (
    ABLATION_COLUMNS,
    FEATURE_COLUMNS,
    GALLERY_KIND,
    METRIC_COLUMNS,
    load_sae,
    normalisation,
    open_sae,
)
from videoconcepts.stores.targets import read_targets

HELP = "reconstruction, temporal coherence, probes, ablation and role IoU of each SAE"


@dataclass(frozen=True)
class SaeMetricsSettings:
    ablate_features: int  # features removed per class in the causal ablation
    random_repeats: int  # random draws of as many features
    gallery_features: int
    gallery_videos: int
    seed: int


Settings = SaeMetricsSettings
# Decoded clips kept between the forward passes (each pass reads every video): the demo's
# all, a large run's memory bounded.
CLIP_CACHE = 64
Truth = Callable[[int], np.ndarray] | None  # video position -> (roles, T', H', W') bool
Encoder = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # x -> (codes, x_hat)


def sae_label(layer: int, k: int, contrastive: float) -> str:
    return f"layer{layer}-k{k}-lambda{contrastive:g}"


@dataclass
class Measured:
    """One dictionary's (or the raw channels') measures over the videos."""

    explained_variance: float
    frequency: np.ndarray  # (units,) share of tokens where each unit fires
    autocorrelation: np.ndarray  # (units,) lag-1 per position on held-out videos, NaN: silent
    frame_autocorrelation: np.ndarray  # (units,) lag-1 of the per-frame mean
    pooled: np.ndarray  # (videos, units) mean code per video
    iou: np.ndarray | None  # (units, roles), with ground truth only; NaN: role absent

    def summary(self) -> dict[str, float]:
        return {
            "explained_variance": self.explained_variance,
            "dead_share": float((self.frequency == 0).mean()),
            "dense_share": float((self.frequency > DENSE_SHARE).mean()),
            "autocorrelation": float(np.nanmean(self.autocorrelation)),
            "frame_autocorrelation": float(np.nanmean(self.frame_autocorrelation)),
            **self.role_summary(),
        }

    def role_summary(self, top: int = 10) -> dict[str, float]:
        """Over the units that fire: the best one's IoU per present role, averaged over
        roles, and the mean best-role IoU of the ``top`` most role-like units."""
        if self.iou is None or not np.isfinite(self.iou).any():
            return {"role_iou": np.nan, "top_feature_iou": np.nan}
        iou = self.iou[self.frequency > 0][:, np.isfinite(self.iou).all(0)]
        return {
            "role_iou": float(iou.max(0).mean()),
            "top_feature_iou": float(np.sort(iou.max(1))[-top:].mean()),
        }


def measure(
    tokens: LayerTokens,
    held: set[int],
    encode: Encoder,
    active: Callable[[np.ndarray], np.ndarray],
    truth: Truth,
    desc: str,
) -> Measured:
    """Stream every video once: ``encode(x)`` gives (codes, reconstruction) of its
    normalised tokens (T', H', W', width), ``active(codes)`` where each unit fires."""
    moments, lag, frame_lag, overlap = Moments(), None, None, None
    fired, seen, pooled = 0.0, 0, []
    for v in tqdm(range(len(tokens.ids)), desc=desc, mininterval=2):
        x = tokens.normalised(v)
        codes, x_hat = encode(x)
        on = active(codes)
        if lag is None:
            lag, frame_lag = LagCorrelation(codes.shape[-1]), LagCorrelation(codes.shape[-1])
        if v in held:
            moments.add(x, x_hat)
            lag.add(codes)
            frame_lag.add(codes.mean(axis=(1, 2)))
        fired = fired + on.reshape(-1, on.shape[-1]).sum(0)
        seen += int(np.prod(on.shape[:-1]))
        pooled.append(codes.reshape(-1, codes.shape[-1]).mean(0))
        if truth is not None:
            roles = truth(v)
            overlap = overlap or RoleOverlap(on.shape[-1], len(roles))
            overlap.add(on, roles)
    return Measured(
        moments.explained_variance(),
        np.asarray(fired) / seen,
        lag.correlation(),
        frame_lag.correlation(),
        np.stack(pooled),
        overlap.iou() if overlap is not None else None,
    )


def sae_encoder(sae: TopKSAE) -> Encoder:
    @torch.inference_mode()
    def encode(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        codes, x_hat = sae(torch.from_numpy(x))
        return codes.numpy(), x_hat.numpy()

    return encode


def raw_channels(
    tokens: LayerTokens, held: set[int], rate: float, truth: Truth, rng: np.random.Generator
) -> Measured:
    """The raw channels measured like a dictionary: their values as codes (explained
    variance 1), and, for the role IoU, each signed channel (+x, -x) active in its top
    ``rate`` share of tokens (quantiles from up to 16 videos): as sparse as the SAE."""
    sample = rng.permutation(len(tokens.ids))[:16]
    signed = np.concatenate([tokens.normalised(v).reshape(-1, tokens.width) for v in sample])
    cut = np.quantile(np.concatenate([signed, -signed], axis=1), 1 - rate, axis=0)
    return measure(
        tokens,
        held,
        lambda x: (x, x),
        lambda x: np.concatenate([x, -x], axis=-1) > cut,
        truth,
        f"layer {tokens.layer} raw channels",
    )


def probe(seed: int):
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))


def probe_accuracy(pooled: np.ndarray, labels: np.ndarray | None, seed: int) -> float:
    """Cross-validated accuracy of a logistic-regression probe over videos (NaN without
    two classes of two videos or more)."""
    if labels is None:
        return float("nan")
    _, counts = np.unique(labels, return_counts=True)
    if len(counts) < 2 or counts.min() < 2:
        return float("nan")
    folds = StratifiedKFold(n_splits=min(5, int(counts.min())), shuffle=True, random_state=seed)
    return float(cross_val_score(probe(seed), pooled, labels, cv=folds).mean())


def class_weights(
    pooled: np.ndarray, labels: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(classes, weights (classes, units)): a probe fit on every video's standardised mean
    code, one weight row per class (two classes: the one row and its negative)."""
    fitted = probe(seed).fit(pooled, labels)[-1]
    coef = fitted.coef_
    weights = coef if len(fitted.classes_) > 2 else np.concatenate([-coef, coef])
    return fitted.classes_, weights


Edit = Callable[[np.ndarray], Callable[[torch.Tensor], torch.Tensor]]


@torch.inference_mode()
def clip_scores(
    adapter: ModelAdapter,
    clips: Clips,
    targets: np.ndarray,
    metric: str,
    batch: int,
    edit: tuple[int, Edit] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target score, predicted column, the target's softmax probability, NaN without
    classes) per clip, read a batch at a time, with ``edit`` = (layer, rows -> the
    function of those clips' patch tokens) applied to the residual stream. The
    probability is graded where a 0/1 metric (correctness) hides what an edit does."""
    outputs = []
    for start in range(0, len(clips), batch):
        rows = np.arange(start, min(start + batch, len(clips)))
        part = torch.from_numpy(np.stack([clips.frames(int(r)) for r in rows]))
        if edit is None:
            outputs.append(adapter.logits(part).cpu())
        else:
            with adapter.edited_residual(edit[0], edit[1](rows), len(part)):
                outputs.append(adapter.logits(part).cpu())
    logits = torch.cat(outputs)
    target = torch.tensor(targets, dtype=torch.long)
    score = get_metric(metric)(logits, target).numpy()
    probability = (
        get_metric("prob")(logits, target).numpy()
        if adapter.has_classes
        else np.full(len(score), np.nan)
    )
    return score, logits.argmax(-1).numpy(), probability


def sae_edit(sae: TopKSAE, mean: np.ndarray, scale: float, removed: np.ndarray | None) -> Edit:
    """An edit of raw tokens: without ``removed`` the reconstruction replaces them
    (spliced); with it, (clips, features) bool, each clip's removed features'
    contributions are subtracted (the reconstruction error stays, so every other
    feature's part is untouched)."""

    def for_rows(rows: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
        def edit(x: torch.Tensor) -> torch.Tensor:  # (clips, tokens, width)
            offset = torch.from_numpy(mean).to(x.device)
            model = sae.to(x.device)
            codes = model.encode((x - offset) / scale)
            if removed is None:
                return model.decode(codes) * scale + offset
            mask = torch.from_numpy(removed[rows]).to(x.device, codes.dtype)[:, None]
            return x - ((codes * mask) @ model.decoder) * scale

        return edit

    return for_rows


@dataclass
class Scoring:
    """The model and the videos it is scored on, unedited."""

    adapter: ModelAdapter
    clips: Clips
    targets: np.ndarray  # (V,)
    metric: str
    batch: int
    clean: np.ndarray  # (V,) unedited target scores
    clean_probability: np.ndarray  # (V,) unedited target probabilities (NaN: no classes)

    def run(self, edit: tuple[int, Edit] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return clip_scores(self.adapter, self.clips, self.targets, self.metric, self.batch, edit)


def ablation(
    scoring: Scoring,
    layer: int,
    edit_of: Callable[[np.ndarray], Edit],
    found: Measured,
    labels: np.ndarray,
    settings: Settings,
    rng: np.random.Generator,
) -> tuple[list[tuple], np.ndarray, np.ndarray]:
    """Per class, remove the probe's top features from that class's videos, then as many
    random live ones (every class's videos in one pass per draw); rows of
    ``sae_ablation.tsv`` (without model and SAE), the classes and the probe's weights."""
    classes, weights = class_weights(found.pooled, labels, settings.seed)
    alive = np.flatnonzero(found.frequency > 0)
    m = min(settings.ablate_features, len(alive))
    draws = [("top", 0, [np.argsort(-weights[c])[:m] for c in range(len(classes))])]
    draws += [
        ("random", r, [rng.choice(alive, m, replace=False) for _ in classes])
        for r in range(settings.random_repeats)
    ]
    rows = []
    for kind, repeat, chosen in draws:
        removed = np.zeros((len(labels), len(found.frequency)), bool)
        for cls, features in zip(classes, chosen, strict=True):
            removed[np.ix_(labels == cls, features)] = True
        ablated, _, probability = scoring.run((layer, edit_of(removed)))
        for cls, features in zip(classes, chosen, strict=True):
            videos = labels == cls
            drop = float((scoring.clean[videos] - ablated[videos]).mean())
            fall = float((scoring.clean_probability[videos] - probability[videos]).mean())
            named = " ".join(map(str, sorted(features)))
            score = float(ablated[videos].mean())
            rows.append((cls, kind, repeat, named, int(videos.sum()), score, drop, fall))
    return rows, classes, weights


def gallery_of(
    found: Measured, encode: Encoder, tokens: LayerTokens, rank: np.ndarray, settings: Settings
) -> tuple[list[int], list[list[int]], np.ndarray]:
    """The top features by ``rank`` (lower first) that fire, the videos where each is
    strongest on average, and its activation maps there (features, videos, T', H', W')."""
    top = [int(f) for f in np.argsort(rank, kind="stable") if found.frequency[f] > 0]
    top = top[: settings.gallery_features]
    videos = [np.argsort(-found.pooled[:, f])[: settings.gallery_videos].tolist() for f in top]
    codes = {v: encode(tokens.normalised(v))[0] for v in {v for vs in videos for v in vs}}
    maps = [np.stack([codes[v][..., f] for v in vs]) for f, vs in zip(top, videos, strict=True)]
    shape = (0, settings.gallery_videos, *tokens.grid)
    return top, videos, np.stack(maps) if maps else np.zeros(shape, np.float32)


def sample_labels(samples: str | None, ids: Sequence[str]) -> np.ndarray | None:
    """The sheet's labels of ``ids``, or None when any is missing."""
    if not samples:
        return None
    sheet = load_samples(samples, check_files=False).set_index("id")
    found = sheet.loc[list(ids), "label"].fillna("").astype(str).to_numpy()
    return found if (found != "").all() else None


def sae_metrics(
    name: str,
    sae_stores: Sequence[str | Path],
    decode_stores: Sequence[str | Path],
    targets_path: str | Path,
    samples: str | None,
    ground_truth: str | None,
    scoring_settings: TargetSettings,
    settings: SaeMetricsSettings,
    runtime: Runtime,
    gallery: str | Path,
) -> dict[str, pd.DataFrame]:
    groups = [open_sae(p) for p in sae_stores]
    ids = list(groups[0].attrs["video_ids"])
    by_id = {open_decoded(p).attrs["video_id"]: str(p) for p in decode_stores}
    missing = [v for v in ids if v not in by_id]
    if missing:
        raise ValueError(f"no decode store for the SAE's videos {missing[:5]}")
    decoded = [by_id[v] for v in ids]
    labels = sample_labels(samples, ids)
    truth_store = open_store(ground_truth, "ground_truth") if ground_truth else None
    roles = list(truth_store.attrs["roles"]) if truth_store is not None else []
    on_grid: dict[tuple, np.ndarray] = {}

    def truth_for(grid: tuple[int, ...]) -> Truth:
        if truth_store is None:
            return None

        def truth(v: int) -> np.ndarray:
            if (v, grid) not in on_grid:
                on_grid[(v, grid)] = role_masks_on_grid(
                    truth_store, ids[v], open_decoded(decoded[v]), grid
                )
            return on_grid[(v, grid)]

        return truth

    targets, _ = read_targets(targets_path, ids)
    adapter = load_adapter(scoring_settings.model, runtime.device, runtime.precision)
    clips = Clips(ids, decoded, cache=CLIP_CACHE)
    clean, _, probability = clip_scores(
        adapter, clips, targets, scoring_settings.metric, runtime.batch_size
    )
    scoring = Scoring(
        adapter, clips, targets, scoring_settings.metric, runtime.batch_size, clean, probability
    )
    rng = np.random.default_rng(settings.seed)
    metric_rows, feature_rows, ablation_rows = [], [], []
    shown: dict[str, list] = {"saes": [], "features": [], "videos": [], "maps": []}
    layers: dict[int, LayerTokens] = {}
    Described = tuple[Measured, dict[str, float]]
    raws: dict[tuple[int, float], Described] = {}
    untrained: dict[tuple[int, int, int, int], Described] = {}  # an initialisation's
    plain: dict[tuple[int, int], dict] = {}  # (layer, k) -> the lambda-0 SAE's summary

    def described(measured: Measured) -> Described:
        """A dictionary's measures and its summary, the probe's accuracy included,
        computed once however many SAEs compare against it."""
        probe = probe_accuracy(measured.pooled, labels, settings.seed)
        return measured, {**measured.summary(), "probe_accuracy": probe}

    for path, group in zip(sae_stores, groups, strict=True):
        s = group.attrs["settings"]
        layer, k, weight = int(group.attrs["layer"]), int(s["k"]), float(s["contrastive"])
        label = sae_label(layer, k, weight)
        if list(group.attrs["video_ids"]) != ids:
            raise ValueError(f"{path}: trained on other videos than the model's other SAEs")
        tokens = layers.setdefault(layer, LayerTokens(group.attrs["feature_stores"], layer))
        tokens.mean, tokens.scale = normalisation(group)
        held = {ids.index(v) for v in group.attrs["heldout_videos"]}
        truth = truth_for(tokens.grid)
        sae = load_sae(group)
        encode = sae_encoder(sae)
        found, found_summary = described(
            measure(tokens, held, encode, lambda z: z > 0, truth, label)
        )
        start = (layer, k, sae.n_features, int(s["seed"]))  # lambda does not change it
        if start not in untrained:
            initial = TopKSAE(tokens.width, sae.n_features, k, int(s["seed"]))
            untrained[start] = described(
                measure(
                    tokens, held, sae_encoder(initial), lambda z: z > 0, truth, f"{label} untrained"
                )
            )
        rate = k / sae.n_features
        if (layer, rate) not in raws:
            raws[(layer, rate)] = described(raw_channels(tokens, held, rate, truth, rng))
        raw = raws[(layer, rate)][1]
        mean, scale = normalisation(group)
        spliced, spliced_class, _ = scoring.run((layer, sae_edit(sae, mean, scale, None)))
        classes = weights = None
        drops = {"top": [], "random": []}  # (score drop, probability drop) per class
        if labels is not None and len(set(labels)) >= 2:
            rows, classes, weights = ablation(
                scoring,
                layer,
                partial(sae_edit, sae, mean, scale),
                found,
                labels,
                settings,
                rng,
            )
            for row in rows:
                drops[row[1]].append(row[-2:])
                ablation_rows.append((name, label, *row))
        if weight == 0:
            plain[(layer, k)] = found_summary
        common = {
            "model": name,
            "layer": layer,
            "k": k,
            "features": sae.n_features,
            **{
                f"raw_{key}": raw[key]
                for key in (
                    "autocorrelation",
                    "frame_autocorrelation",
                    "probe_accuracy",
                    "role_iou",
                    "top_feature_iou",
                )
            },
        }
        accuracy = float((spliced_class == targets).mean()) if adapter.has_classes else np.nan
        for summary, row in (
            (
                found_summary,
                {
                    "sae": label,
                    "contrastive": weight,
                    **{
                        f"plain_{key}": plain.get((layer, k), {}).get(key, np.nan)
                        for key in ("autocorrelation", "frame_autocorrelation")
                    },
                    "spliced_accuracy": accuracy,
                    "spliced_score_drop": float((clean - spliced).mean()),
                    **{
                        f"{prefix}ablation_{what}": np.mean(np.array(drops[kind])[:, column])
                        if drops[kind]
                        else np.nan
                        for kind, prefix in (("top", ""), ("random", "random_"))
                        for column, what in enumerate(("drop", "probability_drop"))
                    },
                },
            ),
            (untrained[start][1], {"sae": f"{label}-untrained"}),
        ):
            metric_rows.append(
                {
                    **common,
                    **row,
                    **summary,
                    **{
                        f"{key}_change": summary[key] / common[f"raw_{key}"] - 1
                        for key in ("autocorrelation", "frame_autocorrelation")
                    },
                }
            )
        present = found.iou is not None and np.isfinite(found.iou).any()
        best_role = np.nanargmax(found.iou, axis=1) if present else None
        for f in range(sae.n_features):
            feature_rows.append(
                {
                    "model": name,
                    "sae": label,
                    "feature": f,
                    "frequency": found.frequency[f],
                    "autocorrelation": found.autocorrelation[f],
                    "probe_class": classes[weights[:, f].argmax()] if weights is not None else "",
                    "probe_weight": weights[:, f].max() if weights is not None else np.nan,
                    "role": roles[best_role[f]] if best_role is not None else "",
                    "role_iou": found.iou[f, best_role[f]] if best_role is not None else np.nan,
                }
            )
        # gallery: the best feature of each role, then the most role-like (demo), else
        # the probe's strongest, else the most temporally coherent
        if best_role is not None:
            iou = np.where(found.frequency[:, None] > 0, np.nan_to_num(found.iou, nan=-1), -1)
            rank = -iou.max(1)
            for role in np.flatnonzero(np.isfinite(found.iou).all(0)):
                rank[iou[:, role].argmax()] = -2 - iou[:, role].max()
        elif weights is not None:
            rank = -weights.max(0)
        else:
            rank = -np.nan_to_num(found.autocorrelation, nan=-2.0)
        units, videos, maps = gallery_of(found, encode, tokens, rank, settings)
        for key, value in zip(shown, (label, units, videos, maps), strict=True):
            shown[key].append(value)
        print(f"{label}: {metric_rows[-2]}", file=sys.stderr)
        if found.explained_variance < 0.5:
            print(
                f"warning: {label} explains {found.explained_variance:.2f} of the held-out "
                f"videos' variance ({len(held)} videos; {len(ids) - len(held)} trained on): "
                "with few training videos its features fit them, not the layer",
                file=sys.stderr,
            )
    with atomic_store(
        gallery,
        GALLERY_KIND,
        model=name,
        saes=shown["saes"],
        features=shown["features"],
        videos=shown["videos"],
        video_ids=ids,
        decode_stores=decoded,
        sae_stores=[str(p) for p in sae_stores],
    ) as group:
        for i, maps in enumerate(shown["maps"]):
            write_array(group, f"maps-{i}", maps.astype(np.float32))
    return {
        "metrics": pd.DataFrame(metric_rows, columns=list(METRIC_COLUMNS)),
        "features": pd.DataFrame(feature_rows, columns=list(FEATURE_COLUMNS)),
        "ablation": pd.DataFrame(ablation_rows, columns=list(ABLATION_COLUMNS)),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="the model's name in the run")
    parser.add_argument("--metrics", required=True, help="one row per SAE (.tsv)")
    parser.add_argument("--features", required=True, help="one row per SAE feature (.tsv)")
    parser.add_argument("--ablation", required=True, help="causal ablation per class (.tsv)")
    parser.add_argument("--gallery", required=True, help="top features' maps (.zarr)")
    parser.add_argument("--targets", required=True, help="the targets stage's table")
    parser.add_argument("--samples", default=None, help="sample sheet (labels for the probe)")
    parser.add_argument("--ground-truth", default=None, help="the demo's ground truth store")
    parser.add_argument("--decoded", nargs="+", required=True, help="the decode stores")
    parser.add_argument(
        "--scoring", required=True, type=typed_json(TargetSettings), help="model, metric, target"
    )
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    Runtime.add_arguments(parser)
    parser.add_argument("saes", nargs="+", help="the model's SAE stores (after --)")


def run(args: argparse.Namespace) -> None:
    runtime = Runtime.from_args(args)
    tables = sae_metrics(
        args.name,
        args.saes,
        args.decoded,
        args.targets,
        args.samples,
        args.ground_truth,
        args.scoring,
        args.settings,
        runtime,
        args.gallery,
    )
    for key in ("metrics", "features", "ablation"):
        write_table(tables[key], getattr(args, key), "%.6g")
    print(tables["metrics"].to_string(index=False), file=sys.stderr)

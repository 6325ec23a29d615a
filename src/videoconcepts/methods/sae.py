"""Video sparse autoencoders (paper 000): a TopK SAE with Matryoshka groups and a
temporal contrastive term, trained on token pairs one time step apart, and the measures
that compare it with the raw features.

The estimator is ours (a few dozen lines of PyTorch): overcomplete 0.3 needs torchvision,
timm and opencv, which do not install with the CPU torch here, and SAELens is built
around language models and their hooks.

TopK: each token keeps its k largest encoder pre-activations (ReLU'd), every other code
is zero. Matryoshka: the dictionary's nested prefixes (the first F/G, 2F/G, ... features)
must each reconstruct the token on their own, so early features carry the coarse part.
Contrastive: the codes of one position at time steps t and t+1 of a clip are a positive
pair, every other pair in the batch (other positions, other clips) a negative
(symmetric InfoNCE on cosine similarity), weighted by ``contrastive``.
Dead features: as in Gao et al. 2024 (the TopK SAE), features silent for ``DEAD_STEPS``
steps are trained to reconstruct what the live ones miss (the auxiliary-k loss), so a
feature that started in the wrong place is not lost for good: without it a plain SAE
missed one of 24 planted atoms, depending on the thread count.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

# A feature firing on more than this share of tokens is "dense" (it carries no selectivity).
DENSE_SHARE = 0.1
# The auxiliary-k loss (Gao et al. 2024): features silent this many steps are dead; the
# 2k largest of their pre-activations reconstruct the error, at this weight.
DEAD_STEPS = 50
AUX_WEIGHT = 1 / 32


class TopKSAE(nn.Module):
    """x (..., width) -> codes z (..., n_features), k of them nonzero -> x_hat."""

    def __init__(self, width: int, n_features: int, k: int, seed: int):
        super().__init__()
        if not 0 < k <= n_features:
            raise ValueError(f"k must be in 1..{n_features} (the dictionary size), got {k}")
        generator = torch.Generator().manual_seed(seed)
        directions = F.normalize(torch.randn(n_features, width, generator=generator), dim=1)
        self.k = k
        self.decoder = nn.Parameter(directions.clone())  # (F, D), unit rows
        self.encoder = nn.Parameter(directions.T.clone())  # (D, F), tied at the start
        self.encoder_bias = nn.Parameter(torch.zeros(n_features))
        self.decoder_bias = nn.Parameter(torch.zeros(width))

    @property
    def n_features(self) -> int:
        return self.decoder.shape[0]

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.decoder_bias) @ self.encoder + self.encoder_bias

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return top_k(self.pre_activations(x), self.k)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes @ self.decoder + self.decoder_bias

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = self.encode(x)
        return codes, self.decode(codes)

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Unit-norm dictionary rows, so a code's size is its feature's contribution."""
        self.decoder.div_(self.decoder.norm(dim=1, keepdim=True).clamp_min(1e-8))


def top_k(pre: torch.Tensor, k: int) -> torch.Tensor:
    """The k largest of each row, ReLU'd, every other entry zero."""
    top = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, top.indices, F.relu(top.values))


def auxiliary_loss(
    sae: TopKSAE, x: torch.Tensor, codes: torch.Tensor, pre: torch.Tensor, dead: torch.Tensor
) -> torch.Tensor:
    """The dead features' best 2k pre-activations reconstructing the live codes' error,
    as a share of that error's size (0 without dead features)."""
    n_dead = int(dead.sum())
    if n_dead == 0:
        return torch.zeros((), device=x.device)
    error = (x - sae.decode(codes)).detach()
    masked = pre.masked_fill(~dead, float("-inf"))
    aux = top_k(masked, min(2 * sae.k, n_dead)).nan_to_num(0.0)
    return (aux @ sae.decoder - error).pow(2).sum(-1).mean() / error.pow(2).sum(
        -1
    ).mean().clamp_min(1e-8)


def prefix_sizes(n_features: int, groups: int) -> list[int]:
    """The Matryoshka prefixes: the first F/G, 2F/G, ..., F features (groups=1: plain)."""
    if not 1 <= groups <= n_features:
        raise ValueError(f"matryoshka_groups must be in 1..{n_features}, got {groups}")
    return [round(n_features * g / groups) for g in range(1, groups + 1)]


def reconstruction_loss(
    sae: TopKSAE, x: torch.Tensor, codes: torch.Tensor, prefixes: list[int]
) -> torch.Tensor:
    """Mean over prefixes of the squared error of the prefix's reconstruction."""
    losses = [
        (codes[:, :m] @ sae.decoder[:m] + sae.decoder_bias - x).pow(2).sum(-1).mean()
        for m in prefixes
    ]
    return torch.stack(losses).mean()


def temporal_infonce(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: row i of ``first`` and of ``second`` (codes one time step apart
    at one position) are positives, every other row a negative."""
    logits = F.normalize(first, dim=-1) @ F.normalize(second, dim=-1).T / temperature
    labels = torch.arange(len(first), device=first.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


@dataclass(frozen=True)
class TrainSettings:
    k: int
    contrastive: float  # lambda, the weight of the temporal InfoNCE term
    expansion: int  # dictionary size = expansion x width
    matryoshka_groups: int
    temperature: float
    learning_rate: float
    epochs: int
    batch_size: int  # token pairs per step
    seed: int


Batches = Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]


def _digest(settings: TrainSettings, width: int, extra: dict) -> str:
    text = json.dumps({**asdict(settings), "width": width, **extra}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _save_atomically(state: dict, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, temporary)
    os.replace(temporary, path)


def train_sae(
    width: int,
    batches: Batches,
    settings: TrainSettings,
    checkpoint: Path | None = None,
    every: int = 50,
    autocast: torch.autocast | None = None,
    device: torch.device | None = None,
    identity: dict | None = None,
    log: Callable[[str], None] = print,
    steps_per_epoch: int | None = None,
) -> tuple[TopKSAE, list[tuple[int, float, float, float]]]:
    """Train one SAE on ``batches(epoch)`` (pairs of (B, width) tokens one time step
    apart, in a fixed order per epoch); return it and its history (step, loss,
    reconstruction, contrastive, auxiliary) per step.

    With ``checkpoint``, the state (weights, optimiser, position in the data) is saved
    every ``every`` steps and at each epoch's end, and a matching checkpoint (same
    settings, width and ``identity``) is resumed from: the data order depends on the
    epoch only, so a resumed run ends with the weights an uninterrupted one would have.
    """
    device = device or torch.device("cpu")
    torch.manual_seed(settings.seed)
    sae = TopKSAE(width, settings.expansion * width, settings.k, settings.seed).to(device)
    optimiser = torch.optim.Adam(sae.parameters(), lr=settings.learning_rate)
    prefixes = prefix_sizes(sae.n_features, settings.matryoshka_groups)
    digest = _digest(settings, width, identity or {})
    history: list[tuple[int, float, float, float, float]] = []
    start, skip, step = 0, 0, 0
    silent = torch.zeros(sae.n_features, dtype=torch.long, device=device)  # steps since fired
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state["digest"] == digest:
            sae.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            start, skip, step = state["epoch"], state["batch"], state["step"]
            history, silent = state["history"], state["silent"].to(device)
            log(f"resumed from {checkpoint} at step {step} (epoch {start}, batch {skip})")
        else:
            log(f"{checkpoint}: made with other settings or data, starting afresh")

    def save(epoch: int, batch: int) -> None:
        if checkpoint is not None:
            _save_atomically(
                {
                    "digest": digest,
                    "model": sae.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "epoch": epoch,
                    "batch": batch,
                    "step": step,
                    "history": history,
                    "silent": silent,
                },
                checkpoint,
            )

    context = autocast if autocast is not None else torch.autocast(device.type, enabled=False)
    total = steps_per_epoch * settings.epochs if steps_per_epoch else None
    progress = tqdm(total=total, initial=step, desc="sae steps", mininterval=2)
    for epoch in range(start, settings.epochs):
        for b, (first, second) in enumerate(batches(epoch)):
            if b < skip:
                continue
            first, second = first.to(device), second.to(device)
            with context:
                x = torch.cat([first, second])
                pre = sae.pre_activations(x)
                codes = top_k(pre, sae.k).float()
                x = x.float()
                reconstruction = reconstruction_loss(sae, x, codes, prefixes)
                auxiliary = auxiliary_loss(sae, x, codes, pre.float(), silent >= DEAD_STEPS)
                loss = reconstruction + AUX_WEIGHT * auxiliary
                contrast = torch.zeros(())
                if settings.contrastive > 0:
                    half = len(first)
                    contrast = temporal_infonce(codes[:half], codes[half:], settings.temperature)
                    loss = loss + settings.contrastive * contrast
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            sae.normalise_decoder()
            fired = (codes > 0).any(0)
            silent = torch.where(fired, 0, silent + 1)
            step += 1
            history.append(
                (step, loss.item(), reconstruction.item(), contrast.item(), auxiliary.item())
            )
            progress.update()
            if step % every == 0:
                save(epoch, b + 1)
        skip = 0
        save(epoch + 1, 0)
    progress.close()
    return sae, history


# --- measures --------------------------------------------------------------------------
class Moments:
    """Streaming sums for explained variance: the data's per-dimension moments and the
    reconstruction's squared error."""

    def __init__(self) -> None:
        self.n, self.total, self.squares, self.error = 0, 0.0, 0.0, 0.0

    def add(self, x: np.ndarray, x_hat: np.ndarray) -> None:
        x = x.reshape(-1, x.shape[-1]).astype(np.float64)
        self.n += len(x)
        self.total = self.total + x.sum(0)
        self.squares = self.squares + (x**2).sum(0)
        self.error += float(((x - x_hat.reshape(x.shape)) ** 2).sum())

    def explained_variance(self) -> float:
        """1 - squared error / total variance around the data's own mean."""
        variance = float((self.squares - self.total**2 / self.n).sum())
        return 1.0 - self.error / variance


class LagCorrelation:
    """Streaming lag-1 autocorrelation along time of each unit: Pearson correlation of
    (a_t, a_{t+1}) pooled over every position and clip added."""

    def __init__(self, units: int) -> None:
        self.n = 0
        self.sums = np.zeros((5, units))  # a, b, a^2, b^2, ab

    def add(self, series: np.ndarray) -> None:
        """``series`` (T, ..., units): one clip's activations on the token grid."""
        a = series[:-1].reshape(-1, series.shape[-1]).astype(np.float64)
        b = series[1:].reshape(-1, series.shape[-1]).astype(np.float64)
        self.n += len(a)
        self.sums += np.stack([a.sum(0), b.sum(0), (a * a).sum(0), (b * b).sum(0), (a * b).sum(0)])

    def correlation(self) -> np.ndarray:
        """Per unit; NaN where a unit never varies (it never fired)."""
        sa, sb, saa, sbb, sab = self.sums / max(self.n, 1)
        cov = sab - sa * sb
        var = (saa - sa**2) * (sbb - sb**2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(var > 1e-12, cov / np.sqrt(np.maximum(var, 1e-300)), np.nan)


class RoleOverlap:
    """Streaming IoU of each unit's active tokens with each ground-truth role's masks,
    over every clip added (intersections and unions summed, then divided)."""

    def __init__(self, units: int, roles: int) -> None:
        self.intersection = np.zeros((units, roles))
        self.active = np.zeros(units)
        self.role = np.zeros(roles)

    def add(self, active: np.ndarray, roles: np.ndarray) -> None:
        """``active`` (T, H, W, units) bool, ``roles`` (R, T, H, W) bool, one clip."""
        a = active.reshape(-1, active.shape[-1]).astype(np.float64)
        r = roles.reshape(len(roles), -1).T.astype(np.float64)
        self.intersection += a.T @ r
        self.active += a.sum(0)
        self.role += r.sum(0)

    def iou(self) -> np.ndarray:
        """(units, roles); NaN for a role absent from every clip (nothing to match)."""
        union = self.active[:, None] + self.role[None] - self.intersection
        iou = self.intersection / np.maximum(union, 1)
        iou[:, self.role == 0] = np.nan
        return iou


def match_dictionaries(learned: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Cosine similarity of each true atom (rows of ``truth``) with its Hungarian-matched
    learned atom (rows of ``learned``, at least as many)."""
    from scipy.optimize import linear_sum_assignment

    cos = np.abs(
        (truth / np.linalg.norm(truth, axis=1, keepdims=True))
        @ (learned / np.linalg.norm(learned, axis=1, keepdims=True)).T
    )
    rows, cols = linear_sum_assignment(-cos)
    return cos[rows, cols]


def pair_batches(
    clips: Iterator[np.ndarray], batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every (t, t+1) token pair at the same position of the clips (each (T, ..., width)),
    shuffled with ``rng``, in batches of ``batch_size`` pairs (a last one of 2 or more)."""
    firsts, seconds = [], []
    for clip in clips:
        firsts.append(clip[:-1].reshape(-1, clip.shape[-1]))
        seconds.append(clip[1:].reshape(-1, clip.shape[-1]))
    if not firsts:
        return
    first, second = np.concatenate(firsts), np.concatenate(seconds)
    order = rng.permutation(len(first))
    for start in range(0, len(order), batch_size):
        at = order[start : start + batch_size]
        if len(at) >= 2:
            yield torch.from_numpy(first[at]), torch.from_numpy(second[at])

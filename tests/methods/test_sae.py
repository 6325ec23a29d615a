"""The video SAE on planted data: a known sparse dictionary whose codes persist over
time, read through noise. The plain TopK SAE recovers the dictionary; TopK's spare slots
follow the noise and flicker, and the temporal contrastive term steadies them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videoconcepts.methods.sae import (
    LagCorrelation,
    Moments,
    RoleOverlap,
    TopKSAE,
    TrainSettings,
    match_dictionaries,
    pair_batches,
    prefix_sizes,
    temporal_infonce,
    train_sae,
)

WIDTH, ATOMS, STEPS, POSITIONS, CLIPS = 32, 24, 8, 16, 40


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, list[np.ndarray]]:
    """(atoms (24, 32), clips (8 steps, 16 positions, 32)): two atoms active per token,
    each kept from one step to the next with probability 0.85, plus noise."""
    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(ATOMS, WIDTH))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    clips = []
    for _ in range(CLIPS):
        codes = np.zeros((STEPS, POSITIONS, ATOMS))
        for p in range(POSITIONS):
            active = rng.choice(ATOMS, 2, replace=False)
            for t in range(STEPS):
                if rng.random() < 0.15:
                    active[rng.integers(2)] = rng.integers(ATOMS)
                codes[t, p, active] = rng.uniform(0.5, 1.5, 2)
        noise = 0.05 * rng.normal(size=(STEPS, POSITIONS, WIDTH))
        clips.append((codes @ atoms + noise).astype(np.float32))
    return atoms, clips


def settings(**changes) -> TrainSettings:
    base = dict(
        k=4,
        contrastive=0.0,
        expansion=2,
        matryoshka_groups=1,
        temperature=0.1,
        learning_rate=3e-3,
        epochs=50,
        batch_size=128,
        seed=0,
    )
    return TrainSettings(**{**base, **changes})


def batches_of(clips):
    def batches(epoch: int):
        return pair_batches(iter(clips), 128, np.random.default_rng([0, epoch]))

    return batches


def coherence(sae: TopKSAE, clips) -> float:
    lag = LagCorrelation(sae.n_features)
    with torch.no_grad():
        for clip in clips:
            lag.add(sae.encode(torch.from_numpy(clip)).numpy())
    return float(np.nanmean(lag.correlation()))


@pytest.fixture(scope="module")
def trained(planted):
    """SAEs by (k, lambda): the plain one at the planted sparsity and at k=4, and k=4
    with the contrastive term."""
    _, clips = planted
    return {
        (k, weight): train_sae(WIDTH, batches_of(clips), settings(k=k, contrastive=weight))[0]
        for k, weight in ((2, 0.0), (4, 0.0), (4, 0.3))
    }


def test_the_plain_sae_recovers_the_planted_dictionary(planted, trained):
    atoms, _ = planted
    cosines = match_dictionaries(trained[(2, 0.0)].decoder.detach().numpy(), atoms)
    assert cosines.min() > 0.9
    # an untrained dictionary of the same size does not
    untrained = TopKSAE(WIDTH, 2 * ATOMS, 2, seed=0)
    assert np.median(match_dictionaries(untrained.decoder.detach().numpy(), atoms)) < 0.6


def test_the_contrastive_term_raises_the_codes_autocorrelation(planted, trained):
    atoms, clips = planted
    plain, contrastive = coherence(trained[(4, 0.0)], clips), coherence(trained[(4, 0.3)], clips)
    assert contrastive > plain + 0.03
    # TopK's spare slots make the plain SAE flicker below the planted codes' own coherence
    assert plain < 0.75
    # and the dictionary survives the contrastive term
    cosines = match_dictionaries(trained[(4, 0.3)].decoder.detach().numpy(), atoms)
    assert np.median(cosines) > 0.95


def test_topk_keeps_k_codes_per_token_and_the_decoder_rows_unit_norm(planted, trained):
    _, clips = planted
    sae = trained[(4, 0.3)]
    codes = sae.encode(torch.from_numpy(clips[0]))
    assert ((codes > 0).sum(-1) <= 4).all() and (codes >= 0).all()
    assert torch.allclose(sae.decoder.norm(dim=1), torch.ones(sae.n_features), atol=1e-5)


def test_matryoshka_prefixes_reconstruct_on_their_own(planted):
    _, clips = planted
    x = torch.from_numpy(np.concatenate([c.reshape(-1, WIDTH) for c in clips[:8]]))

    def half_error(groups: int) -> float:
        sae, _ = train_sae(WIDTH, batches_of(clips), settings(matryoshka_groups=groups, epochs=30))
        with torch.no_grad():
            codes = sae.encode(x)
            half = sae.n_features // 2
            x_hat = codes[:, :half] @ sae.decoder[:half] + sae.decoder_bias
        return float(((x - x_hat) ** 2).sum(-1).mean())

    assert half_error(2) < 0.6 * half_error(1)
    assert prefix_sizes(48, 2) == [24, 48] and prefix_sizes(48, 1) == [48]


def test_infonce_prefers_matching_rows():
    rng = torch.Generator().manual_seed(0)
    a = torch.rand(16, 8, generator=rng)
    assert temporal_infonce(a, a, 0.1) < temporal_infonce(a, a.roll(1, 0), 0.1)


def test_pair_batches_pair_each_position_with_the_next_step_only():
    clip = np.arange(3 * 2 * 1, dtype=np.float32).reshape(3, 2, 1)  # value = 2t + p
    pairs = list(pair_batches(iter([clip]), 100, np.random.default_rng(0)))
    first, second = pairs[0]
    assert len(pairs) == 1 and len(first) == 4
    assert torch.equal(second - first, torch.full_like(first, 2.0))


def test_streaming_measures_equal_their_direct_formulas():
    rng = np.random.default_rng(1)
    series = [rng.normal(size=(5, 3, 4)).cumsum(0) for _ in range(3)]
    lag = LagCorrelation(4)
    for s in series:
        lag.add(s)
    a = np.concatenate([s[:-1].reshape(-1, 4) for s in series])
    b = np.concatenate([s[1:].reshape(-1, 4) for s in series])
    direct = [np.corrcoef(a[:, u], b[:, u])[0, 1] for u in range(4)]
    assert np.allclose(lag.correlation(), direct)

    x, x_hat = rng.normal(size=(50, 6)) + 3, rng.normal(size=(50, 6))
    moments = Moments()
    moments.add(x[:20], x_hat[:20])
    moments.add(x[20:], x_hat[20:])
    direct_ev = 1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert moments.explained_variance() == pytest.approx(direct_ev)

    active = rng.random((2, 3, 3, 2)) > 0.5
    roles = np.stack([active[..., 0], ~active[..., 0]])
    overlap = RoleOverlap(2, 2)
    overlap.add(active, roles)
    iou = overlap.iou()
    assert iou[0, 0] == pytest.approx(1.0) and iou[0, 1] == pytest.approx(0.0)


def test_a_killed_training_resumes_to_the_same_weights(planted, tmp_path):
    _, clips = planted
    chosen = settings(contrastive=0.3, epochs=3, matryoshka_groups=2)
    whole, history = train_sae(WIDTH, batches_of(clips), chosen)

    class Killed(Exception):
        pass

    def dying(epoch: int):
        for b, batch in enumerate(batches_of(clips)(epoch)):
            if epoch == 1 and b == 7:
                raise Killed  # step 43 of 35 a epoch: two steps after the last checkpoint
            yield batch

    checkpoint = tmp_path / "sae.checkpoint.pt"
    with pytest.raises(Killed):
        train_sae(WIDTH, dying, chosen, checkpoint=checkpoint, every=4)
    assert checkpoint.is_file()
    resumed, resumed_history = train_sae(
        WIDTH, batches_of(clips), chosen, checkpoint=checkpoint, every=4
    )
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert [h[0] for h in resumed_history] == [h[0] for h in history]
    # a checkpoint of other settings is not resumed from
    other = settings(contrastive=0.1, epochs=1)
    messages = []
    train_sae(WIDTH, batches_of(clips), other, checkpoint=checkpoint, log=messages.append)
    assert any("other settings" in m for m in messages)

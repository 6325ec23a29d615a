"""units: every concept of every analysed layer and head as one maskable unit.

Tubelet label volumes live on the upsampled grid the proposals ran on, so each token
takes the concept that covers most of its voxels (voxels outside any kept tubelet count
as "no concept"): :func:`videoconcepts.methods.tokens.plurality_tokens`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from tqdm import tqdm

from videoconcepts.methods.tokens import plurality_tokens
from videoconcepts.stores.concepts import ConceptSupport, open_concepts
from videoconcepts.stores.features import open_features
from videoconcepts.stores.tubelets import open_tubelets
from videoconcepts.stores.units import UNIT_COLUMNS, write_units

HELP = "token masks of every concept (maskable units)"


def _video_sources(concepts: zarr.Group) -> list[str]:
    """Decode store of every video of a concept store, in its global video order."""
    sources = []
    for path in concepts.attrs["tubelet_stores"]:
        features = open_features(open_tubelets(path).attrs["feature_store"]).attrs
        sources.extend(features["decode_stores"])
    return sources


def _concept_blocks(
    groups: Sequence[zarr.Group], grid: Sequence[int], first_unit: pd.Series
) -> Iterator[np.ndarray]:
    """Per video: the (layers, heads, T', H', W') unit of every token of every head."""
    layers = [int(g.attrs["layer"]) for g in groups]
    supports = [ConceptSupport(group) for group in groups]
    n_heads = len(supports[0].n_concepts)
    for video in tqdm(range(len(groups[0].attrs["video_ids"])), desc="units", unit="video"):
        block = np.full((len(layers), n_heads, *grid), -1, np.int32)
        for li, (layer, support) in enumerate(zip(layers, supports, strict=True)):
            for head in range(n_heads):
                local = support.voxel_concepts(head, video)
                per_token = plurality_tokens(local, grid, int(support.n_concepts[head]))
                offset = int(first_unit[(layer, head)])
                block[li, head] = np.where(per_token >= 0, per_token + offset, -1)
        yield block


def write_unit_store(concept_stores: Sequence[str | Path], out: str | Path) -> int:
    """Token masks of every concept of the given layers (one store per layer); return #units."""
    groups = sorted((open_concepts(p) for p in concept_stores), key=lambda g: g.attrs["layer"])
    video_ids = list(groups[0].attrs["video_ids"])
    for group in groups:
        if list(group.attrs["video_ids"]) != video_ids:
            raise ValueError(f"{group.store}: videos differ from the other layers' concept stores")
    tubelets = open_tubelets(groups[0].attrs["tubelet_stores"][0])
    grid = list(open_features(tubelets.attrs["feature_store"]).attrs["grid"])
    layers = [int(g.attrs["layer"]) for g in groups]
    table = pd.DataFrame(
        [
            (layer, head, concept)
            for layer, group in zip(layers, groups, strict=True)
            for head, k in enumerate(group["n_concepts"][...])
            for concept in range(int(k))
        ],
        columns=list(UNIT_COLUMNS[1:]),
    )
    first_unit = table.reset_index().groupby(["layer", "head"])["index"].min()
    write_units(
        out,
        _concept_blocks(groups, grid, first_unit),
        table,
        video_ids,
        _video_sources(groups[0]),
        layers,
        grid=grid,
        concept_stores=[str(p) for p in concept_stores],
        token_rule="each token takes the concept covering most of its voxels",
    )
    return len(table)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True)
    parser.add_argument("concepts", nargs="+", help="concept stores, one per layer")


def run(args: argparse.Namespace) -> None:
    count = write_unit_store(args.concepts, args.out)
    print(f"{count} concept units in {args.out}", file=sys.stderr)

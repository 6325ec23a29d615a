"""Compare the outputs of two runs of the workflow, e.g. the demo before and after a refactor.

    python tools/compare_runs.py BEFORE_DIR AFTER_DIR

Each directory is a working directory holding ``results/``. Compared as multisets of
content hashes, so moved or renamed folders do not matter: every TSV table (not logs or
benchmarks), every array of every Zarr store, the report's HTML tables (all but the
time-per-stage table) and its clips. Prints, per kind, how many are identical and which
exist on one side only.
"""

import hashlib
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import zarr


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def outputs(root: Path) -> tuple[Counter, Counter, Counter, Counter]:
    results = root / "results"
    tables, arrays = Counter(), Counter()
    for path in results.rglob("*.tsv"):
        if path.relative_to(results).parts[0] not in ("logs", "benchmarks"):
            tables[(path.name, digest(path.read_bytes()))] += 1
    for meta in results.rglob("zarr.json"):
        store = meta.parent
        inner = any(part.endswith(".zarr") for part in store.relative_to(results).parts[:-1])
        if inner or not store.name.endswith(".zarr"):
            continue
        for name, array in zarr.open_group(store, mode="r").arrays():
            values = np.ascontiguousarray(array[...])
            arrays[
                (store.name, name, str(values.dtype), values.shape, digest(values.tobytes()))
            ] += 1
    index = next(results.glob("**/index.html"))
    page = re.sub(r"<h3>Time per stage</h3><table.*?</table>", "", index.read_text(), flags=re.S)
    report = Counter(digest(t.encode()) for t in re.findall(r"<table.*?</table>", page, flags=re.S))
    clips = Counter(digest(p.read_bytes()) for p in index.parent.rglob("*.webp"))
    return tables, arrays, report, clips


def main() -> None:
    before, after = outputs(Path(sys.argv[1])), outputs(Path(sys.argv[2]))
    kinds = ("tables", "arrays", "report tables", "report clips")
    for kind, old, new in zip(kinds, before, after, strict=True):
        print(
            f"{kind}: {sum(old.values())} vs {sum(new.values())}; identical "
            f"{sum((old & new).values())}; only before {sum((old - new).values())}; "
            f"only after {sum((new - old).values())}"
        )
        for key in list(old - new)[:5]:
            print("   only before:", key)
        for key in list(new - old)[:5]:
            print("   only after:", key)


if __name__ == "__main__":
    main()

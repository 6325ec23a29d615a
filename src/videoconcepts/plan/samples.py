"""Sample sheets: which videos to analyse, with ids and optional labels (no torch here).

A sample source is a CSV/TSV sheet (columns ``path``, optional ``id``, ``label`` and
``styled``, a video's stylized copies for static_dynamic, separated by ``;``),
a folder of videos, or a glob pattern. Paths relative to a sheet are resolved against
the sheet's folder. All problems are collected and reported together, before any job runs.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

import pandas as pd

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# The classes of videos the detector tells apart.
NATURAL, GENERATED = "natural", "generated"


def styled_paths(cell: str) -> list[str]:
    """The stylized copies a ``styled`` cell lists (``;``-separated, blanks dropped)."""
    return [p.strip() for p in str(cell).split(";") if p.strip()]


class SampleSheetError(ValueError):
    """The sample source is unusable; the message lists every problem found."""


def _read_sheet(path: Path, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab", ".txt") else ","
    try:
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise SampleSheetError(f"{path}: cannot parse sample sheet ({err})") from err
    table.columns = [c.strip() for c in table.columns]
    if "path" not in table.columns:
        raise SampleSheetError(
            f"{path}: sample sheet needs a 'path' column (found: {', '.join(table.columns)})"
        )
    unknown = sorted(set(table.columns) - {"path", "id", "label", "styled", *extra})
    if unknown:
        raise SampleSheetError(f"{path}: unknown sample sheet columns: {', '.join(unknown)}")
    table["path"] = [str((path.parent / p.strip()).resolve()) for p in table["path"]]
    if "styled" in table.columns:  # stylized copies, ";"-separated, for static_dynamic
        table["styled"] = [
            ";".join(str((path.parent / p).resolve()) for p in styled_paths(cell))
            for cell in table["styled"]
        ]
    return table


def _videos_in(paths: list[Path], source: str) -> pd.DataFrame:
    videos = sorted(p.resolve() for p in paths if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise SampleSheetError(
            f"{source}: no video files found (looked for {', '.join(VIDEO_SUFFIXES)})"
        )
    return pd.DataFrame({"path": [str(p) for p in videos]})


def load_samples(
    source: str | Path, check_files: bool = True, extra: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Table with columns ``id``, ``path`` (absolute), ``label`` and ``styled`` (the
    absolute paths of a video's stylized copies joined by ``;``); both may be empty. A
    sheet may also have the ``extra`` columns, kept as they are."""
    source_path = Path(source).expanduser()
    if source_path.is_dir():
        table = _videos_in(list(source_path.iterdir()), str(source))
    elif source_path.is_file():
        table = _read_sheet(source_path, extra)
    elif any(ch in str(source) for ch in "*?["):
        table = _videos_in([Path(p) for p in glob.glob(str(source_path), recursive=True)], source)
    else:
        raise SampleSheetError(f"{source}: no such sample sheet, folder or glob match")
    if table.empty:
        raise SampleSheetError(f"{source}: no samples")
    if "id" not in table.columns or (table["id"].str.strip() == "").all():
        table["id"] = [Path(p).stem for p in table["path"]]
    table["id"] = table["id"].str.strip()
    for column in ("label", "styled", *extra):
        if column not in table.columns:
            table[column] = ""
    columns = list(dict.fromkeys(["id", "path", "label", "styled", *extra]))
    table = table[columns].reset_index(drop=True)
    check_samples(table, str(source), check_files)
    return table


def check_samples(table: pd.DataFrame, source: str, check_files: bool = True) -> None:
    """Reject empty sheets, bad or duplicate ids and (optionally) missing files."""
    problems = []
    bad_ids = [i for i in table["id"] if not ID_PATTERN.match(i)]
    if bad_ids:
        problems.append(
            "ids must be letters, digits, '.', '_' or '-' (not starting with a symbol): "
            + ", ".join(repr(i) for i in bad_ids[:10])
        )
    duplicated = sorted(set(table["id"][table["id"].duplicated()]))
    if duplicated:
        problems.append("duplicate ids: " + ", ".join(duplicated[:10]))
    if check_files:
        copies = [p for cell in table["styled"] for p in styled_paths(cell)]
        missing = [p for p in [*table["path"], *copies] if not Path(p).is_file()]
        if missing:
            problems.append("missing video files: " + ", ".join(missing[:10]))
    if problems:
        raise SampleSheetError(f"{source}: " + "; ".join(problems))


def detection_classes(table: pd.DataFrame, column: str, natural: str, source: str) -> list[str]:
    """``natural`` or ``generated`` per row of a detection sheet: rows whose ``column``
    is ``natural`` are natural, every other value generated. Both must occur."""
    values = table[column].astype(str).str.strip()
    if (values == "").any():
        empty = ", ".join(table["id"][values == ""][:10])
        raise SampleSheetError(f"{source}: column {column!r} is empty for: {empty}")
    classes = [NATURAL if v == natural else GENERATED for v in values]
    if len(set(classes)) < 2:
        raise SampleSheetError(
            f"{source}: column {column!r} needs natural videos (value {natural!r}) and "
            f"generated ones (any other value); found only {sorted(set(values))}"
        )
    return classes


def load_detection(
    source: str | Path, column: str, natural: str, check_files: bool = True
) -> pd.DataFrame:
    """A detection sheet: a sample sheet with a column of classes (``column``), an
    optional ``group`` (videos of one group stay in one cross-validation fold: a
    generated video made from a natural one shares its group; empty: the video alone)
    and an optional ``defect`` (what is wrong with a generated video, for breaking
    results down); ``label`` becomes natural or generated (see
    :func:`detection_classes`)."""
    extra = tuple(dict.fromkeys((column, "group", "defect")))
    table = load_samples(source, check_files, extra=extra)
    table["label"] = detection_classes(table, column, natural, str(source))
    table["group"] = table["group"].where(table["group"].str.strip() != "", table["id"])
    return table


def detection_labels(source: str | Path, column: str, natural: str) -> dict[str, tuple[str, str]]:
    """Video id -> (``natural`` or ``generated``, its group) from a detection sheet."""
    table = load_detection(source, column, natural, check_files=False)
    pairs = zip(table["label"], table["group"], strict=True)
    return dict(zip(table["id"], pairs, strict=True))

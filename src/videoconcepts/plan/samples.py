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


def styled_paths(cell: str) -> list[str]:
    """The stylized copies a ``styled`` cell lists (``;``-separated, blanks dropped)."""
    return [p.strip() for p in str(cell).split(";") if p.strip()]


class SampleSheetError(ValueError):
    """The sample source is unusable; the message lists every problem found."""


def _read_sheet(path: Path) -> pd.DataFrame:
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
    unknown = sorted(set(table.columns) - {"path", "id", "label", "styled"})
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


def load_samples(source: str | Path, check_files: bool = True) -> pd.DataFrame:
    """Table with columns ``id``, ``path`` (absolute), ``label`` and ``styled`` (the
    absolute paths of a video's stylized copies joined by ``;``); both may be empty."""
    source_path = Path(source).expanduser()
    if source_path.is_dir():
        table = _videos_in(list(source_path.iterdir()), str(source))
    elif source_path.is_file():
        table = _read_sheet(source_path)
    elif any(ch in str(source) for ch in "*?["):
        table = _videos_in([Path(p) for p in glob.glob(str(source_path), recursive=True)], source)
    else:
        raise SampleSheetError(f"{source}: no such sample sheet, folder or glob match")
    if table.empty:
        raise SampleSheetError(f"{source}: no samples")
    if "id" not in table.columns or (table["id"].str.strip() == "").all():
        table["id"] = [Path(p).stem for p in table["path"]]
    table["id"] = table["id"].str.strip()
    for column in ("label", "styled"):
        if column not in table.columns:
            table[column] = ""
    table = table[["id", "path", "label", "styled"]].reset_index(drop=True)
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

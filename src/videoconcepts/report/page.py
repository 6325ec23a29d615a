"""The report pages: the run's sections assembled into one self-contained HTML folder.

``index.html``, the overview that compares the run's models, and ``models/<model>/index.html``
for each model, each page with its ``figures/*.png`` (matplotlib, colour-blind-safe
Okabe-Ito and cividis colours) and ``clips/*.webp``. Nothing is recomputed: every
section reads what earlier stages wrote, named by the stage output it is
(:class:`Inputs`, ``MODEL:NAME`` for a model's), so a new stage adds a section module
and its line in the report stage's section lists, and widens no signature.
"""

from __future__ import annotations

import html
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442"]


@dataclass(frozen=True)
class ReportSettings:
    top_concepts: int
    videos_per_concept: int
    clip_height: int  # pixels per clip in the gallery (frames resized to it)
    clip_fps: int


class Inputs:
    """The report's inputs by name: each a list of paths written by an earlier stage."""

    def __init__(self, named: Mapping[str, Sequence[str]]):
        self._named = {name: list(paths) for name, paths in named.items()}

    def __contains__(self, name: str) -> bool:
        return bool(self._named.get(name))

    def many(self, name: str) -> list[str]:
        if name not in self:
            raise ValueError(f"report: no input named {name!r} (have {sorted(self._named)})")
        return self._named[name]

    def one(self, name: str) -> str:
        paths = self.many(name)
        if len(paths) != 1:
            raise ValueError(f"report: input {name!r} should be one path, got {len(paths)}")
        return paths[0]

    def table(self, name: str) -> pd.DataFrame:
        return pd.read_csv(self.one(name), sep="\t")

    @property
    def models(self) -> list[str]:
        """Model names of ``MODEL:NAME`` inputs, in order of appearance."""
        return list(dict.fromkeys(n.split(":", 1)[0] for n in self._named if ":" in n))

    def of_model(self, model: str) -> Inputs:
        """One model's inputs, by their names without the ``MODEL:`` prefix."""
        prefix = f"{model}:"
        return Inputs(
            {n.removeprefix(prefix): p for n, p in self._named.items() if n.startswith(prefix)}
        )


@dataclass(frozen=True)
class Context:
    """What every section gets: its inputs, the report settings, the run's resolved
    settings per stage, and the folder to write figures and clips into."""

    inputs: Inputs
    settings: ReportSettings
    run_settings: dict
    out: Path


Section = Callable[[Context], str]


# --- figures and tables ------------------------------------------------------------------
def axes(width: float, height: float):
    """A figure and its axes without pyplot (no global state, no GUI backend)."""
    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot()


def save(fig: Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return f"figures/{path.name}"


class Markup(str):
    """HTML this module made itself; table cells pass it through unescaped."""


def table(frame: pd.DataFrame, table_id: str = "", floats: str = "{:.4g}") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for value in record:
            if isinstance(value, float):
                cells.append(f"<td>{floats.format(value)}</td>")
            elif isinstance(value, Markup):
                cells.append(f"<td>{value}</td>")
            else:
                cells.append(f"<td>{html.escape(str(value))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>videoconcepts report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
h1, h2 {{ border-bottom: 1px solid #ccc; padding-bottom: .2em; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; font-size: 14px; }}
th, td {{ border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: middle; }}
th {{ background: #f0f0f0; }}
img {{ max-width: 100%; }}
.figs {{ display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }}
.filters {{ margin: .5em 0; }} .filters label {{ margin-right: 1em; }}
pre {{ background: #f6f6f6; padding: .5em; overflow-x: auto; font-size: 12px; }}
.note {{ color: #555; font-size: 14px; }}
nav {{ margin: -.5em 0 1em; }} nav a {{ margin-right: 1em; }}
</style></head><body>
<h1>videoconcepts report{title}</h1>
<nav>{nav}</nav>
{body}
<script>
function filterConcepts() {{
  const layer = document.getElementById('layer').value;
  const head = document.getElementById('head').value;
  const text = document.getElementById('search').value.toLowerCase();
  let shown = 0;
  for (const row of document.querySelectorAll('#concepts tbody tr')) {{
    const c = row.children;
    const ok = (layer === '' || c[1].textContent === layer) &&
               (head === '' || c[2].textContent === head) &&
               (text === '' || row.textContent.toLowerCase().includes(text));
    row.style.display = ok ? '' : 'none';
    if (ok) shown += 1;
  }}
  document.getElementById('shown').textContent = shown;
}}
if (document.getElementById('concepts')) {{
  for (const id of ['layer', 'head', 'search']) {{
    document.getElementById(id).addEventListener('input', filterConcepts);
  }}
  filterConcepts();
}}
</script>
</body></html>
"""


def options(values: Sequence[int]) -> str:
    return '<option value="">all</option>' + "".join(
        f'<option value="{v}">{v}</option>' for v in values
    )


def model_page(model: str) -> str:
    """A model's page, relative to the overview (below ``models/``: no model name can
    collide with the overview's own folders)."""
    return f"models/{html.escape(model)}/index.html"


def navigation(models: Sequence[str], root: str) -> str:
    """Links to the overview and every model's page, from a page ``root`` below the top."""
    links = [f'<a href="{root}index.html">overview</a>']
    links += [f'<a href="{root}{model_page(m)}">{html.escape(m)}</a>' for m in models]
    return " ".join(links)


def _page(folder: Path, sections: Sequence[Section], context: Context, title: str, nav: str):
    (folder / "figures").mkdir(parents=True)
    (folder / "clips").mkdir()
    body = "\n".join(section(context) for section in sections)
    (folder / "index.html").write_text(PAGE.format(body=body, title=title, nav=nav))


def write_report(
    out: str | Path,
    overview: Sequence[Section],
    per_model: Sequence[Section],
    inputs: Inputs,
    settings: ReportSettings,
    run_settings: dict,
) -> Path:
    """Write ``out/index.html`` (the ``overview`` sections) and ``out/models/<model>/index.html``
    (the ``per_model`` sections on that model's inputs and settings); return the index.

    The folder is built as a hidden sibling and renamed into place when complete, so a
    killed job never leaves a report that looks finished.
    """
    out = Path(out)
    building = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(building, ignore_errors=True)
    models = inputs.models
    for model in models:
        folder = building / "models" / model
        context = Context(inputs.of_model(model), settings, run_settings["models"][model], folder)
        _page(folder, per_model, context, f": {html.escape(model)}", navigation(models, "../../"))
    context = Context(inputs, settings, run_settings, building)
    _page(building, overview, context, "", navigation(models, ""))
    shutil.rmtree(out, ignore_errors=True)
    building.rename(out)
    return out / "index.html"

"""The report pages: the run's sections assembled into one self-contained HTML folder.

``index.html``, the overview that compares the run's models and has a card per analysis;
``models/<model>/index.html`` for each model; ``analyses/<name>/index.html`` for each
analysis that ran (Rosetta, ...). Each page has its ``figures/*.png`` (matplotlib,
colour-blind-safe Okabe-Ito and cividis colours) and ``clips/*.webp``, the same
navigation bar, and inline script only: tables sort, filter and page in the browser,
with no network. Nothing is recomputed: every section reads what earlier stages wrote,
named by the stage output it is (:class:`Inputs`, ``MODEL:NAME`` for a model's), so a new
analysis adds a section module and its :class:`Analysis` line in the report stage, and
touches no other section.
"""

from __future__ import annotations

import html
import multiprocessing
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

# Decoded clips a section keeps while drawing: each video appears in many clips (about
# 150 MB at 16 x 224 x 224).
CLIP_CACHE = 64
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

    def stage_tables(self, stage: str, names: Sequence[str]) -> dict[str, pd.DataFrame]:
        """Every model's ``{stage}_{name}`` tables, concatenated per name; a name no
        model has is left out (none: the stage did not run)."""
        found: dict[str, list[pd.DataFrame]] = {name: [] for name in names}
        for model in self.models:
            inputs = self.of_model(model)
            for name in names:
                if f"{stage}_{name}" in inputs:
                    found[name].append(inputs.table(f"{stage}_{name}"))
        return {name: pd.concat(many, ignore_index=True) for name, many in found.items() if many}

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


@dataclass(frozen=True)
class Analysis:
    """An analysis's page and its card on the overview. ``page`` returns "" when the
    run did not compute it (no page, no card, no link); ``card`` runs after the page, on
    the overview's context, and may show the page's figures and clips (below
    :func:`analysis_folder`)."""

    name: str
    title: str
    page: Section
    card: Section
    # drawn before the other pages: the slowest page, dispatched last, runs alone at the end
    first: bool = False


# --- figures and tables ------------------------------------------------------------------
def axes(width: float, height: float):
    """A figure and its axes without pyplot (no global state, no GUI backend)."""
    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot()


def panels(n: int, width: float = 4.2, height: float = 3.4) -> tuple[Figure, list]:
    """A row of ``n`` axes, laid out by constrained layout."""
    fig = Figure(figsize=(width * n, height), layout="constrained")
    return fig, [fig.add_subplot(1, n, i + 1) for i in range(n)]


def save(fig: Figure, path: Path) -> str:
    if fig.get_layout_engine() is None:  # figures made with layout="constrained" keep it
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
    body = "".join(rows)
    return f'<table class="data"{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


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
th[data-sort] {{ cursor: pointer; }} th[aria-sort=ascending]::after {{ content: " \\25B2"; }}
th[aria-sort=descending]::after {{ content: " \\25BC"; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 1em; }}
.card {{ border: 1px solid #ccc; border-radius: 6px; padding: .5em 1em; width: 320px; }}
.card h3 {{ margin: .3em 0; }} .card img {{ max-width: 100%; }}
</style></head><body>
<h1>videoconcepts report{title}</h1>
<nav>{nav}</nav>
{body}
<script>
// Every table.data sorts by the column whose header is clicked (numbers as numbers).
// Tables longer than a page, or with layer and head columns, get a text filter, layer
// and head menus and a pager: only one page of rows is ever displayed.
const PAGE_ROWS = 25;
function cellKey(cell) {{
  const text = cell.textContent.trim();
  const number = Number(text);
  return text !== '' && !Number.isNaN(number) ? [0, number] : [1, text.toLowerCase()];
}}
function compareKeys(a, b) {{
  if (a[0] !== b[0]) return a[0] - b[0];
  return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}}
function enhance(table) {{
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const names = Array.from(table.tHead.rows[0].cells).map(c => c.textContent.trim());
  const menus = ['layer', 'head'].filter(n => names.includes(n));
  const state = {{ page: 0, column: -1, ascending: true }};
  const bar = document.createElement('div');
  bar.className = 'filters';
  const paged = rows.length > PAGE_ROWS || menus.length === 2;
  let search = null, info = null, prev = null, next = null;
  const selects = {{}};
  if (paged) {{
    search = document.createElement('input');
    search.type = 'search';
    search.placeholder = 'filter: text in the row';
    search.className = 'search';
    bar.append(search);
    for (const name of menus) {{
      const column = names.indexOf(name);
      const values = [...new Set(rows.map(r => r.cells[column].textContent.trim()))];
      values.sort((a, b) => compareKeys(cellKey({{textContent: a}}), cellKey({{textContent: b}})));
      const select = document.createElement('select');
      select.dataset.column = name;
      select.add(new Option('all', ''));
      for (const v of values) select.add(new Option(v, v));
      const label = document.createElement('label');
      label.append(name + ' ', select);
      bar.append(' ', label);
      selects[name] = [column, select];
    }}
    prev = document.createElement('button');
    prev.textContent = 'previous';
    prev.className = 'previous';
    next = document.createElement('button');
    next.textContent = 'next';
    next.className = 'next';
    info = document.createElement('span');
    info.className = 'note shown';
    bar.append(' ', prev, ' ', next, ' ', info);
    table.before(bar);
    const reset = () => {{ state.page = 0; render(); }};
    search.addEventListener('input', reset);
    for (const [, select] of Object.values(selects)) select.addEventListener('input', reset);
    prev.addEventListener('click', () => {{ state.page -= 1; render(); }});
    next.addEventListener('click', () => {{ state.page += 1; render(); }});
  }}
  function render() {{
    const text = search ? search.value.toLowerCase() : '';
    const kept = rows.filter(r =>
      (text === '' || r.textContent.toLowerCase().includes(text)) &&
      Object.values(selects).every(([c, s]) => s.value === '' ||
                                   r.cells[c].textContent.trim() === s.value));
    if (state.column >= 0) {{
      const sign = state.ascending ? 1 : -1;
      kept.sort((a, b) => sign * compareKeys(cellKey(a.cells[state.column]),
                                             cellKey(b.cells[state.column])));
    }}
    const size = paged ? PAGE_ROWS : rows.length;
    const pages = Math.max(1, Math.ceil(kept.length / size));
    state.page = Math.min(Math.max(state.page, 0), pages - 1);
    const first = state.page * size;
    const shown = new Set(kept.slice(first, first + size));
    for (const r of rows) r.style.display = 'none';
    for (const r of kept) {{ body.append(r); if (shown.has(r)) r.style.display = ''; }}
    if (paged) {{
      info.textContent = kept.length === 0 ? `0 of ${{rows.length}} rows` :
        `rows ${{first + 1}}-${{first + shown.size}} of ${{kept.length}}` +
        (kept.length < rows.length ? ` (filtered from ${{rows.length}})` : '');
      prev.disabled = state.page === 0;
      next.disabled = state.page >= pages - 1;
    }}
  }}
  Array.from(table.tHead.rows[0].cells).forEach((th, column) => {{
    th.dataset.sort = '';
    th.addEventListener('click', () => {{
      state.ascending = state.column === column ? !state.ascending : true;
      state.column = column;
      state.page = 0;
      for (const other of table.tHead.rows[0].cells) other.removeAttribute('aria-sort');
      th.setAttribute('aria-sort', state.ascending ? 'ascending' : 'descending');
      render();
    }});
  }});
  render();
}}
document.querySelectorAll('table.data').forEach(enhance);
</script>
</body></html>
"""


def model_folder(model: str) -> str:
    """A model's folder, relative to the overview (below ``models/``: no model name can
    collide with the overview's own folders)."""
    return f"models/{html.escape(model)}"


def model_page(model: str) -> str:
    return f"{model_folder(model)}/index.html"


def analysis_folder(name: str) -> str:
    """An analysis's folder, relative to the overview."""
    return f"analyses/{name}"


def analysis_page(name: str) -> str:
    return f"{analysis_folder(name)}/index.html"


def navigation(models: Sequence[str], analyses: Sequence[Analysis], root: str) -> str:
    """Links to the overview, every model's page and every analysis's page, from a page
    ``root`` below the top."""
    links = [f'<a href="{root}index.html">overview</a>']
    links += [f'<a href="{root}{model_page(m)}">{html.escape(m)}</a>' for m in models]
    links += [
        f'<a href="{root}{analysis_page(a.name)}">{html.escape(a.title)}</a>' for a in analyses
    ]
    return " ".join(links)


def _render(folder: Path, sections: Sequence[Section], context: Context) -> str:
    (folder / "figures").mkdir(parents=True)
    (folder / "clips").mkdir()
    return "\n".join(section(context) for section in sections)


def _render_page(page: tuple[Path, Sequence[Section], Context]) -> str:
    return _render(*page)


def _render_pages(
    pages: list[tuple[Path, Sequence[Section], Context]], workers: int, first: Sequence[bool]
) -> list[str]:
    """Each page's body, ``workers`` pages at a time (forked processes: a page's figures
    and clips are its own, and its sections read only the run's outputs), the ``first``
    ones dispatched before the rest."""
    if workers <= 1 or len(pages) <= 1:
        return [_render_page(page) for page in pages]
    fork = multiprocessing.get_context("fork")
    order = sorted(range(len(pages)), key=lambda i: not first[i])
    with ProcessPoolExecutor(min(workers, len(pages)), mp_context=fork) as pool:
        futures = {i: pool.submit(_render_page, pages[i]) for i in order}
        return [futures[i].result() for i in range(len(pages))]


def write_report(
    out: str | Path,
    overview: Sequence[Section],
    per_model: Sequence[Section],
    analyses: Sequence[Analysis],
    inputs: Inputs,
    settings: ReportSettings,
    run_settings: dict,
    workers: int = 1,
) -> Path:
    """Write ``out/index.html`` (the first ``overview`` section, a card per analysis, the
    other overview sections),
    ``out/models/<model>/index.html`` (the ``per_model`` sections on that model's inputs and
    settings) and ``out/analyses/<name>/index.html`` for each analysis the run computed;
    return the index. The model and analysis pages are drawn ``workers`` at a time.

    The folder is built as a hidden sibling and renamed into place when complete, so a
    killed job never leaves a report that looks finished.
    """
    out = Path(out)
    building = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(building, ignore_errors=True)
    models = inputs.models
    jobs = [
        (
            building / "models" / model,
            per_model,
            Context(
                inputs.of_model(model),
                settings,
                run_settings["models"][model],
                building / "models" / model,
            ),
        )
        for model in models
    ]
    jobs += [
        (
            building / analysis_folder(analysis.name),
            [analysis.page],
            Context(inputs, settings, run_settings, building / analysis_folder(analysis.name)),
        )
        for analysis in analyses
    ]
    first = [False] * len(models) + [analysis.first for analysis in analyses]
    bodies = _render_pages(jobs, workers, first)
    pages = {}  # folder -> (title, body, root)
    for model, body in zip(models, bodies, strict=False):
        pages[building / "models" / model] = (f": {html.escape(model)}", body, "../../")
    present = []
    for analysis, body in zip(analyses, bodies[len(models) :], strict=True):
        folder = building / analysis_folder(analysis.name)
        if body:
            present.append(analysis)
            pages[folder] = (f": {html.escape(analysis.title)}", body, "../../")
        else:
            shutil.rmtree(folder)
    context = Context(inputs, settings, run_settings, building)
    first, *rest = overview
    body = _render(building, [first], context)
    if present:
        cards = "".join(
            f'<div class="card"><h3><a href="{analysis_page(a.name)}">{html.escape(a.title)}'
            f"</a></h3>{a.card(context)}</div>"
            for a in present
        )
        body += f'\n<h2>Analyses</h2>\n<div class="cards">{cards}</div>'
    body += "\n".join(section(context) for section in rest)
    pages[building] = ("", body, "")
    for folder, (title, body, root) in pages.items():
        nav = navigation(models, present, root)
        (folder / "index.html").write_text(PAGE.format(body=body, title=title, nav=nav))
    shutil.rmtree(out, ignore_errors=True)
    building.rename(out)
    return out / "index.html"

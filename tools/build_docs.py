#!/usr/bin/env python
"""Build the docs site from the notebooks, without quarto:

    python tools/build_docs.py            # nbs/ -> _docs/ (folders from settings.ini)

Every notebook becomes one self-contained HTML page with a navigation sidebar (the story first, then the API
reference). Notebooks are executed (papermill notebooks only with `--params`), nbdev's directives are applied
(`#| hide`, `#| export`, `#| echo: false`, ...), exported functions get their `show_doc`, math renders with a local
copy of MathJax (the `jupyter-server-mathjax` package, so the site works offline), markdown images with a relative
path are copied into the site, and executed notebooks draw their figures at `FIGURE_DPI`.

This is a development tool (it needs the `dev` extra: nbdev, nbconvert, nbclient, jupyter-server-mathjax); it is not
part of the `wsol` package. `python tools/build_docs.py --help` lists the options.
"""
import argparse
import ast
import configparser
import copy
import fnmatch
import html
import json
import os
import posixpath
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import import_module
from pathlib import Path
from urllib.parse import unquote

import nbformat
import yaml
from jinja2 import DictLoader
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter
from nbconvert.preprocessors import ExecutePreprocessor
from nbdev.process import extract_directives
from nbdev.showdoc import show_doc
from papermill.parameterize import parameterize_notebook

PROG = 'build_docs'
MARKER = '.wsol-docs.json'  # written into every build: the pages and how they were made
DOCS_PARAMS = 'docs_params.yml'  # in the notebook folder: the default --params file
FIGURE_DPI = 150  # executed notebooks draw inline matplotlib figures at this resolution
IMAGES_DIR = '_images'  # markdown images with a relative path are copied here, under their path in the repository
MATHJAX_DIR = '_static/mathjax'  # the local MathJax copy

# The sidebar tells the story first: each entry lists the notebooks that can fill it, the first one that exists wins.
GUIDE = [
    ['index.ipynb'],  # what wsol is, the results
    ['cam_decomposition.ipynb'],  # why vanilla CAM finds only a part of the object (the paper's Fig. 1)
    ['fig1_real_photos.ipynb'],  # the same decomposition on real photos with real ImageNet features
    ['09_methods.ipynb', '07_losses.ipynb'],  # the method (its losses until 09_methods exists)
    ['methods.ipynb'],  # the method zoo: what each method changes, hyperparameters, backbones, SYNTH results
    ['11_metrics.ipynb'],  # the evaluation protocol
    ['datasets.ipynb'],  # using it: data, training, evaluation
    ['train.ipynb'],
    ['evaluate.ipynb'],
    ['reliability.ipynb'],  # faults survived, bad inputs refused
]
GUIDE_GROUP = 'Guide'  # the story, then notebooks that are neither in GUIDE nor numbered (by name)
API_GROUP = 'API reference'  # numbered notebooks (`NN_name.ipynb`) that are not in the guide, by number


class DocsError(RuntimeError):
    "A docs-build problem; the message names the notebook (and cell) or the option at fault."


# ------------------------------------------------------------------------------------------------- settings

def find_settings(start='.') -> dict:
    "The `[DEFAULT]` section of the nearest `settings.ini` at or above `start`, plus `config_path` (its folder); {} if none."
    start = Path(start).resolve()
    for folder in [start, *start.parents]:
        ini = folder/'settings.ini'
        if ini.is_file():
            parser = configparser.ConfigParser(delimiters=['='], interpolation=None)
            parser.read(ini, encoding='utf-8')
            return {**parser['DEFAULT'], 'config_path': str(folder)}
    return {}


@dataclass
class Site:
    "What every page shows around its notebook (from `settings.ini`)."
    title: str = 'Documentation'  # top bar and browser tab
    description: str = ''  # one-liner in the top bar
    repo_url: str = ''  # `git_url`: "Repository" link and per-page source links
    branch: str = 'main'  # branch of the source links
    nbs_path: str = 'nbs'  # notebook folder relative to the repository root (source links)
    lib_name: str = ''  # package of exported modules (`show_doc` without execution)
    lib_path: str = ''  # folder of exported modules (the "Exported source" label)
    tst_flags: tuple = ()  # test flags: cells marked with one are not executed unless asked (`--flags`)

    @classmethod
    def from_settings(cls, cfg: dict) -> 'Site':
        "A `Site` from a `find_settings` result ({} gives the defaults)."
        lib = cfg.get('lib_name', '')
        return cls(title=cfg.get('title') or lib or cls.title, description=cfg.get('description', ''),
                   repo_url=cfg.get('git_url', ''), branch=cfg.get('branch', 'main'),
                   nbs_path=cfg.get('nbs_path', 'nbs'), lib_name=lib, lib_path=cfg.get('lib_path', lib),
                   tst_flags=tuple(cfg.get('tst_flags', '').replace(',', ' ').split()))


def repo_root(nbs_path: Path) -> Path:
    "The folder relative image paths may also start from: the `settings.ini` folder above `nbs_path`, else its parent."
    cfg = find_settings(nbs_path)
    return Path(cfg['config_path']) if cfg else nbs_path.parent


# ------------------------------------------------------------------------------------- notebooks and their order

def list_notebooks(nbs_path) -> list:
    "Notebooks under `nbs_path` (list of `Path`, by path); names starting with `_` or `.` (files or folders) are skipped."
    nbs_path = Path(nbs_path)
    if not nbs_path.is_dir(): raise DocsError(f'{nbs_path}: notebook folder not found (see --nbs)')
    found = []
    for root, dirs, files in os.walk(nbs_path):
        dirs[:] = [d for d in dirs if not d.startswith(('_', '.'))]
        found += [Path(root)/f for f in files if f.endswith('.ipynb') and not f.startswith(('_', '.'))]
    return sorted(found, key=lambda p: p.relative_to(nbs_path).as_posix())


def _number(rel: str):
    "The leading number of a notebook's file name (`11_metrics.ipynb` -> 11), or None."
    m = re.match(r'(\d+)', posixpath.basename(rel))
    return int(m.group(1)) if m else None


def nav_groups(rels, guide=GUIDE) -> list:
    "[(group title, [notebook, ...]), ...] for notebooks `rels` (posix paths under the notebook folder); empty groups left out."
    present = set(rels)
    story = [next(c for c in choices if c in present) for choices in guide if any(c in present for c in choices)]
    rest = [r for r in rels if r not in story]
    numbered = sorted((r for r in rest if _number(r) is not None), key=lambda r: (_number(r), r))
    others = sorted(r for r in rest if _number(r) is None)
    return [(title, items) for title, items in [(GUIDE_GROUP, story + others), (API_GROUP, numbered)] if items]


# ------------------------------------------------------------------------------------------- titles and cells

def _front_matter(cell) -> dict:
    "YAML front matter of a raw cell (`---` ... `---`), {} otherwise."
    src = cell.source.strip()
    if cell.cell_type != 'raw' or not src.startswith('---'): return {}
    m = re.match(r'---\s*\n(.*?)\n---\s*$', src, flags=re.S)
    try: fm = yaml.safe_load(m.group(1)) if m else None
    except yaml.YAMLError: return {}
    return fm if isinstance(fm, dict) else {}


def _title_in(markdown: str):
    "(title, description) of the first `# Title` (+ `> description`) in `markdown` outside code fences, or None."
    lines, fence = markdown.splitlines(), False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(('```', '~~~')): fence = not fence
        m = None if fence else re.match(r'#\s+(.+?)\s*#*\s*$', line)
        if m:
            rest = [l.strip() for l in lines[i+1:] if l.strip()]
            return m.group(1), rest[0][1:].strip() if rest and rest[0].startswith('>') else ''
    return None


def notebook_title(nb, default='') -> tuple:
    "(title, description) of a notebook: front matter, else the first `# Title` + `> description` markdown."
    for cell in nb.cells:
        fm = _front_matter(cell)
        if fm.get('title'): return str(fm['title']), str(fm.get('description', '') or '')
    for cell in nb.cells:
        found = _title_in(cell.source) if cell.cell_type == 'markdown' else None
        if found: return found
    return default, ''


_re_directive_line = re.compile(r'^\s*#\s*\|')
_re_hide_line = re.compile(r'#\s*\|\s*hide_line\s*$')
_re_magic_line = re.compile(r'^\s*%')
_re_show_doc = re.compile(r'^\s*show_doc\(\s*([\w.]+)', flags=re.M)


def cell_directives(cell) -> dict:
    "nbdev directives of a code cell, parsed by nbdev (`{'export': [], 'echo:': ['false']}`); {} for other cells."
    if cell.cell_type != 'code' or not cell.source: return {}
    return extract_directives(copy.deepcopy(cell), remove=False)


def _directive(d: dict, name: str) -> str:
    "The first value of a `#| name: value` directive, lower case ('' if absent)."
    return (d.get(name + ':') or [''])[0].lower()


def shown_source(source: str) -> str:
    "The source the docs show: without the leading `#|` directive lines, `#| hide_line` lines and `%magic` lines."
    lines = source.splitlines()
    i = 0
    while i < len(lines) and (_re_directive_line.match(lines[i]) or not lines[i].strip()): i += 1
    kept = [l for l in lines[i:] if not _re_hide_line.search(l) and not _re_magic_line.match(l)]
    return '\n'.join(kept).strip('\n')


def is_show_doc(source: str) -> bool:
    "Whether a code cell only calls `show_doc` (its input is hidden in the docs, as in nbdev)."
    lines = [l for l in shown_source(source).splitlines() if l.strip()]
    return bool(lines) and all(_re_show_doc.match(l) for l in lines)


def imports_only(source: str) -> bool:
    "Whether a code cell only imports."
    try: body = ast.parse(shown_source(source)).body
    except SyntaxError: return False
    return bool(body) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body)


def default_exp(nb) -> str:
    "The notebook's `#| default_exp` module, or '' (a narrative notebook)."
    for cell in nb.cells:
        m = cell_directives(cell).get('default_exp')
        if m: return m[0]
    return ''


def is_parameterised(nb) -> bool:
    "Whether `nb` is a papermill notebook (a code cell tagged `parameters`)."
    return any(c.cell_type == 'code' and 'parameters' in c.metadata.get('tags', []) for c in nb.cells)


# ---------------------------------------------------------------------------------------- API docs (show_doc)

def exported_names(cell) -> list:
    "Public functions and classes defined at the top level of an export cell (none if it does not parse)."
    try: tree = ast.parse(shown_source(cell.source))
    except SyntaxError: return []
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [n.name for n in tree.body if isinstance(n, defs) and not n.name.startswith('_')]


def add_auto_docs(nb) -> list:
    "Insert a `show_doc` cell after each export cell for each public def/class no `show_doc` cell shows; returns the names."
    shown = {m.group(1) for c in nb.cells if c.cell_type == 'code' for m in _re_show_doc.finditer(c.source)}
    added, cells = [], []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type != 'code' or not cell_directives(cell).keys() & {'export', 'exports'}: continue
        for name in exported_names(cell):
            if name in shown: continue
            doc = nbformat.v4.new_code_cell(f"__import__('nbdev.showdoc', fromlist=['show_doc']).show_doc({name})")
            doc.metadata['wsol_docs'] = {'auto_doc': name}
            cells.append(doc)
            added.append(name)
    nb.cells = cells
    return added


def fill_auto_docs(nb, module_name: str) -> list:
    "Without execution: give the auto `show_doc` cells the output of `show_doc` for `module_name`'s objects; returns notes."
    notes, mod = [], None
    try: mod = import_module(module_name) if module_name else None
    except Exception as e: notes.append(f'cannot import {module_name} ({type(e).__name__}: {e}): no API docs added')
    keep = []
    for cell in nb.cells:
        name = cell.metadata.get('wsol_docs', {}).get('auto_doc')
        if name:
            if mod is None or not hasattr(mod, name):
                if mod is not None: notes.append(f'{module_name} has no {name}: its show_doc is left out')
                continue
            md = show_doc(getattr(mod, name))._repr_markdown_()
            cell.outputs = [nbformat.v4.new_output('display_data', data={'text/markdown': md, 'text/plain': name})]
        keep.append(cell)
    nb.cells = keep
    return notes


# ------------------------------------------------------------------------------------------------- execution

_EXPORT_CALL = 'nbdev_export('
# The first cell of every executed notebook (left out of the page): inline figures at FIGURE_DPI, whatever
# `figure.dpi` the notebook sets (print_figure_kwargs win over it; the notebook's stored outputs are not touched).
FIGURE_SETUP = "%config InlineBackend.print_figure_kwargs = {{'bbox_inches': 'tight', 'dpi': {dpi}}}"


def skipped_cells(nb, tst_flags=(), run_flags=()) -> list:
    "Indices of code cells not to execute: `#| eval: false`, a flag of `tst_flags` not in `run_flags`, `nbdev_export` calls."
    skip = set(tst_flags) - set(run_flags)
    out = []
    for i, cell in enumerate(nb.cells):
        d = cell_directives(cell)
        if (_directive(d, 'eval') == 'false' or skip & d.keys()
                or (cell.cell_type == 'code' and _EXPORT_CALL in cell.source)):
            out.append(i)
    return out


@contextmanager
def _inline_figures():
    "Kernels draw matplotlib figures inline even if the caller's environment sets `MPLBACKEND` (e.g. Agg)."
    old = os.environ.get('MPLBACKEND')
    os.environ['MPLBACKEND'] = 'module://matplotlib_inline.backend_inline'
    try: yield
    finally:
        if old is None: os.environ.pop('MPLBACKEND', None)
        else: os.environ['MPLBACKEND'] = old


def _inserted(cell) -> bool:
    "Whether the build inserted `cell` (figure set-up, auto show_doc, papermill's injected parameters)."
    return 'wsol_docs' in cell.metadata or 'injected-parameters' in cell.metadata.get('tags', [])


def _cell_label(nb, i: int) -> str:
    "'cell N (`first line`)' with N counted in the notebook file (cells the build inserted are not counted)."
    n = sum(not _inserted(c) for c in nb.cells[:i])
    first = next((l.strip() for l in shown_source(nb.cells[i].source).splitlines() if l.strip()), '')
    what = 'the injected parameters' if _inserted(nb.cells[i]) else f'cell {n}'
    return f'{what} (`{first[:60]}`)' if first else what


def _run_cells(nb, cwd, timeout, kernel_name, name, skip_tag):
    "Run nbclient on `nb`; raise `DocsError` naming the cell that failed or timed out."
    deadline, current = time.monotonic() + timeout, {}
    ep = ExecutePreprocessor(
        kernel_name=kernel_name, skip_cells_with_tag=skip_tag, allow_errors=False, record_timing=False,
        interrupt_on_timeout=True,  # stop the cell cleanly, then fail as below
        error_on_timeout={'ename': 'CellTimeoutError', 'evalue': f'time limit of {timeout:g} s reached', 'traceback': []},
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic() + 0.999)),
        on_cell_execute=lambda cell, cell_index: current.update(index=cell_index))
    try:
        with _inline_figures(): ep.preprocess(nb, {'metadata': {'path': str(cwd)}})
    except (CellTimeoutError, CellExecutionError) as e:
        if isinstance(e, CellTimeoutError) or e.ename == 'CellTimeoutError':
            raise DocsError(f'{name}: {_cell_label(nb, current["index"])} was still running when the notebook '
                            f'reached its time limit of {timeout:g} s (see --timeout)') from None
        raise DocsError(f'{name}: {_cell_label(nb, current["index"])} raised {e.ename}: {e.evalue}') from None
    except DeadKernelError as e:
        where = _cell_label(nb, current['index']) if 'index' in current else 'start-up'
        raise DocsError(f'{name}: the kernel died during {where}: {e}') from None


def execute_notebook(nb, cwd, timeout: float = 600, kernel_name: str = 'python3', tst_flags=(), run_flags=(),
                     name: str = 'notebook', dpi: int = FIGURE_DPI):
    "Execute `nb` in place (kernel in folder `cwd`); skipped cells keep stored outputs. Raises `DocsError` naming the cell."
    if timeout <= 0: raise DocsError(f'timeout={timeout}: must be > 0 seconds')
    skip_tag = 'wsol-docs-skip'
    skipped = skipped_cells(nb, tst_flags, run_flags)
    for i in skipped: nb.cells[i].metadata.setdefault('tags', []).append(skip_tag)
    setup = nbformat.v4.new_code_cell(FIGURE_SETUP.format(dpi=dpi))
    setup.metadata['wsol_docs'] = {'setup': True}
    nb.cells.insert(0, setup)
    try: _run_cells(nb, cwd, timeout, kernel_name, name, skip_tag)
    finally:
        nb.cells = [c for c in nb.cells if c is not setup]
        for cell in nb.cells:
            tags = cell.metadata.get('tags')
            if tags and skip_tag in tags:
                tags.remove(skip_tag)
                if not tags: del cell.metadata['tags']


# ------------------------------------------------------------------------------------ what a page shows of a notebook

_hidden_directives = {'hide', 'default_exp', 'exporti'}
_re_pandoc_attrs = re.compile(r'(\]\([^)]*\))\{[^}]*\}')  # `[source](url){style="..."}` -> `[source](url)`


def _clean_markdown_output(output) -> None:
    "Drop pandoc attributes (quarto-only) from a markdown output, in place."
    md = output.get('data', {}).get('text/markdown')
    if md is not None:
        output['data']['text/markdown'] = _re_pandoc_attrs.sub(r'\1', ''.join(md) if isinstance(md, list) else md)


def _is_hidden(cell, d: dict) -> bool:
    "Whether a code cell is left out of the page (`#| hide`, `#| default_exp`, `#| include: false`, the figure set-up)."
    return bool(d.keys() & _hidden_directives) or _directive(d, 'include') == 'false' \
        or cell.metadata.get('wsol_docs', {}).get('setup', False)


_re_section = re.compile(r'^#{2,6}\s', flags=re.M)


def setup_cells(nb) -> set:
    """Indices of a narrative notebook's set-up code cells: cells that only import, and the code of its introduction,
    which ends at the first `##` section (or, in a notebook without sections, at the first markdown after the title)."""
    markdown = [i for i, c in enumerate(nb.cells) if c.cell_type == 'markdown']
    title = next((i for i in markdown if _title_in(nb.cells[i].source)), -1)
    sections = [i for i in markdown if _re_section.search(nb.cells[i].source)]
    end = sections[0] if sections else next((i for i in markdown if i > title), len(nb.cells))
    return {i for i, c in enumerate(nb.cells) if c.cell_type == 'code' and (i < end or imports_only(c.source))}


def _code_cell(cell, module: str):
    "The code cell as its page shows it (directives applied), or None if the page leaves it out."
    d = cell_directives(cell)
    if _is_hidden(cell, d): return None
    auto = cell.metadata.get('wsol_docs', {}).get('auto_doc')
    hide_input = bool(auto) or is_show_doc(cell.source) or 'hide_input' in d or _directive(d, 'echo') == 'false'
    if 'hide_output' in d or _directive(d, 'output') == 'false': cell.outputs = []
    for o in cell.outputs: _clean_markdown_output(o)
    cell.source = shown_source(cell.source)
    cell.metadata.pop('wsol_docs', None)
    if d.keys() & {'export', 'exports'}:
        target = (d.get('export') or d.get('exports') or [''])[0]
        cell.metadata['wsol_docs'] = {'exported': target or module, 'imports_only': imports_only(cell.source)}
    if hide_input or not cell.source.strip():
        if not cell.outputs: return None
        cell.metadata['transient'] = {'remove_source': True}
    return cell


def _mark_folds(cells, folded_ids) -> None:
    "Put each run of consecutive folded cells (ids in `folded_ids`) in one collapsed `<details>` (see the template)."
    runs, run = [], []
    for c in cells + [None]:
        if c is not None and id(c) in folded_ids: run.append(c)
        elif run: runs, run = runs + [run], []
    for run in runs:
        params = any('parameters' in c.metadata.get('tags', []) for c in run)
        label = ('Parameters and set-up code' if params else 'Set-up code') + (f' ({len(run)} cells)' if len(run) > 1 else '')
        run[0].metadata.setdefault('wsol_docs', {})['fold_start'] = label
        run[-1].metadata.setdefault('wsol_docs', {})['fold_end'] = True


def docs_notebook(nb, module: str = '') -> 'nbformat.NotebookNode':
    "A copy of `nb` as its page shows it: nbdev's directives applied, the title cell first, set-up code folded."
    out = copy.deepcopy(nb)
    narrative = not default_exp(out)
    fold = {id(out.cells[i]) for i in setup_cells(out)} if narrative else set()
    cells, title = [], None
    for cell in out.cells:
        if cell.cell_type == 'raw' and _front_matter(cell): continue
        if cell.cell_type == 'markdown':
            src = cell.source.strip()
            if src.startswith('#') and src.endswith(' -'): continue  # nbdev: headings ending in ' -' are hidden
            if title is None and _title_in(cell.source):
                cell.metadata.setdefault('tags', []).append('wsol-title')
                title = cell
            else: cells.append(cell)
        elif cell.cell_type == 'code':
            shown = _code_cell(cell, module)
            if shown is not None: cells.append(shown)
        else: cells.append(cell)
    _mark_folds(cells, fold)
    out.cells = ([title] if title is not None else []) + cells  # nbdev puts the title (front matter) on top
    return out


# ------------------------------------------------------------------------------------------ images in markdown

_re_md_image = re.compile(r'(!\[[^\]]*\]\(\s*)(<[^>\n]+>|[^)\s]+)')  # ![alt](src "title")
_re_html_image = re.compile(r'(<img\b[^>]*?\bsrc\s*=\s*)(["\'])(.*?)\2', flags=re.I)  # <img src="...">


def is_relative_url(src: str) -> bool:
    "Whether `src` is a relative path (no scheme such as `https:`/`data:`, not `/...`, `//...` or `#...`)."
    return bool(src) and not re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*:|^[/#]', src)


def _map_markdown_images(markdown: str, fn) -> str:
    "`markdown` with every image src `s` outside code fences replaced by `fn(s)`."
    out, fence = [], False
    for line in markdown.splitlines(keepends=True):
        if line.lstrip().startswith(('```', '~~~')): fence = not fence
        if not fence:
            line = _re_md_image.sub(lambda m: m.group(1) + fn(m.group(2).strip('<>')), line)
            line = _re_html_image.sub(lambda m: m.group(1) + m.group(2) + fn(m.group(3)) + m.group(2), line)
        out.append(line)
    return ''.join(out)


def resolve_image(src: str, folder: Path, root: Path):
    "The file a relative image path names: from the notebook's `folder`, else from `root` (the README's paths); None if neither."
    path = unquote(src.split('#', 1)[0].split('?', 1)[0])
    for base in (folder, root):
        f = (base/path).resolve()
        if f.is_file() and (f == root or root in f.parents): return f
    return None


def copy_local_images(nb, page_href: str, folder: Path, root: Path, site: Path) -> list:
    "Copy the images markdown cells of `nb` name by relative path into `site/IMAGES_DIR`, rewriting their src; returns notes."
    notes = []

    def relocate(src):
        if not is_relative_url(src): return src
        f = resolve_image(src, folder, root)
        if f is None:
            notes.append(f'image not found: {src} (looked in {folder} and {root})')
            return src
        target = posixpath.join(IMAGES_DIR, f.relative_to(root).as_posix())
        (site/target).parent.mkdir(parents=True, exist_ok=True)
        if not (site/target).exists(): shutil.copy2(f, site/target)
        return _rel_href(target, page_href)

    for cell in nb.cells:
        if cell.cell_type == 'markdown': cell.source = _map_markdown_images(cell.source, relocate)
    return notes


# --------------------------------------------------------------------------------------------------- math

# `$$`, `\(`, `\[`, or `$...$` that does not look like money or a shell variable
_re_math = re.compile(r'\$\$|\\\(|\\\[|(?<![\\$\w])\$[^\s$][^$\n]*?(?<![\s\\])\$(?!\w)')

MATHJAX_CONFIG = r"""<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  tex2jax: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
            processEscapes: true, processEnvironments: true},
  "HTML-CSS": {availableFonts: [], webFont: "STIX-Web", imageFont: null, preferredFont: null},
  messageStyle: "none"
});
</script>"""


_re_code_span = re.compile(r'(`+).*?\1', flags=re.S)


def _prose(markdown: str) -> str:
    "`markdown` without fenced code blocks and `code spans` (where `$` is not math)."
    lines, fence = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith(('```', '~~~')): fence = not fence
        elif not fence: lines.append(line)
    return _re_code_span.sub('', '\n'.join(lines))


def has_math(nb) -> bool:
    "Whether any markdown cell of `nb` has TeX math (`$...$`, `$$`, `\\(`, `\\[`) outside code."
    return any(c.cell_type == 'markdown' and _re_math.search(_prose(c.source)) for c in nb.cells)


def mathjax_source() -> Path:
    "MathJax 2 (JS, fonts) as shipped by the `jupyter-server-mathjax` package."
    try: import jupyter_server_mathjax
    except ImportError:
        raise DocsError('pages with math need MathJax: pip install jupyter-server-mathjax (in the dev extra: '
                        'pip install -e ".[dev]")') from None
    static = Path(jupyter_server_mathjax.__file__).parent/'static'
    if not (static/'MathJax.js').is_file(): raise DocsError(f'{static}: no MathJax.js in jupyter-server-mathjax')
    return static


def copy_mathjax(site: Path) -> None:
    "Copy MathJax into `site/MATHJAX_DIR` (once per build), so that math renders without a network."
    if not (site/MATHJAX_DIR).is_dir(): shutil.copytree(mathjax_source(), site/MATHJAX_DIR)


def mathjax_html(page_href: str) -> str:
    "The `<head>` scripts of a page with math: the configuration, then the local MathJax."
    src = _rel_href(f'{MATHJAX_DIR}/MathJax.js', page_href)
    return f'{MATHJAX_CONFIG}\n<script src="{_esc(src)}?config=TeX-AMS-MML_HTMLorMML-full"></script>'


# ------------------------------------------------------------------------------------------------------- HTML

_PAGE_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{{ resources.wsol.mathjax }}{%- endblock html_head_js_mathjax -%}
{%- block html_head_css -%}
<meta name="generator" content="wsol tools/build_docs.py">
<style type="text/css">{{ resources.wsol.css }}</style>
{%- endblock html_head_css -%}
{%- block body_header -%}
<body class="jp-Notebook wsol-page" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.wsol.topbar }}
<div class="wsol-layout">
{{ resources.wsol.sidebar }}
<main class="wsol-main">
{{ resources.wsol.banner }}
{%- endblock body_header -%}
{% block body_footer %}
{{ resources.wsol.footer }}
</main>
</div>
</body>
{% endblock body_footer %}
{% block codecell %}
{%- set wd = cell.metadata.get('wsol_docs', {}) -%}
{%- if wd.get('fold_start') -%}
<details class="wsol-setup"><summary>{{ wd['fold_start'] }}</summary>
{%- endif -%}
{%- if 'exported' in wd -%}
<details class="wsol-exported"{% if not wd.get('imports_only') %} open{% endif %}><summary>Exported {{ 'imports' if wd.get('imports_only') else 'source' }}{% if wd['exported'] %} &rarr; <code>{{ wd['exported'] }}</code>{% endif %}</summary>
{{ super() }}
</details>
{%- else -%}
{{ super() }}
{%- endif -%}
{%- if wd.get('fold_end') -%}
</details>
{%- endif -%}
{% endblock codecell %}
"""

PAGE_CSS = """
:root { --wsol-bar: 3rem; --wsol-side: 16rem; --wsol-accent: #24507a; }
body.wsol-page { margin: 0; padding: 0; background: #fff; }
.wsol-topbar { position: sticky; top: 0; z-index: 10; display: flex; align-items: center; gap: 1rem;
  height: var(--wsol-bar); padding: 0 1.25rem; background: var(--wsol-accent); color: #fff;
  font-family: system-ui, -apple-system, "Segoe UI", sans-serif; box-sizing: border-box; }
.wsol-topbar a { color: #fff; text-decoration: none; }
.wsol-brand { font-weight: 600; font-size: 1.15rem; }
.wsol-tagline { flex: 1; opacity: .85; font-size: .85rem; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.wsol-repo { font-size: .9rem; border: 1px solid rgba(255,255,255,.6); border-radius: 4px; padding: .2rem .6rem; }
.wsol-layout { display: flex; align-items: flex-start; }
.wsol-sidebar { position: sticky; top: var(--wsol-bar); flex: 0 0 var(--wsol-side); box-sizing: border-box;
  max-height: calc(100vh - var(--wsol-bar)); overflow-y: auto; padding: 1rem .75rem;
  border-right: 1px solid #e3e6ea; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: .9rem; }
.wsol-sidebar ul { list-style: none; margin: 0; padding: 0; }
.wsol-sidebar .wsol-group { margin: 1rem .5rem .3rem; font-size: .75rem; font-weight: 600; letter-spacing: .04em;
  text-transform: uppercase; color: #6b7580; }
.wsol-sidebar .wsol-group:first-child { margin-top: 0; }
.wsol-sidebar a { display: block; padding: .3rem .5rem; border-radius: 4px; color: #2b2b2b; text-decoration: none; }
.wsol-sidebar a:hover { background: #eef2f6; }
.wsol-sidebar li.wsol-current > a { background: #e3ecf5; color: var(--wsol-accent); font-weight: 600; }
.wsol-sidebar ul.wsol-toc { margin: .2rem 0 .5rem .8rem; border-left: 2px solid #d6e0ea; }
.wsol-sidebar ul.wsol-toc a { font-size: .82rem; padding: .12rem .6rem; color: #555; }
.wsol-sidebar ul.wsol-toc .wsol-h3 a { padding-left: 1.3rem; }
.wsol-main { flex: 1; min-width: 0; max-width: 64rem; padding: 1.5rem 2.5rem 3rem; box-sizing: border-box; }
.jp-RenderedHTMLCommon.celltag_wsol-title blockquote { border-left: none; margin: 0 0 1rem; padding: 0;
  font-size: 1.2em; color: #555; font-style: italic; }
.wsol-exported, .wsol-setup { margin: .4rem 0; }
.wsol-exported > summary, .wsol-setup > summary { cursor: pointer; font-size: .8rem; color: #666; margin: .2rem 0;
  font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
.jp-OutputArea-output img, .jp-RenderedMarkdown img { max-width: 100%; height: auto; }
.wsol-main .jp-InputArea-editor { overflow-x: auto; }
.jp-RenderedHTMLCommon.jp-RenderedMarkdown pre { background: #f5f6f7; padding: .5rem .75rem; border-radius: 4px;
  overflow-x: auto; }
.jp-OutputArea-output.jp-RenderedMarkdown { border-left: 3px solid #c9d7e6; padding-left: 1rem; }
.jp-OutputArea-output.jp-RenderedMarkdown > hr:first-child { display: none; }
.jp-Cell.celltag_injected-parameters::before { content: "Parameters injected for this build";
  font-size: .8rem; color: #666; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
.wsol-error { border: 1px solid #c62828; background: #fdecea; color: #5f1010; padding: .75rem 1rem;
  border-radius: 4px; margin: 0 0 1rem; white-space: pre-wrap; font-family: monospace; font-size: .85rem; }
.wsol-footer { margin-top: 3rem; padding-top: .75rem; border-top: 1px solid #e3e6ea; color: #777; font-size: .8rem;
  font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
.wsol-footer a { color: inherit; }
@media (max-width: 52rem) {
  .wsol-layout { display: block; }
  .wsol-sidebar { position: static; max-height: none; border-right: none; border-bottom: 1px solid #e3e6ea; }
  .wsol-main { padding: 1rem; }
}
"""


def _esc(s) -> str: return html.escape(str(s), quote=True)


def _rel_href(target: str, current: str) -> str:
    "Link from page `current` to `target` (both relative to the site root, posix)."
    return posixpath.relpath(target, posixpath.dirname(current) or '.')


def nav_html(pages, current: str, toc=()) -> str:
    "The sidebar: the pages (`href`, `title`, `group`) in order under their group titles; the current one with its sections."
    parts, group = [], None
    for p in pages:
        if p.group != group:
            if group is not None: parts.append('</ul>')
            group = p.group
            parts.append(f'<p class="wsol-group">{_esc(group)}</p><ul>')
        here = p.href == current
        sub = ''
        if here and toc:
            sub = '<ul class="wsol-toc">' + ''.join(
                f'<li class="wsol-h{lvl}"><a href="#{_esc(a)}">{_esc(t)}</a></li>' for lvl, a, t in toc) + '</ul>'
        cls, aria = (' class="wsol-current"', ' aria-current="page"') if here else ('', '')
        parts.append(f'<li{cls}><a href="{_esc(_rel_href(p.href, current))}"{aria}>{_esc(p.title)}</a>{sub}</li>')
    if group is not None: parts.append('</ul>')
    return '<nav class="wsol-sidebar" aria-label="Pages">' + ''.join(parts) + '</nav>'


def topbar_html(site: Site, current: str) -> str:
    "The top bar: site title (link to the index), one-liner, repository link."
    repo = f'<a class="wsol-repo" href="{_esc(site.repo_url)}">Repository</a>' if site.repo_url else ''
    return (f'<header class="wsol-topbar"><a class="wsol-brand" href="{_esc(_rel_href("index.html", current))}">'
            f'{_esc(site.title)}</a><span class="wsol-tagline">{_esc(site.description)}</span>{repo}</header>')


def footer_html(page, site: Site) -> str:
    "The footer: the notebook the page comes from, and how its outputs were made."
    how = {'executed': 'executed when the site was built', 'stored': 'as stored in the notebook',
           'generated': 'page generated by the docs build'}.get(page.mode, page.mode)
    src = ''
    if page.mode != 'generated':
        path = f'{site.nbs_path}/{page.src}'
        link = (f'<a href="{_esc(site.repo_url)}/blob/{_esc(site.branch)}/{_esc(path)}">{_esc(path)}</a>'
                if site.repo_url else _esc(page.src))
        src = f'Source: {link} · '
    return f'<footer class="wsol-footer">{src}outputs {how} · built by tools/build_docs.py</footer>'


_re_heading = re.compile(r'<h([23]) id="([^"]+)"[^>]*>(.*?)(?:<a class="anchor-link"[^>]*>.*?</a>)?</h\1>', re.S)


def page_toc(body: str) -> list:
    "(level, anchor, text) of the `<h2>`/`<h3>` headings of a rendered page."
    return [(int(lvl), html.unescape(a), html.unescape(re.sub(r'<[^>]+>', '', t)).strip())
            for lvl, a, t in _re_heading.findall(body)]


def make_exporter() -> HTMLExporter:
    "nbconvert's HTML exporter with the site template: lab look, no prompts (markdown images: see copy_local_images)."
    return HTMLExporter(template_name='lab', extra_loaders=[DictLoader({'wsol_page.html.j2': _PAGE_TEMPLATE})],
                        template_file='wsol_page.html.j2', exclude_input_prompt=True,
                        exclude_output_prompt=True, embed_images=False)


def render_page(nb, page, pages, site: Site, folder, exporter: HTMLExporter = None, css: str = PAGE_CSS,
                math: bool = False) -> str:
    "The page as one HTML document (`nb` as `docs_notebook` made it; `math`: load MathJax)."
    exporter = exporter or make_exporter()
    nb = copy.deepcopy(nb)
    nb.metadata['title'] = page.title if page.title == site.title else f'{page.title} – {site.title}'
    banner = (f'<div class="wsol-error" role="alert">This page was not fully executed: {_esc(page.error)}</div>'
              if page.error else '')
    wsol = dict(css=css, mathjax=mathjax_html(page.href) if math else '', topbar=topbar_html(site, page.href),
                banner=banner, footer=footer_html(page, site), sidebar='<!--wsol-sidebar-->')
    body, _ = exporter.from_notebook_node(nb, resources={'metadata': {'name': page.title, 'path': str(folder)},
                                                         'wsol': wsol})
    return body.replace('<!--wsol-sidebar-->', nav_html(pages, page.href, page_toc(body)), 1)


# ------------------------------------------------------------------------------------------------------ build

@dataclass
class PageResult:
    "One page of a build: where it came from, how its outputs were made, what went wrong."
    src: str  # notebook path under the notebook folder ('' for the generated index)
    href: str  # page path under the site root
    title: str
    description: str = ''
    group: str = GUIDE_GROUP  # its sidebar group
    mode: str = 'stored'  # 'executed' | 'stored' (outputs as saved in the notebook) | 'generated'
    seconds: float = 0.0  # execution + rendering time
    error: str = ''  # why execution failed ('' if it did not)
    math: bool = False  # the page has TeX math (MathJax is loaded)
    notes: list = field(default_factory=list)  # other things worth knowing (e.g. why it was not executed)


def check_out_path(out, nbs_path) -> None:
    "Refuse an output folder that holds the notebooks or is neither empty nor a previous docs build (ours or quarto's)."
    out, nbs_path = Path(out).resolve(), Path(nbs_path).resolve()
    if out == nbs_path or out in nbs_path.parents:
        raise DocsError(f'--out {out}: it contains the notebook folder {nbs_path}; choose another output folder')
    if out.exists() and not out.is_dir(): raise DocsError(f'--out {out}: exists and is not a folder')
    if out.is_dir() and any(out.iterdir()) and not ((out/MARKER).exists() or (out/'site_libs').is_dir()):
        raise DocsError(f'--out {out}: not empty and not a docs build (no {MARKER} or site_libs/); '
                        'remove it or choose another output folder')


def _replace_dir(new: Path, out: Path) -> None:
    "Swap folder `new` in as `out` (two renames on the same filesystem; the old build is removed after)."
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f'.{out.name}.old-'))
        os.replace(out, old/out.name)
    try: os.replace(new, out)
    except OSError:
        if old is not None: os.replace(old/out.name, out)
        raise
    if old is not None: shutil.rmtree(old)


def _matches(rel: str, globs) -> bool:
    "Whether notebook `rel` (posix path under the notebook folder) matches a glob (on its path or its file name)."
    return any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(posixpath.basename(rel), g) for g in globs)


def read_notebooks(nbs_path: Path) -> dict:
    "{posix path under `nbs_path`: notebook} of every notebook of the site."
    out = {}
    for f in list_notebooks(nbs_path):
        try: out[f.relative_to(nbs_path).as_posix()] = nbformat.read(f, as_version=4)
        except Exception as e: raise DocsError(f'{f}: not a readable notebook ({type(e).__name__}: {e})') from None
    return out


def check_params(params: dict, sources: dict, nbs_path) -> None:
    "Refuse `--params` keys that name no notebook, or a notebook without a `parameters` cell."
    for key, values in params.items():
        hits = [rel for rel in sources if _matches(rel, [key])]
        if not hits: raise DocsError(f'--params: {key!r} names no notebook in {nbs_path}')
        if not isinstance(values, dict): raise DocsError(f'--params: {key!r} must map to {{parameter: value}}, not {values!r}')
        for rel in hits:
            if not is_parameterised(sources[rel]):
                raise DocsError(f'--params: {rel} has no cell tagged "parameters" (it is not a papermill notebook)')


def plan_pages(sources: dict, site: Site) -> list:
    "The site's pages in sidebar order (`nav_groups`); an index page is generated if there is no `index.ipynb`."
    pages = []
    for group, rels in nav_groups(list(sources)):
        for rel in rels:
            title, desc = notebook_title(sources[rel], default=Path(rel).stem)
            pages.append(PageResult(src=rel, href=rel[:-len('.ipynb')] + '.html', title=title, description=desc,
                                    group=group))
    if not any(p.href == 'index.html' for p in pages):
        pages.insert(0, PageResult(src='', href='index.html', title=site.title, description=site.description,
                                   mode='generated', notes=['no index.ipynb: index page generated']))
    return pages


def _index_notebook(site: Site, pages) -> 'nbformat.NotebookNode':
    "An index page for a notebook folder without `index.ipynb`: the site title and the list of pages."
    items = '\n'.join(f'- [{p.title}]({p.href})' + (f': {p.description}' if p.description else '') for p in pages)
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f'# {site.title}\n\n> {site.description}'),
                                           nbformat.v4.new_markdown_cell(f'## Pages\n\n{items}')])


def _module_label(nb, site: Site) -> str:
    "Exported-module label for the notebook's export cells (`wsol/metrics.py`), '' without `default_exp`."
    exp = default_exp(nb)
    return f'{site.lib_path or site.lib_name}/{exp.replace(".", "/")}.py' if exp else ''


@dataclass
class BuildOptions:
    "How notebooks are run (see `main` for the command-line options)."
    execute: bool = True  # False: outputs as stored in the notebooks
    execute_only: tuple = ()  # globs: execute only these notebooks (file name or path under the notebook folder)
    params: dict = field(default_factory=dict)  # {notebook glob: {parameter: value}}: papermill notebooks to execute
    timeout: float = 600  # seconds per notebook
    kernel_name: str = 'python3'
    run_flags: tuple = ()  # test flags whose cells are executed (e.g. ('slow',))
    dpi: int = FIGURE_DPI  # inline figures of executed notebooks


def prepare_notebook(nb, page: PageResult, site: Site, folder: Path, opts: BuildOptions):
    "The notebook of `page` with its outputs: injected parameters, auto `show_doc`s, executed or stored."
    nb = copy.deepcopy(nb)
    param_key = next((k for k in opts.params if _matches(page.src, [k])), None)
    if param_key is not None:
        nb.metadata.setdefault('papermill', {})  # what papermill's notebook loader adds
        for c in nb.cells: c.metadata.setdefault('tags', [])
        nb = parameterize_notebook(nb, opts.params[param_key], kernel_name=opts.kernel_name, language='python')
        for c in nb.cells:
            if not c.metadata['tags']: del c.metadata['tags']
    add_auto_docs(nb)
    run = opts.execute and (not opts.execute_only or _matches(page.src, opts.execute_only))
    if run and is_parameterised(nb) and param_key is None:
        run = False
        page.notes.append('papermill notebook: stored outputs shown (give it parameters with --params to execute it)')
    if run:
        page.mode = 'executed'
        try: execute_notebook(nb, folder, opts.timeout, opts.kernel_name, site.tst_flags, opts.run_flags,
                              name=page.src, dpi=opts.dpi)
        except DocsError as e: page.error = str(e)
    else:
        page.mode = 'stored'
        exp = default_exp(nb)
        page.notes += fill_auto_docs(nb, f'{site.lib_name}.{exp}' if exp and site.lib_name else '')
    return nb


def build_page(page, pages, sources, site, nbs_path, root, tmp, exporter, css, opts) -> None:
    "Write the HTML of one page (and the images it needs) into the site folder `tmp`."
    if page.mode == 'generated':
        nb, folder = _index_notebook(site, [p for p in pages if p is not page]), nbs_path
    else:
        folder = (nbs_path/page.src).parent
        nb = prepare_notebook(sources[page.src], page, site, folder, opts)
    shown = docs_notebook(nb, _module_label(nb, site))
    page.notes += copy_local_images(shown, page.href, folder, root, tmp)
    page.math = has_math(shown)
    if page.math: copy_mathjax(tmp)
    dest = tmp/page.href
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(render_page(shown, page, pages, site, folder, exporter, css, page.math), encoding='utf-8')


def build_docs(nbs_path='nbs', out_path='_docs', opts: BuildOptions = None, log=print) -> list:
    "Build the site from the notebooks in `nbs_path` into `out_path` (replaced as a whole); returns a `PageResult` per page."
    opts = opts or BuildOptions()
    log = log or (lambda *a, **k: None)
    nbs_path, out = Path(nbs_path).resolve(), Path(out_path).resolve()
    site = Site.from_settings(find_settings(nbs_path) or find_settings())  # else the current project's
    root = repo_root(nbs_path)
    check_out_path(out, nbs_path)
    if opts.timeout <= 0: raise DocsError(f'--timeout {opts.timeout}: must be > 0 seconds')
    out.parent.mkdir(parents=True, exist_ok=True)
    styles = nbs_path/'styles.css'
    css = PAGE_CSS + (styles.read_text(encoding='utf-8') if styles.is_file() else '')
    sources = read_notebooks(nbs_path)
    check_params(opts.params, sources, nbs_path)
    pages = plan_pages(sources, site)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f'.{out.name}.tmp-'))
    try:
        exporter = make_exporter()
        for n, page in enumerate(pages, 1):
            t0 = time.monotonic()
            build_page(page, pages, sources, site, nbs_path, root, tmp, exporter, css, opts)
            page.seconds = round(time.monotonic() - t0, 2)
            status = f'FAILED: {page.error}' if page.error else page.mode
            log(f'[{n:2d}/{len(pages)}] {page.src or "(index)":32s} {page.seconds:6.1f} s  {status}'
                + ''.join(f'\n        note: {x}' for x in page.notes))
        (tmp/'.nojekyll').write_text('')
        (tmp/MARKER).write_text(json.dumps({'nbs_path': str(nbs_path), 'pages': [asdict(p) for p in pages]},
                                           indent=1) + '\n')
        os.chmod(tmp, 0o755)
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return pages


# ---------------------------------------------------------------------------------------------- command line

def parse_args(argv=None):
    "The command line, with defaults from the nearest `settings.ini`."
    cfg = find_settings()
    root = Path(cfg.get('config_path', '.'))
    p = argparse.ArgumentParser(prog=PROG, description=(
        'Build the docs site from the notebooks without quarto: execute each notebook, apply the nbdev directives '
        'and write self-contained HTML pages with a navigation sidebar.'))
    p.add_argument('--nbs', default=str(root/cfg.get('nbs_path', 'nbs')),
                   help='notebook folder (default: nbs_path of settings.ini: %(default)s)')
    p.add_argument('--out', default=str(root/cfg.get('doc_path', '_docs')),
                   help='site folder, replaced as a whole when the build is done (default: %(default)s)')
    p.add_argument('--no-execute', action='store_true', help='execute nothing: show the outputs stored in the notebooks')
    p.add_argument('--execute', metavar='GLOB', action='append', default=[],
                   help='execute only the notebooks matching GLOB (file name or path under --nbs; repeatable); '
                        'the others show their stored outputs')
    p.add_argument('--params', metavar='FILE',
                   help='YAML or JSON file {notebook: {parameter: value}}. Papermill notebooks (a cell tagged '
                        '"parameters", e.g. train.ipynb) are executed only when listed here, with these values '
                        'injected as papermill does ({} = their defaults); otherwise their stored outputs are shown '
                        f'(default: {DOCS_PARAMS} in the notebook folder, if there is one)')
    p.add_argument('--timeout', type=float, default=600, help='seconds one notebook may run (default: %(default)s)')
    p.add_argument('--flags', default='', help='test flags whose cells are executed, e.g. "slow" (default: none; '
                                               'cells with a tst_flags flag keep their stored outputs)')
    p.add_argument('--kernel', default='python3', help='Jupyter kernel (default: %(default)s)')
    p.add_argument('--dpi', type=int, default=FIGURE_DPI,
                   help='resolution of the figures of executed notebooks (default: %(default)s)')
    p.add_argument('-q', '--quiet', action='store_true', help='print only the summary')
    args = p.parse_args(argv)
    if args.params is None and (Path(args.nbs)/DOCS_PARAMS).is_file(): args.params = str(Path(args.nbs)/DOCS_PARAMS)
    args.param_values = {}
    if args.params:
        try: args.param_values = yaml.safe_load(Path(args.params).read_text(encoding='utf-8')) or {}
        except (OSError, yaml.YAMLError) as e: p.error(f'--params {args.params}: {e}')
        if not isinstance(args.param_values, dict):
            p.error(f'--params {args.params}: must hold a mapping {{notebook: {{parameter: value}}}}')
    if args.dpi <= 0: p.error(f'--dpi {args.dpi}: must be > 0')
    return args


def main(argv=None) -> int:
    "Build the site. Returns 0, 1 (a notebook failed) or 2 (bad usage)."
    args = parse_args(argv)
    opts = BuildOptions(execute=not args.no_execute, execute_only=tuple(args.execute), params=args.param_values,
                        timeout=args.timeout, kernel_name=args.kernel,
                        run_flags=tuple(args.flags.replace(',', ' ').split()), dpi=args.dpi)
    t0 = time.monotonic()
    try: pages = build_docs(args.nbs, args.out, opts, log=None if args.quiet else print)
    except DocsError as e:
        print(f'{PROG}: error: {e}', file=sys.stderr)
        return 2
    modes = {m: sum(pg.mode == m for pg in pages) for m in ('executed', 'stored', 'generated')}
    print(f'{PROG}: {len(pages)} pages in {Path(args.out).resolve()} ({time.monotonic() - t0:.0f} s; '
          + ', '.join(f'{v} {k}' for k, v in modes.items() if v) + ')')
    failed = [pg for pg in pages if pg.error]
    for pg in failed: print(f'{PROG}: FAILED {pg.error}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

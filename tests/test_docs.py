"""The docs site: quarto config for `nbdev_docs`, and `python tools/build_docs.py` building pages that load, with their
figures, images and math, in headless Chromium.

Builds: (1) a small fixture folder (`demo_nbs`: an index, a notebook whose figure exists only once it is executed,
with math and markdown images, a papermill notebook, files that are not pages), executed; (2) a broken notebook;
(3) the real nbs/ folder with stored outputs, executing index.ipynb and cam_decomposition.ipynb (quick). In Chromium,
every page of both sites is opened: every <img> must load and math must be typeset by the local MathJax. Browser
checks skip only when Chromium is missing and CI is not set."""
import base64
import configparser
import io
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
BUILDER = ROOT/'tools'/'build_docs.py'
sys.path.insert(0, str(BUILDER.parent))
import build_docs  # noqa: E402  (tools/build_docs.py)

DECOMPOSITION = 'cam_decomposition.ipynb'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
                  '--no-first-run', '--disable-component-update', '--disable-sync']
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def settings():
    parser = configparser.ConfigParser(delimiters=['='], interpolation=None)
    parser.read(ROOT/'settings.ini', encoding='utf-8')
    return parser['DEFAULT']


def build(*args, env=None, timeout=600):
    "Run `python tools/build_docs.py ARGS` from the repo root."
    return subprocess.run([sys.executable, str(BUILDER), *[str(a) for a in args]], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def pages_of(site):
    return {p['src']: p for p in json.loads((site/'.wsol-docs.json').read_text())['pages']}


def write_png(path, rgb, size=(40, 24)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', size, rgb).save(path)


def demo_nbs(folder):
    "A small site: `folder/nbs` (three pages and files that are not pages) and `folder/figs` (an image outside nbs/)."
    folder = Path(folder)
    nbs = folder/'nbs'
    nbs.mkdir(parents=True, exist_ok=True)
    cells = lambda *cs: nbformat.v4.new_notebook(cells=list(cs), metadata={'kernelspec': {
        'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}})
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    param = code('n = 2  # how many')
    param.metadata['tags'] = ['parameters']
    notebooks = {
        'index.ipynb': cells(md('# Demo site\n\n> A site of three notebooks.'), code('print("hello from the index")'),
                             md('## Pictures\n\nFrom the repository root, as in a README: ![a red square](figs/red.png)')),
        '01_figure.ipynb': cells(
            code('#| default_exp figure'), code('#| export\nimport numpy as np'),
            code('#| hide\nimport matplotlib.pyplot as plt\nfrom nbdev.showdoc import *'),
            md('# A figure\n\n> One exported function and the picture it makes.'),
            md('## Rings'),
            md('The rings are where $\\cos(r/3) = 1$, at radii\n\n$$r_k = 6\\pi k, \\quad k \\in \\mathbb{N}.$$\n\n'
               'Next to the notebook: <img src="img/blue.png" alt="a blue square">'),
            code('#| export\ndef rings(size: int = 64,  # side of the image in pixels\n'
                 '          ) -> np.ndarray:  # (size, size) float64 in [-1, 1]\n'
                 '    "Concentric rings: cos of the distance to the centre."\n'
                 '    y, x = np.mgrid[:size, :size] - size / 2\n    return np.cos(np.hypot(x, y) / 3)'),
            code('plt.rcParams["figure.dpi"] = 72  # as a notebook keeping its stored PNGs small does\n'
                 'fig, ax = plt.subplots(figsize=(3, 3))\nax.imshow(rings(), cmap="viridis")\n'
                 'ax.set_title("rings")\nplt.show()'),
            code('#| slow\nraise RuntimeError("slow cells do not run without --flags slow")'),
            code('#| hide\nHIDDEN_MARKER = 1')),
        '02_params.ipynb': cells(md('# Parameters\n\n> A papermill notebook.'), param,
                                 code('print(f"n is {n}")', outputs=[nbformat.v4.new_output('stream', text='n is 2\n')])),
        '_scratch.ipynb': cells(md('# Scratch')),
    }
    for name, nb in notebooks.items(): nbformat.write(nb, nbs/name)
    (nbs/'notes.txt').write_text('not a notebook\n')
    write_png(nbs/'img'/'blue.png', (30, 60, 200))
    write_png(folder/'figs'/'red.png', (200, 30, 30))
    return nbs


# ---------------------------------------------------------------------------------------------------------- quarto

def test_quarto_config():
    "nbs/_quarto.yml + nbs/nbdev.yml + nbs/styles.css: a complete nbdev website config, in sync with settings.ini."
    q = yaml.safe_load((NBS/'_quarto.yml').read_text())
    assert q['project']['type'] == 'website'
    html = q['format']['html']
    assert html['theme'] and html['css'] == 'styles.css' and html['toc'] is True
    assert (NBS/html['css']).is_file()
    assert 'sidebar' in q['website'] and 'navbar' in q['website']
    assert q['metadata-files'] == ['nbdev.yml', 'sidebar.yml']  # sidebar.yml: written by nbdev_docs (gitignored)
    n = yaml.safe_load((NBS/'nbdev.yml').read_text())
    cfg = settings()
    assert n['project']['output-dir'] == Path(cfg['doc_path']).name
    assert n['website']['title'] == cfg['title']
    assert n['website']['description'] == cfg['description']
    assert n['website']['repo-url'] == cfg['git_url']
    assert n['website']['site-url'] == cfg['doc_host'] + cfg['doc_baseurl']


def test_nbdev_yml_is_what_nbdev_docs_writes(tmp_path):
    "nbdev_docs rewrites nbs/nbdev.yml from settings.ini on every run: the committed one must be that, byte for byte."
    shutil.copy(ROOT/'settings.ini', tmp_path)
    (tmp_path/'nbs').mkdir()
    shutil.copy(NBS/'_quarto.yml', tmp_path/'nbs')
    subprocess.run([sys.executable, '-c', 'from nbdev.quarto import refresh_quarto_yml; refresh_quarto_yml()'],
                   cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path/'nbs/nbdev.yml').read_text() == (NBS/'nbdev.yml').read_text()
    assert (tmp_path/'nbs/_quarto.yml').read_text() == (NBS/'_quarto.yml').read_text()  # kept, not replaced


def test_builder_is_a_dev_tool():
    "The builder is tools/build_docs.py, not part of the package: no console script, nbconvert & co. only in dev."
    cfg = settings()
    assert 'docs' not in cfg['console_scripts'] and not (ROOT/'wsol'/'docs.py').exists()
    runtime, dev = cfg['requirements'].split(), cfg['dev_requirements'].split()
    for pkg in ('nbconvert', 'nbclient', 'jupyter-server-mathjax'): assert pkg in dev and pkg not in runtime


# ------------------------------------------------------------------------------------------------------ navigation

def test_nav_groups():
    "The story first (index, decomposition, the method, the evaluation protocol, usage), then the API by number."
    rels = ['15_train.ipynb', '07_losses.ipynb', 'evaluate.ipynb', '00_config.ipynb', 'index.ipynb', 'extra.ipynb',
            '11_metrics.ipynb', 'cam_decomposition.ipynb', 'datasets.ipynb', 'train.ipynb', '02_synth.ipynb']
    assert build_docs.nav_groups(rels) == [
        ('Guide', ['index.ipynb', 'cam_decomposition.ipynb', '07_losses.ipynb', '11_metrics.ipynb', 'datasets.ipynb',
                   'train.ipynb', 'evaluate.ipynb', 'extra.ipynb']),
        ('API reference', ['00_config.ipynb', '02_synth.ipynb', '15_train.ipynb'])]
    # once 09_methods exists it is "the method", and 07_losses joins the API reference; absent notebooks are skipped
    groups = dict(build_docs.nav_groups(['09_methods.ipynb', '07_losses.ipynb', '11_metrics.ipynb', '10_analysis.ipynb']))
    assert groups == {'Guide': ['09_methods.ipynb', '11_metrics.ipynb'], 'API reference': ['07_losses.ipynb', '10_analysis.ipynb']}
    assert dict(build_docs.nav_groups(['01_a.ipynb'])) == {'API reference': ['01_a.ipynb']}


def test_setup_cells_fold():
    "Narrative notebooks: code before the first section and import-only cells are set-up; `#| hide` cells vanish."
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(cells=[
        md('# Story\n\n> One line.'), code('import os'), md('Some prose with $x$.'), code('x = 1'),
        md('## Part one'), code('print(x)'), code('from pathlib import Path'), code('#| hide\nSECRET = 1')])
    assert build_docs.setup_cells(nb) == {1, 3, 6}
    shown = build_docs.docs_notebook(nb)
    sources = [c.source for c in shown.cells if c.cell_type == 'code']
    assert sources == ['import os', 'x = 1', 'print(x)', 'from pathlib import Path']  # the hide cell is gone
    folds = [(c.source, c.metadata.get('wsol_docs', {})) for c in shown.cells if c.cell_type == 'code']
    assert folds[0][1] == {'fold_start': 'Set-up code', 'fold_end': True}
    assert folds[2][1] == {} and folds[3][1] == {'fold_start': 'Set-up code', 'fold_end': True}
    # a notebook without sections: only the code before the first markdown after the title
    nb2 = nbformat.v4.new_notebook(cells=[md('# T'), code('import os'), code('a = 1'), md('text'), code('b = 2')])
    assert build_docs.setup_cells(nb2) == {1, 2}


# -------------------------------------------------------------------------------------------------------- building

@pytest.fixture(scope='module')
def fixture_site(tmp_path_factory):
    "The demo folder built with execution (MPLBACKEND=Agg in the caller's environment must not lose figures)."
    d = tmp_path_factory.mktemp('fixture')
    nbs = demo_nbs(d)
    (d/'params.yaml').write_text('02_params.ipynb: {n: 7}\n')
    r = build('--nbs', nbs, '--out', d/'site', '--params', d/'params.yaml', '--timeout', 300, env={'MPLBACKEND': 'Agg'})
    assert r.returncode == 0, r.stdout + r.stderr
    return d/'site', r


def test_fixture_build(fixture_site):
    site, r = fixture_site
    assert sorted(p.name for p in site.iterdir()) == ['.nojekyll', '.wsol-docs.json', '01_figure.html',
                                                      '02_params.html', '_images', '_static', 'index.html']
    pages = pages_of(site)
    assert list(pages) == ['index.ipynb', '01_figure.ipynb', '02_params.ipynb']  # the guide, then the API by number
    assert [p['group'] for p in pages.values()] == ['Guide', 'API reference', 'API reference']
    assert {p['mode'] for p in pages.values()} == {'executed'} and not any(p['error'] for p in pages.values())
    assert not any(p['notes'] for p in pages.values()), [p['notes'] for p in pages.values()]
    assert [s for s, p in pages.items() if p['math']] == ['01_figure.ipynb']
    assert pages['01_figure.ipynb']['title'] == 'A figure'
    assert 'build_docs: 3 pages' in r.stdout and '3 executed' in r.stdout
    fig = (site/'01_figure.html').read_text()
    assert 'HIDDEN_MARKER' not in fig and 'default_exp' not in fig and '#|' not in fig  # hide cells and directives
    assert 'Exported source' in fig and 'Concentric rings' in fig  # export cell shown, with its docstring ...
    assert '<h3 id="rings">' in fig  # ... and its show_doc
    assert '<details class="wsol-setup">' not in fig  # library notebooks fold nothing
    assert 'InlineBackend' not in fig  # the build's figure set-up cell is not shown
    # math: the local MathJax, referenced relatively (no network needed)
    assert 'src="_static/mathjax/MathJax.js?config=' in fig and (site/'_static/mathjax/MathJax.js').is_file()
    assert 'MathJax' not in (site/'index.html').read_text()  # pages without math do not load it
    # images: copied into the site, src rewritten relative to the page
    assert 'src="_images/nbs/img/blue.png"' in fig and (site/'_images/nbs/img/blue.png').is_file()
    index = (site/'index.html').read_text()
    assert 'src="_images/figs/red.png"' in index and (site/'_images/figs/red.png').is_file()
    assert 'hello from the index' in index and '<details class="wsol-setup"><summary>Set-up code</summary>' in index
    assert '<p class="wsol-group">API reference</p>' in index
    assert 'n is 7' in (site/'02_params.html').read_text()  # the papermill notebook ran with --params


def test_no_execute_and_rebuild(fixture_site, tmp_path):
    "--no-execute shows stored outputs only; a rebuild replaces the whole folder (no stale pages)."
    src = fixture_site[0].parent/'nbs'
    out = tmp_path/'site'
    out.mkdir()
    (out/'.wsol-docs.json').write_text('{}')  # a previous build ...
    (out/'stale.html').write_text('old')  # ... with a page whose notebook is gone
    r = build('--nbs', src, '--out', out, '--no-execute')
    assert r.returncode == 0, r.stderr
    assert not (out/'stale.html').exists()
    assert {p['mode'] for p in pages_of(out).values()} == {'stored'}
    assert not re.search(r'<img[^>]*src="data:', (out/'01_figure.html').read_text())  # saved unexecuted: no figure
    assert 'n is 2' in (out/'02_params.html').read_text()  # stored output of the papermill notebook
    # without execution show_doc comes from the exported module; the demo's (wsol.figure) does not exist: noted, left out
    assert '<h3 id="rings">' not in (out/'01_figure.html').read_text()
    assert any(n.startswith('cannot import wsol.figure') for n in pages_of(out)['01_figure.ipynb']['notes'])
    assert not [p for p in tmp_path.iterdir() if p.name != 'site']  # no temporary folders left behind


def test_failing_notebook(tmp_path):
    "A failing notebook: exit status 1, the cell named, its page written with the traceback and a banner."
    nbs = demo_nbs(tmp_path)
    nb = json.loads((nbs/'01_figure.ipynb').read_text())
    n = len(nb['cells'])
    nb['cells'].append({'cell_type': 'code', 'execution_count': None, 'id': 'boom', 'metadata': {}, 'outputs': [],
                        'source': 'raise ValueError("boom in the docs build")'})
    (nbs/'01_figure.ipynb').write_text(json.dumps(nb))
    r = build('--nbs', nbs, '--out', tmp_path/'site', '--execute', '01_*')
    assert r.returncode == 1
    assert f'01_figure.ipynb: cell {n} (`raise ValueError("boom in the docs build")`) raised ValueError' in r.stderr
    page = (tmp_path/'site/01_figure.html').read_text()
    assert 'class="wsol-error"' in page and 'boom in the docs build' in page
    modes = {k: v['mode'] for k, v in pages_of(tmp_path/'site').items()}
    assert modes == {'index.ipynb': 'stored', '01_figure.ipynb': 'executed', '02_params.ipynb': 'stored'}


def test_missing_image_is_noted(tmp_path):
    "A markdown image that resolves nowhere is reported (and left as it is)."
    nbs = tmp_path/'nbs'
    nbs.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# Index\n\n![gone](nope/gone.png)')]),
                   nbs/'index.ipynb')
    r = build('--nbs', nbs, '--out', tmp_path/'site', '--no-execute')
    assert r.returncode == 0, r.stderr
    assert 'image not found: nope/gone.png' in r.stdout
    assert pages_of(tmp_path/'site')['index.ipynb']['notes'][0].startswith('image not found: nope/gone.png')


def test_bad_usage(tmp_path, capsys):
    "Usage errors: exit status 2, a message naming the option; nothing is touched."
    main = build_docs.main
    (tmp_path/'mine').mkdir()
    (tmp_path/'mine/keep.txt').write_text('mine')
    assert main(['--nbs', str(NBS), '--out', str(tmp_path/'mine'), '--no-execute']) == 2
    assert 'not empty and not a docs build' in capsys.readouterr().err
    assert (tmp_path/'mine/keep.txt').read_text() == 'mine'
    assert main(['--nbs', str(tmp_path/'nope'), '--out', str(tmp_path/'site')]) == 2
    assert 'nope: notebook folder not found' in capsys.readouterr().err
    (tmp_path/'p.yaml').write_text('train_typo.ipynb: {epochs: 1}\n')
    assert main(['--nbs', str(NBS), '--out', str(tmp_path/'site'), '--params', str(tmp_path/'p.yaml')]) == 2
    assert "--params: 'train_typo.ipynb' names no notebook" in capsys.readouterr().err
    assert main(['--nbs', str(NBS), '--out', str(NBS.parent)]) == 2
    assert 'contains the notebook folder' in capsys.readouterr().err
    assert not (tmp_path/'site').exists()


@pytest.fixture(scope='module')
def real_site(tmp_path_factory):
    "nbs/ as it is, stored outputs, executing index.ipynb and the decomposition notebook (quick) when it exists."
    d = tmp_path_factory.mktemp('real')
    args = ['--nbs', NBS, '--out', d/'site', '--execute', 'index.ipynb', '--params', d/'params.yml']
    params = {}
    if (NBS/DECOMPOSITION).exists():
        args += ['--execute', DECOMPOSITION]
        params[DECOMPOSITION] = {'quick': True}  # its papermill parameter for a run of seconds
    (d/'params.yml').write_text(yaml.safe_dump(params))
    return d/'site', build(*args)


def test_real_nbs(real_site):
    out, r = real_site
    notebooks = sorted(p.relative_to(NBS).as_posix() for p in NBS.rglob('*.ipynb')
                       if not any(part.startswith(('_', '.')) for part in p.relative_to(NBS).parts))
    pages = pages_of(out)
    assert sorted(s for s in pages if s) == notebooks
    assert list(pages) == [rel for _, rels in build_docs.nav_groups(notebooks) for rel in rels]  # sidebar order
    assert list(pages)[0] == 'index.ipynb'
    if (NBS/DECOMPOSITION).exists(): assert list(pages)[1] == DECOMPOSITION
    for src, page in pages.items():
        if src: assert (out/page['href']).is_file()
        assert not [n for n in page['notes'] if n.startswith('image not found')], page['notes']
    failed = {s: p['error'] for s, p in pages.items() if p['error']}
    assert r.returncode == (1 if failed else 0), r.stderr
    assert DECOMPOSITION not in failed, failed[DECOMPOSITION]
    index = (out/'index.html').read_text()
    if (NBS/'index.ipynb').exists():
        assert pages['index.ipynb']['mode'] == 'executed' and not pages['index.ipynb']['error']
    for page in pages.values(): assert f'href="{page["href"]}"' in index
    assert any(p['math'] for p in pages.values())


# ---------------------------------------------------------------------------------------------------------- browser

@pytest.fixture(scope='module')
def chromium():
    exe = shutil.which('chromium') or ('/usr/bin/chromium' if Path('/usr/bin/chromium').exists() else None)
    if exe is None:
        if os.environ.get('CI', '').lower() not in ('', '0', 'false', 'no'):
            pytest.fail('chromium is not installed but CI is set: the browser checks must run (apt-get install chromium)')
        pytest.skip('chromium is not installed (apt-get install chromium) and CI is not set')
    return exe


def browse(chromium, profile, page, *args):
    "Run headless Chromium on a local page; returns stdout (the DOM for --dump-dom)."
    r = subprocess.run([chromium, *CHROMIUM_FLAGS, f'--user-data-dir={profile}', *args, page.resolve().as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


class _Dom(HTMLParser):
    "Links inside the sidebar, every <img> src, the top bar and the probe's report."
    def __init__(self):
        super().__init__()
        self.nav_depth, self.nav_links, self.imgs, self.topbar, self.probe = 0, [], [], False, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'html' and a.get('data-probe'): self.probe = json.loads(a['data-probe'])
        if tag == 'nav' and 'wsol-sidebar' in (a.get('class') or ''): self.nav_depth += 1
        elif tag == 'nav' and self.nav_depth: self.nav_depth += 1
        if tag == 'a' and self.nav_depth: self.nav_links.append(a.get('href'))
        if tag == 'img': self.imgs.append(a.get('src') or '')
        if tag == 'header' and 'wsol-topbar' in (a.get('class') or ''): self.topbar = True

    def handle_endtag(self, tag):
        if tag == 'nav' and self.nav_depth: self.nav_depth -= 1


def dom_of(chromium, tmp_path, page):
    parsed = _Dom()
    parsed.feed(browse(chromium, tmp_path/'chromium-profile', page, '--dump-dom'))
    return parsed


# Appended to a copy of a page (next to it, so relative paths resolve): once the page has loaded and MathJax has
# typeset it, report every image's naturalWidth, the math elements MathJax made, TeX left as raw text outside code,
# and MathJax fonts that failed to load.
PROBE = r"""<script>
window.addEventListener('load', function () {
  function report() {
    var raw = [], skip = /^(PRE|CODE|SCRIPT|STYLE|TEXTAREA)$/, mj = /^MathJax/;
    var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (var n = walker.nextNode(); n; n = walker.nextNode()) {
      var outside = true;
      for (var e = n.parentElement; e && outside; e = e.parentElement)
        if (skip.test(e.tagName) || mj.test(e.className || '')) outside = false;
      if (outside && /\$\$|\\\(|\\\[|\$[^$\s][^$]*\\[a-zA-Z]+[^$]*\$/.test(n.textContent)) raw.push(n.textContent.slice(0, 120));
    }
    var fonts = [];
    document.fonts.forEach(function (f) { if (/^STIX/.test(f.family) && f.status === 'error') fonts.push(f.family); });
    document.documentElement.setAttribute('data-probe', JSON.stringify({
      images: Array.prototype.map.call(document.images, function (i) {
        return [(i.getAttribute('src') || '').slice(0, 80), i.complete ? i.naturalWidth : -1]; }),
      math: document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_SVG, mjx-container').length,
      mathjax: !!(window.MathJax && window.MathJax.Hub), raw_math: raw, font_errors: fonts}));
  }
  if (window.MathJax && MathJax.Hub) MathJax.Hub.Queue(function () { document.fonts.ready.then(report); });
  else report();
});
</script>"""


def probe(chromium, tmp_path, page):
    "What a reader's browser made of `page` (see PROBE)."
    copy = page.with_name(page.stem + '.probe.html')
    copy.write_text(page.read_text(encoding='utf-8').replace('</body>', PROBE + '</body>', 1), encoding='utf-8')
    try:
        dom = browse(chromium, tmp_path/f'profile-{page.stem}', copy, '--dump-dom', '--virtual-time-budget=30000')
    finally: copy.unlink()
    parsed = _Dom()
    parsed.feed(dom)
    assert parsed.probe is not None, f'{page.name}: the probe did not report (page did not finish loading?)'
    return parsed.probe


def check_every_page(chromium, tmp_path, site):
    "Every page: every <img> loaded; pages with math: typeset by the local MathJax; no raw TeX left anywhere."
    pages = list(pages_of(site).values())
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda p: probe(chromium, tmp_path, site/p['href']), pages))
    for page, rep in zip(pages, reports):
        broken = [src for src, width in rep['images'] if width <= 0]
        assert not broken, f'{page["href"]}: images that did not load: {broken}'
        assert not rep['raw_math'], f'{page["href"]}: TeX shown as raw text: {rep["raw_math"][:3]}'
        if page['math']:
            assert rep['mathjax'] and rep['math'] > 0, f'{page["href"]}: math not typeset ({rep})'
            assert not rep['font_errors'], f'{page["href"]}: MathJax fonts failed to load: {rep["font_errors"]}'
    return dict(zip([p['href'] for p in pages], reports))


def png_images(dom):
    "Decoded PNGs of the page's data: URI images (every one must decode)."
    out = []
    for src in dom.imgs:
        if src.startswith('data:image/png;base64,'):
            raw = base64.b64decode(src.split(',', 1)[1], validate=True)
            assert raw.startswith(PNG_SIGNATURE)
            out.append(np.asarray(Image.open(io.BytesIO(raw)).convert('RGB')))
    return out


def screenshot(chromium, tmp_path, page, name):
    shot = tmp_path/name
    browse(chromium, tmp_path/'chromium-profile', page, f'--screenshot={shot}', '--window-size=1280,1400',
           '--hide-scrollbars', '--virtual-time-budget=30000')
    return np.asarray(Image.open(shot).convert('RGB')).astype(int)


def near(img, rgb, tol=12):
    return int((np.abs(img - np.array(rgb)).max(axis=-1) <= tol).sum())


def test_browser_fixture_pages(chromium, fixture_site, tmp_path):
    site = fixture_site[0]
    hrefs = ['index.html', '01_figure.html', '02_params.html']
    index = dom_of(chromium, tmp_path, site/'index.html')
    assert index.topbar and [h for h in index.nav_links if not h.startswith('#')] == hrefs
    fig = dom_of(chromium, tmp_path, site/'01_figure.html')
    assert fig.topbar and [h for h in fig.nav_links if not h.startswith('#')] == hrefs
    assert fig.nav_links[2:4] == ['#Rings', '#rings']  # under the current page: its sections
    pngs = png_images(fig)
    assert len(pngs) == 1
    h, w, _ = pngs[0].shape
    assert h > 300 and w > 300 and pngs[0].std() > 30  # a real picture at the build's dpi (3 in: ~430 px, not 216)
    reports = check_every_page(chromium, tmp_path, site)
    assert len(reports['index.html']['images']) == 1 and len(reports['01_figure.html']['images']) == 2
    assert reports['01_figure.html']['math'] >= 3  # two inline formulas and one display
    shot = screenshot(chromium, tmp_path, site/'01_figure.html', 'figure.png')
    assert shot.std() > 20 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 200
    assert near(shot, (0x24, 0x50, 0x7a)) > 20_000  # the top bar is drawn ...
    assert near(shot, (253, 231, 37), tol=30) > 300  # ... and so is the figure (viridis yellow rings)


def test_browser_real_pages(chromium, real_site, tmp_path):
    out, _ = real_site
    pages = pages_of(out)
    hrefs = [p['href'] for p in pages.values()]
    index = dom_of(chromium, tmp_path, out/'index.html')
    assert index.topbar and [h for h in index.nav_links if not h.startswith('#')] == hrefs
    reports = check_every_page(chromium, tmp_path, out)
    assert any(p['math'] and reports[p['href']]['math'] for p in pages.values())  # some page has typeset math
    shot = screenshot(chromium, tmp_path, out/'index.html', 'index.png')
    assert shot.std() > 20 and near(shot, (0x24, 0x50, 0x7a)) > 20_000
    if not (NBS/DECOMPOSITION).exists():
        pytest.skip(f'nbs/{DECOMPOSITION} does not exist yet: its page is checked once it does')
    assert not pages[DECOMPOSITION]['error'], pages[DECOMPOSITION]['error']
    assert pages[DECOMPOSITION]['math'] and reports[pages[DECOMPOSITION]['href']]['math'] > 0
    page = out/pages[DECOMPOSITION]['href']
    dom = dom_of(chromium, tmp_path, page)
    assert [h for h in dom.nav_links if not h.startswith('#')] == hrefs
    pngs = png_images(dom)
    assert pngs and all(p.std() > 10 for p in pngs)
    shot = screenshot(chromium, tmp_path, page, 'decomposition.png')
    assert shot.std() > 20 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 200

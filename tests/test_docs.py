"""The docs site: quarto config for `nbdev_docs`, and `wsol-docs` (wsol/docs.py) building pages that load, with their
figures, in headless Chromium.

Builds: (1) a small fixture folder (`wsol.docs._demo_nbs`: an index, a notebook whose figure exists only once it is
executed, a papermill notebook, files that are not pages), executed; (2) a broken notebook; (3) the real nbs/ folder
with stored outputs, executing index.ipynb and, once it exists, 08_cam_decomposition.ipynb. Browser checks skip
only when Chromium is missing and CI is not set."""
import base64
import configparser
import io
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from wsol.docs import _demo_nbs, main

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
DECOMPOSITION = '08_cam_decomposition.ipynb'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
                  '--no-first-run', '--disable-component-update', '--disable-sync']
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def settings():
    parser = configparser.ConfigParser(delimiters=['='], interpolation=None)
    parser.read(ROOT/'settings.ini', encoding='utf-8')
    return parser['DEFAULT']


def wsol_docs(*args, env=None, timeout=600):
    "Run the `wsol-docs` console script (or `wsol.docs.main` where the script is not installed) from the repo root."
    script = Path(sys.executable).parent/'wsol-docs'
    cmd = [str(script)] if script.exists() else [sys.executable, '-c', 'import sys; from wsol.docs import main; sys.exit(main())']
    return subprocess.run(cmd + [str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def pages_of(site):
    return {p['src']: p for p in json.loads((site/'.wsol-docs.json').read_text())['pages']}


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


# -------------------------------------------------------------------------------------------------------- building

@pytest.fixture(scope='module')
def fixture_site(tmp_path_factory):
    "The demo folder built with execution (MPLBACKEND=Agg in the caller's environment must not lose figures)."
    d = tmp_path_factory.mktemp('fixture')
    _demo_nbs(d/'nbs')
    (d/'params.yaml').write_text('02_params.ipynb: {n: 7}\n')
    r = wsol_docs('--nbs', d/'nbs', '--out', d/'site', '--params', d/'params.yaml', '--timeout', 300,
                  env={'MPLBACKEND': 'Agg'})
    assert r.returncode == 0, r.stdout + r.stderr
    return d/'site', r


def test_fixture_build(fixture_site):
    site, r = fixture_site
    assert sorted(p.name for p in site.iterdir()) == ['.nojekyll', '.wsol-docs.json', '01_figure.html',
                                                      '02_params.html', 'index.html']
    pages = pages_of(site)
    assert list(pages) == ['index.ipynb', '01_figure.ipynb', '02_params.ipynb']  # index first, then by name
    assert {p['mode'] for p in pages.values()} == {'executed'} and not any(p['error'] for p in pages.values())
    assert pages['01_figure.ipynb']['title'] == 'A figure'
    assert 'wsol-docs: 3 pages' in r.stdout and '3 executed' in r.stdout
    fig = (site/'01_figure.html').read_text()
    assert 'HIDDEN_MARKER' not in fig and 'default_exp' not in fig and '#|' not in fig  # hide cells and directives
    assert 'Exported source' in fig and 'Concentric rings' in fig  # export cell shown, with its docstring ...
    assert '<h3 id="rings">' in fig  # ... and its show_doc
    assert 'n is 7' in (site/'02_params.html').read_text()  # the papermill notebook ran with --params
    assert 'hello from the index' in (site/'index.html').read_text()


def test_no_execute_and_rebuild(fixture_site, tmp_path):
    "--no-execute shows stored outputs only; a rebuild replaces the whole folder (no stale pages)."
    src = fixture_site[0].parent/'nbs'
    out = tmp_path/'site'
    out.mkdir()
    (out/'.wsol-docs.json').write_text('{}')  # a previous build ...
    (out/'stale.html').write_text('old')  # ... with a page whose notebook is gone
    r = wsol_docs('--nbs', src, '--out', out, '--no-execute')
    assert r.returncode == 0, r.stderr
    assert not (out/'stale.html').exists()
    assert {p['mode'] for p in pages_of(out).values()} == {'stored'}
    assert '<img ' not in (out/'01_figure.html').read_text()  # saved unexecuted: no figure
    assert 'n is 2' in (out/'02_params.html').read_text()  # stored output of the papermill notebook
    # without execution show_doc comes from the exported module; the demo's (wsol.figure) does not exist: noted, left out
    assert '<h3 id="rings">' not in (out/'01_figure.html').read_text()
    assert any(n.startswith('cannot import wsol.figure') for n in pages_of(out)['01_figure.ipynb']['notes'])
    assert not [p for p in tmp_path.iterdir() if p.name != 'site']  # no temporary folders left behind


def test_failing_notebook(tmp_path):
    "A failing notebook: exit status 1, the cell named, its page written with the traceback and a banner."
    nbs = tmp_path/'nbs'
    _demo_nbs(nbs)
    nb = json.loads((nbs/'01_figure.ipynb').read_text())
    nb['cells'].append({'cell_type': 'code', 'execution_count': None, 'id': 'boom', 'metadata': {}, 'outputs': [],
                        'source': 'raise ValueError("boom in the docs build")'})
    (nbs/'01_figure.ipynb').write_text(json.dumps(nb))
    r = wsol_docs('--nbs', nbs, '--out', tmp_path/'site', '--execute', '01_*')
    assert r.returncode == 1
    assert '01_figure.ipynb: cell 9 (`raise ValueError("boom in the docs build")`) raised ValueError' in r.stderr
    page = (tmp_path/'site/01_figure.html').read_text()
    assert 'class="wsol-error"' in page and 'boom in the docs build' in page
    modes = {k: v['mode'] for k, v in pages_of(tmp_path/'site').items()}
    assert modes == {'index.ipynb': 'stored', '01_figure.ipynb': 'executed', '02_params.ipynb': 'stored'}


def test_bad_usage(tmp_path, capsys):
    "Usage errors: exit status 2, a message naming the option; nothing is touched."
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
    return d/'site', wsol_docs(*args)


def test_real_nbs(real_site):
    out, r = real_site
    notebooks = sorted(p.relative_to(NBS).as_posix() for p in NBS.rglob('*.ipynb')
                       if not any(part.startswith(('_', '.')) for part in p.relative_to(NBS).parts))
    pages = pages_of(out)
    assert sorted(s for s in pages if s) == notebooks
    for src, page in pages.items():
        if src: assert (out/page['href']).is_file()
    failed = {s: p['error'] for s, p in pages.items() if p['error']}
    assert r.returncode == (1 if failed else 0), r.stderr
    assert DECOMPOSITION not in failed, failed[DECOMPOSITION]
    index = (out/'index.html').read_text()
    if (NBS/'index.ipynb').exists():
        assert pages['index.ipynb']['mode'] == 'executed' and not pages['index.ipynb']['error']
    for page in pages.values(): assert f'href="{page["href"]}"' in index


# ---------------------------------------------------------------------------------------------------------- browser

@pytest.fixture(scope='module')
def chromium():
    exe = shutil.which('chromium') or ('/usr/bin/chromium' if Path('/usr/bin/chromium').exists() else None)
    if exe is None:
        if os.environ.get('CI', '').lower() not in ('', '0', 'false', 'no'):
            pytest.fail('chromium is not installed but CI is set: the browser checks must run (apt-get install chromium)')
        pytest.skip('chromium is not installed (apt-get install chromium) and CI is not set')
    return exe


def browse(chromium, tmp_path, page, *args):
    "Run headless Chromium on a local page; returns stdout (the DOM for --dump-dom)."
    r = subprocess.run([chromium, *CHROMIUM_FLAGS, f'--user-data-dir={tmp_path/"chromium-profile"}', *args,
                        page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


class _Dom(HTMLParser):
    "Links inside the sidebar, and every <img> src."
    def __init__(self):
        super().__init__()
        self.nav_depth, self.nav_links, self.imgs, self.topbar = 0, [], [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'nav' and 'wsol-sidebar' in (a.get('class') or ''): self.nav_depth += 1
        elif tag == 'nav' and self.nav_depth: self.nav_depth += 1
        if tag == 'a' and self.nav_depth: self.nav_links.append(a.get('href'))
        if tag == 'img': self.imgs.append(a.get('src') or '')
        if tag == 'header' and 'wsol-topbar' in (a.get('class') or ''): self.topbar = True

    def handle_endtag(self, tag):
        if tag == 'nav' and self.nav_depth: self.nav_depth -= 1


def dom_of(chromium, tmp_path, page):
    dom = browse(chromium, tmp_path, page, '--dump-dom')
    parsed = _Dom()
    parsed.feed(dom)
    return parsed


def png_images(dom):
    "Decoded PNGs of the page's data: URI images (every one must decode)."
    out = []
    for src in dom.imgs:
        assert src.startswith('data:image/'), f'image not embedded: {src[:80]}'
        if src.startswith('data:image/png;base64,'):
            raw = base64.b64decode(src.split(',', 1)[1], validate=True)
            assert raw.startswith(PNG_SIGNATURE)
            out.append(np.asarray(Image.open(io.BytesIO(raw)).convert('RGB')))
    return out


def screenshot(chromium, tmp_path, page, name):
    shot = tmp_path/name
    browse(chromium, tmp_path, page, f'--screenshot={shot}', '--window-size=1280,1400', '--hide-scrollbars')
    return np.asarray(Image.open(shot).convert('RGB')).astype(int)


def near(img, rgb, tol=12):
    return int((np.abs(img - np.array(rgb)).max(axis=-1) <= tol).sum())


def test_browser_fixture_pages(chromium, fixture_site, tmp_path):
    site = fixture_site[0]
    hrefs = ['index.html', '01_figure.html', '02_params.html']
    index = dom_of(chromium, tmp_path, site/'index.html')
    assert index.topbar and index.nav_links == hrefs
    fig = dom_of(chromium, tmp_path, site/'01_figure.html')
    assert fig.topbar and [h for h in fig.nav_links if not h.startswith('#')] == hrefs
    assert fig.nav_links[2:4] == ['#Rings', '#rings']  # under the current page: its sections
    pngs = png_images(fig)
    assert len(pngs) == 1
    h, w, _ = pngs[0].shape
    assert h > 100 and w > 100 and pngs[0].std() > 30  # a real picture, not a blank
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
    shot = screenshot(chromium, tmp_path, out/'index.html', 'index.png')
    assert shot.std() > 20 and near(shot, (0x24, 0x50, 0x7a)) > 20_000
    if not (NBS/DECOMPOSITION).exists():
        pytest.skip(f'nbs/{DECOMPOSITION} does not exist yet: its page is checked once it does')
    assert not pages[DECOMPOSITION]['error'], pages[DECOMPOSITION]['error']
    page = out/pages[DECOMPOSITION]['href']
    dom = dom_of(chromium, tmp_path, page)
    assert [h for h in dom.nav_links if not h.startswith('#')] == hrefs
    pngs = png_images(dom)
    assert pngs and all(p.std() > 10 for p in pngs)
    shot = screenshot(chromium, tmp_path, page, 'decomposition.png')
    assert shot.std() > 20 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 200

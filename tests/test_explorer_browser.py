"""The CAM explorer (`wsol.explorer`) in a real browser: JupyterLab headless on localhost (a free port, a token), a
notebook opening the explorer on a small run made here, Debian's headless Chromium driven by selenium through Debian's
chromedriver. The test runs the notebook's cell, moves the threshold slider with the keyboard, clicks "next image", and
checks after each step that the info text shows the IoU the explorer's functions compute for that image and threshold
(here, in the test's own process) and that the panel image changed to the one expected. A screenshot is kept as
`outputs/test_artifacts/explorer.png` (and in the pytest tmp dir). JupyterLab, its kernels and the browser are shut
down whatever happens. The browser part skips only when something it needs is missing and CI is not set."""
import base64
import io
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import nbformat
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT/'outputs'/'test_artifacts'/'explorer.png'
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
CHROMEDRIVER = shutil.which('chromedriver') or '/usr/bin/chromedriver'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--window-size=1400,1300']
START_THRESHOLD, STEPS = 0.3, 3  # the explorer opens at this threshold; the test presses the right arrow STEPS times


def missing() -> list:
    "What the browser test needs and this machine lacks."
    out = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    for module in ('selenium', 'jupyterlab', 'ipywidgets', 'jupyterlab_widgets'):
        try: __import__(module)
        except ImportError: out.append(f'python package {module}')
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def tiny_run(folder: Path) -> Path:
    "A bridging-gap run of three steps on a small SYNTH (8 training, 3 test images per class): seconds."
    from wsol.config import make_config
    from wsol.train import train
    small = dict(train_per_class=8, val_per_class=2, test_per_class=3, proxy_per_class=0)
    cfg = make_config('SYNTH', data_root=str(folder/'data'), metadata_root=str(folder/'metadata'), synth=small, workers=0,
                      device='cpu', cam_curve_interval=0.05, pretrained=False, epochs=1, warm_epochs=0,
                      max_steps_per_epoch=3, batch_size=16, warm_batch_size=16, arch_kwargs={'width': 8},
                      output_dir=str(folder/'run'))
    train(cfg, progress=False)
    return folder/'run'


def write_notebook(path: Path, run: Path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"from wsol.explorer import explore\nexplorer = explore({str(run)!r}, 'test', threshold={START_THRESHOLD})\nexplorer")],
        metadata={'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}})
    nbformat.write(nb, path)


def our_processes(marker: str) -> list:
    "Ids of the processes whose command line contains `marker` (the kernels of our server name its runtime folder)."
    pids = []
    for p in Path('/proc').iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid(): continue
        try: cmd = (p/'cmdline').read_bytes().replace(b'\0', b' ').decode(errors='replace')
        except OSError: continue
        if marker in cmd: pids.append(int(p.name))
    return pids


def _kill(pids, sig):
    for pid in pids:
        try: os.kill(pid, sig)
        except ProcessLookupError: pass


@contextmanager
def jupyter_lab(folder: Path):
    "JupyterLab serving `folder` on 127.0.0.1 (free port, random token); yields (base url, token); always shut down."
    port, token = free_port(), secrets.token_hex(16)
    runtime = folder/'.runtime'
    env = {**os.environ, 'JUPYTER_CONFIG_DIR': str(folder/'.config'), 'JUPYTER_RUNTIME_DIR': str(runtime),
           'PATH': f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", 'PYTHONUNBUFFERED': '1'}
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
           '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={folder}',
           f'--LabApp.workspaces_dir={folder/".workspaces"}', '--LabApp.news_url=',
           '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate', '--LabApp.extension_manager=readonly']
    if hasattr(os, 'geteuid') and os.geteuid() == 0: cmd.append('--allow-root')  # CI containers run as root
    labconfig = folder/'.config'/'labconfig'
    labconfig.mkdir(parents=True, exist_ok=True)  # no "get Jupyter news?" prompt over the explorer
    (labconfig/'page_config.json').write_text('{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    log = open(folder/'jupyterlab.log', 'w')
    server = subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.time() + 90
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {server.returncode}:\n{(folder/'jupyterlab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=2) as r:
                    if r.status == 200: break
            except OSError: pass
            if time.time() > deadline: raise RuntimeError(f"JupyterLab did not answer on {url} within 90 s")
            time.sleep(0.3)
        yield url, token
    finally:
        try:  # a clean shutdown stops the kernels too
            urllib.request.urlopen(urllib.request.Request(f'{url}/api/shutdown', method='POST',
                                                          headers={'Authorization': f'token {token}'}), timeout=5).close()
            server.wait(timeout=20)
        except Exception:
            pass
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try: server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL); server.wait(timeout=10)
        leftovers = our_processes(str(runtime))  # kernels run in sessions of their own
        _kill(leftovers, signal.SIGTERM)
        if leftovers:
            time.sleep(2)
            _kill(our_processes(str(runtime)), signal.SIGKILL)
        log.close()


@contextmanager
def chromium(folder: Path):
    "Headless Chromium through Debian's chromedriver, with a new empty profile; always quit."
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f'--user-data-dir={folder/"profile"}']: options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(folder/'chromedriver.log')), options=options)
    try: yield driver
    finally: driver.quit()


def wait_for(what, condition, timeout: float = 60, every: float = 0.2):
    "condition() until it returns something truthy; a clear error after `timeout` seconds."
    deadline = time.time() + timeout
    while True:
        try:
            value = condition()
            if value: return value
        except Exception:  # elements come and go while JupyterLab renders
            pass
        if time.time() > deadline: raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def panel_image(driver) -> bytes:
    "The bytes of the explorer's panel image as the browser has them (its blob: URL fetched in the page)."
    data = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const img = document.querySelector('img.wsol-panels');
        fetch(img.src).then(r => r.arrayBuffer()).then(b => {
            let s = ''; const u = new Uint8Array(b);
            for (let i = 0; i < u.length; i++) s += String.fromCharCode(u[i]);
            done(btoa(s));
        }).catch(e => done('error: ' + e));""")
    assert not data.startswith('error'), data
    return base64.b64decode(data)


def decode(data: bytes) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(data)).convert('RGB')).astype(int)


def info_text(driver) -> str:
    return driver.find_element('css selector', '.wsol-info').text


def expected(view, index: int, threshold: float):
    "(IoU text, decoded panel image) the explorer should show for dataset image `index` at `threshold`, computed here."
    from wsol.explorer import jpeg_bytes, render_panels
    from wsol.explorer_state import boxes_at, image_state, snap
    ex = view
    t = snap(ex.thresholds, threshold)
    st = image_state(ex, index)
    panels = render_panels(st, t, ex.cfg.multi_contour_eval, 192, ex.name, ex.class_names)
    return f"IoU at {t:.3f}: {boxes_at(st, t, ex.cfg.multi_contour_eval)[1]:.3f}", decode(jpeg_bytes(panels))


def test_explorer_in_jupyterlab(tmp_path):
    lacking = missing()
    if lacking:
        if os.environ.get('CI'): pytest.fail(f"the explorer browser test needs: {', '.join(lacking)}")
        pytest.skip(f"needs {', '.join(lacking)}")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    from wsol.explorer_state import open_run
    run = tiny_run(tmp_path)
    write_notebook(tmp_path/'explorer.ipynb', run)
    ex = open_run(run, 'test')
    grid = [float(t) for t in ex.thresholds]
    j0 = int(np.argmin(np.abs(np.array(grid) - START_THRESHOLD)))
    shot = tmp_path/'explorer.png'
    with jupyter_lab(tmp_path) as (url, token), chromium(tmp_path) as driver:
        try:
            driver.set_script_timeout(30)
            driver.get(f'{url}/lab/tree/explorer.ipynb?reset&token={token}')
            wait_for('the notebook cell', lambda: driver.find_element('css selector', '.jp-Notebook .jp-Cell .cm-content'), 120)
            wait_for('the kernel to be idle', lambda: 'Idle' in driver.find_element('css selector', '#jp-main-statusbar').text, 120)
            wait_for('a click into the cell', lambda: driver.find_element('css selector', '.jp-Notebook .jp-Cell .cm-content').click() or True, 30)
            ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
            wait_for('the explorer', lambda: 'IoU at' in info_text(driver), 180)

            # 1. the view opened at START_THRESHOLD on the first image of the split
            text0, img0 = info_text(driver), panel_image(driver)
            iou0, want0 = expected(ex, 0, grid[j0])
            assert iou0 in text0, (iou0, text0)
            assert ex.dataset.image_ids[0] in text0
            assert decode(img0).shape == want0.shape
            assert np.abs(decode(img0) - want0).mean() < 1.0

            # 2. the threshold slider, moved with the keyboard: STEPS grid values up
            handle = driver.find_element('css selector', '.wsol-threshold .noUi-handle')
            ActionChains(driver).move_to_element(handle).click().perform()
            for _ in range(STEPS): handle.send_keys(Keys.ARROW_RIGHT); time.sleep(0.1)
            t1 = grid[j0 + STEPS]
            wait_for(f'the info at threshold {t1:.3f}', lambda: f'IoU at {t1:.3f}' in info_text(driver), 30)
            text1 = wait_for('the panels to follow', lambda: info_text(driver) if panel_image(driver) != img0 else None, 30)
            img1 = panel_image(driver)
            iou1, want1 = expected(ex, 0, t1)
            assert iou1 in text1, (iou1, text1)
            assert np.abs(decode(img1) - want1).mean() < 1.0
            assert np.abs(decode(img1) - decode(img0)).mean() > np.abs(decode(img1) - want1).mean()

            # 3. the next image (button), at the same threshold
            driver.find_element('css selector', '.wsol-next').click()
            wait_for('the second image', lambda: ex.dataset.image_ids[1] in info_text(driver), 60)
            text2 = wait_for('the panels to follow', lambda: info_text(driver) if panel_image(driver) != img1 else None, 30)
            iou2, want2 = expected(ex, 1, t1)
            assert iou2 in text2, (iou2, text2)
            img2 = panel_image(driver)
            assert np.abs(decode(img2) - want2).mean() < 1.0
            assert re.search(r'image 2 of \d+', text2), text2
        finally:
            try:
                driver.execute_script("const e = document.querySelector('.wsol-explorer'); if (e) e.scrollIntoView();")
                driver.save_screenshot(str(shot))
            except Exception:
                pass
    assert shot.is_file() and shot.stat().st_size > 10_000
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACT)

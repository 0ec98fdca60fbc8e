"""Smoke test of benchmarks/synth_benchmark.py at tiny sizes (tiny SYNTH, tiny pretraining, 2 short epochs).
It checks the plumbing and the report (the all-methods table, the plot, the merge of runs made in pieces), not
which method wins (that is the benchmark's job)."""
import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT/'benchmarks'/'synth_benchmark.py'
METHODS = ['cam', 'bridging-gap', 'acol']  # two methods with a linear fc (decomposed) and one without
SEEDS = ['0', '1']

spec = importlib.util.spec_from_file_location('synth_benchmark', SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def run_script(base, *extra, out='out'):
    cmd = [sys.executable, str(SCRIPT), '--smoke', '--seeds', *SEEDS, '--data_root', str(base/'data'),
           '--metadata_root', str(base/'metadata'), '--runs_dir', str(base/'runs'), '--out', str(base/out), *extra]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def args_for(base, *extra):
    return bench.parse_args(['--smoke', '--seeds', *SEEDS, '--data_root', str(base/'data'), '--metadata_root',
                             str(base/'metadata'), '--runs_dir', str(base/'runs'), *extra])


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    base = tmp_path_factory.mktemp('synth_benchmark')
    stdout = run_script(base, '--methods', *METHODS)
    return base, base/'out', stdout


@pytest.fixture(scope='module')
def merged(smoke):
    "A second piece: acol again with --reuse (nothing trained), cam and bridging-gap merged from the first."
    base, _, _ = smoke
    stamps = {p: p.stat().st_mtime_ns for p in (base/'runs').glob('*/benchmark_run.json')}
    stdout = run_script(base, '--methods', 'acol', '--reuse', out='out2')
    return base, base/'out2', stdout, stamps


def test_report_files(smoke):
    base, out, stdout = smoke
    md = (out/'results_synth.md').read_text()
    assert md in stdout  # the tables are printed too
    for needle in ('## All methods', '| cam | 0 |', '| bridging-gap | 1 |', '| acol | 1 |', 'Gap (bridging-gap - CAM)',
                   'Oracle sanity check', 'CAM peak in head box', '![test MaxBoxAccV2 per method](methods_synth.png)',
                   'Not decomposed (no GAP + linear `fc`', 'acol (ACoLNet', '**Smoke sizes**'):
        assert needle in md, needle
    for m in ('has', 'spg', 'adl', 'cutmix'):  # not asked for: named as absent
        assert f"{m} (not in --methods" in md
    png = out/'fig1_synth.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size < 300_000
    assert not list(out.glob('.*tmp*'))  # atomic writes leave no temporary files


def test_results_json(smoke):
    base, out, _ = smoke
    s = json.loads((out/'results_synth.json').read_text())
    assert [(r['method'], r['seed']) for r in s['runs']] == [(m, int(k)) for m in METHODS for k in SEEDS]
    for r in s['runs']:
        for ck in ('best', 'last'):
            assert 0 <= r[ck]['maxboxacc_v2'] <= 100
            assert abs(r[ck]['maxboxacc_v2'] - (r[ck]['iou30'] + r[ck]['iou50'] + r[ck]['iou70']) / 3) < 1e-6
        if r['method'] == 'acol':
            assert r['analysis'] is None  # no linear fc: no CAM decomposition
        else:
            for ck in ('best', 'last'):
                a = r['analysis'][ck]
                assert 0 <= a['peak_in_head'] <= 100 and a['head_body_ratio'] > 0 and -1 <= a['cos_body'] <= 1
                assert 0 <= a['object_mass'] <= 100
        assert 1 <= r['best_epoch'] <= 2
        assert r['seconds'] > 0
        # each run went through wsol.train.train into its own output_dir with the smoke pretrained weights
        cfg = (Path(r['output_dir'])/'config.yaml').read_text()
        assert 'synth_tinyresnet_' in cfg and f"seed: {r['seed']}" in cfg and f"method: {r['method']}" in cfg
        record = json.loads((Path(r['output_dir'])/'benchmark_run.json').read_text())
        assert record['config']['method'] == r['method'] and record['config']['seed'] == r['seed']
    assert abs(s['gap']['best'] - (s['methods']['bridging-gap']['best']['mean'] - s['methods']['cam']['best']['mean'])) < 1e-9
    assert list(s['all_methods']['not_analysed']) == ['acol']
    # the oracle (ground truth blurred to the 16 x 16 feature map) is localised almost perfectly
    assert s['oracle']['feature_size'] == 16 and s['oracle']['maxboxacc']['70'] >= 90
    assert s['pretraining']['file'].startswith('synth_tinyresnet_')
    # the machine and libraries the runs were made with (CPU results are bit-equal only within one)
    import cv2
    import torch
    env = s['environments']
    assert len(env) == 1 and env[0]['torch'] == torch.__version__ and env[0]['opencv'] == cv2.__version__
    assert f"torch {torch.__version__}" in (out/'results_synth.md').read_text()


def test_all_methods_table(smoke):
    "The table's numbers are the mean / sample std over seeds of the runs, the comparison with CAM is recomputed."
    base, out, _ = smoke
    s = json.loads((out/'results_synth.json').read_text())
    a = s['all_methods']
    assert a['methods'] == METHODS and a['seeds'] == [0, 1] and a['smoke'] is True
    rows = {r['method']: r for r in a['rows']}
    assert list(rows) == METHODS
    md = (out/'results_synth.md').read_text()
    cam = {ck: [r[ck]['maxboxacc_v2'] for r in s['runs'] if r['method'] == 'cam'] for ck in ('best', 'last')}
    not_beating = []
    for m in METHODS:
        runs = [r for r in s['runs'] if r['method'] == m]
        row = rows[m]
        assert row['seeds'] == 2
        for ck in ('best', 'last'):
            v = [r[ck]['maxboxacc_v2'] for r in runs]
            assert row[f'maxboxacc_v2_{ck}_mean'] == pytest.approx(np.mean(v))
            assert row[f'maxboxacc_v2_{ck}_std'] == pytest.approx(np.std(v, ddof=1))
            assert row[f'top1_cls_{ck}_mean'] == pytest.approx(np.mean([r[ck]['top1_cls'] for r in runs]))
            if m == 'cam':
                assert row[f'vs_cam_{ck}'] is None
                continue
            delta = np.mean(v) - np.mean(cam[ck])
            se = math.sqrt(np.var(v, ddof=1) / 2 + np.var(cam[ck], ddof=1) / 2)
            assert row[f'vs_cam_{ck}']['delta'] == pytest.approx(delta) and row[f'vs_cam_{ck}']['se'] == pytest.approx(se)
            beats = delta > 2 * se and delta > 0
            assert (row[f'vs_cam_{ck}']['verdict'] == 'beats CAM') == beats
            if ck == 'best' and not beats: not_beating.append(m)
        for k in ('iou30', 'iou50', 'iou70'):
            assert row[f'{k}_best'] == pytest.approx(np.mean([r['best'][k] for r in runs]))
        assert row['train_seconds_mean'] == pytest.approx(np.mean([r['seconds'] for r in runs]))
        b = row['maxboxacc_v2_best_mean'], row['maxboxacc_v2_best_std']
        assert f"| {m} | 2 | {b[0]:.1f} ± {b[1]:.1f} (" in md
    line = next(l for l in md.splitlines() if l.startswith('- val-selected checkpoints'))
    listed = line.split('do not beat CAM on SYNTH: ')[1]
    assert [m for m in ('bridging-gap', 'acol') if f"{m} (" in listed] == not_beating
    if not not_beating: assert listed == 'none.'


def test_methods_plot(smoke):
    "methods_synth.png: a 100-dpi PNG; the bars are the means and the error bars mean +- std over seeds."
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    base, out, _ = smoke
    png = out/'methods_synth.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    with Image.open(png) as im:
        assert round(im.info['dpi'][0]) == 100 and 400 <= im.size[0] <= 1200
    s = json.loads((out/'results_synth.json').read_text())
    fig = bench.methods_plot(s)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == METHODS
    bars = [p for p in ax.patches if p.get_width() > 0]  # seaborn adds empty rectangles for the legend
    assert len(bars) == 2 * len(METHODS)
    # one error bar per bar: a line (whisker and caps, NaN-separated) centred on the bar
    errorbars = [l for l in ax.lines if len(l.get_xdata()) > 2]
    assert len(errorbars) == len(bars)
    seen = set()
    for bar in bars:
        cx = bar.get_x() + bar.get_width() / 2
        i = int(round(cx))
        m, ck = METHODS[i], 'best' if cx < i else 'last'
        seen.add((m, ck))
        v = [r[ck]['maxboxacc_v2'] for r in s['runs'] if r['method'] == m]
        assert bar.get_height() == pytest.approx(np.mean(v))
        err = [l for l in errorbars if abs(np.nanmedian(np.asarray(l.get_xdata(), float)) - cx) < 1e-6]
        assert len(err) == 1, (m, ck)
        y = np.asarray(err[0].get_ydata(), float)
        lo, hi = np.nanmin(y), np.nanmax(y)
        assert (lo, hi) == pytest.approx((np.mean(v) - np.std(v, ddof=1), np.mean(v) + np.std(v, ddof=1)))
    assert seen == {(m, ck) for m in METHODS for ck in ('best', 'last')}
    plt.close(fig)


def test_reuse_and_merge(merged, smoke):
    "A second piece trains nothing: acol's runs are reused, cam's and bridging-gap's merged; same numbers."
    base, out2, stdout, stamps = merged
    for m in ('acol',):
        for k in SEEDS: assert f"{m:12s} seed {k}: reused" in stdout
    for m in ('cam', 'bridging-gap'): assert f"{m:12s} merged" in stdout
    assert {p: p.stat().st_mtime_ns for p in (base/'runs').glob('*/benchmark_run.json')} == stamps  # nothing rerun
    first = json.loads((smoke[1]/'results_synth.json').read_text())
    second = json.loads((out2/'results_synth.json').read_text())
    assert second['runs'] == first['runs'] and second['methods'] == first['methods']
    assert second['all_methods']['rows'] == first['all_methods']['rows']
    md = (out2/'results_synth.md').read_text()
    assert '--methods acol --seeds 0 1 --reuse' in md and 'has (not run yet)' in md
    assert (out2/'methods_synth.png').is_file() and (out2/'fig1_synth.png').is_file()


def test_finished_run_checks_the_config(smoke, tmp_path):
    "--reuse takes a run only with the same config and its checkpoints; otherwise it says why."
    base, _, _ = smoke
    args = args_for(base)
    record, why = bench.finished_run(args, 'acol', 0)
    assert why is None and record['method'] == 'acol' and record['seed'] == 0
    assert bench.finished_run(args, 'spg', 0) == (None, 'not run yet')
    runs = tmp_path/'runs'
    shutil.copytree(base/'runs'/'acol_seed0', runs/'acol_seed0')
    args2 = args_for(base, '--runs_dir', str(runs))
    assert bench.finished_run(args2, 'acol', 0)[1] is None  # output_dir's spelling does not matter
    f = runs/'acol_seed0'/'benchmark_run.json'
    saved = json.loads(f.read_text())
    f.write_text(json.dumps(dict(saved, config=dict(saved['config'], lr=0.5))))
    record, why = bench.finished_run(args2, 'acol', 0)
    assert record is None and 'config differs in lr' in why
    f.write_text(json.dumps({k: v for k, v in saved.items() if k != 'config'}))
    assert 'records no config' in bench.finished_run(args2, 'acol', 0)[1]
    f.write_text(json.dumps(saved))
    (runs/'acol_seed0'/'checkpoints'/'best.pt').unlink()
    assert 'best.pt' in bench.finished_run(args2, 'acol', 0)[1]


def test_bad_arguments():
    proc = subprocess.run([sys.executable, str(SCRIPT), '--jobs', '0'], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and '--jobs' in proc.stderr
    proc = subprocess.run([sys.executable, str(SCRIPT), '--methods', 'gradcam'], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "--methods: invalid choice: 'gradcam'" in proc.stderr
    proc = subprocess.run([sys.executable, str(SCRIPT), '--seeds', '1', '1'], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and '--seeds' in proc.stderr


def test_efficientnet_lite0_smoke(tmp_path):
    "--architecture efficientnet_lite0: its SYNTH preset from the real ImageNet weights, its own files and runs_dir."
    stdout = run_script(tmp_path, '--architecture', 'efficientnet_lite0', '--methods', 'cam', '--seeds', '0')
    out = tmp_path/'out'
    assert sorted(p.name for p in out.iterdir()) == ['methods_synth_efficientnet_lite0.png', 'results_synth_efficientnet_lite0.json',
                                                     'results_synth_efficientnet_lite0.md']
    md = (out/'results_synth_efficientnet_lite0.md').read_text()
    assert md in stdout and md.startswith('# SYNTH benchmark: every method on efficientnet_lite0')
    assert '--architecture efficientnet_lite0 --methods cam --seeds 0' in md
    assert 'real ImageNet weights of efficientnet_lite0' in md and 'efficientnet-lite0-57934424.pth' in md
    s = json.loads((out/'results_synth_efficientnet_lite0.json').read_text())
    assert s['all_methods']['architecture'] == 'efficientnet_lite0' and [r['method'] for r in s['runs']] == ['cam']
    assert s['oracle']['feature_size'] == 8  # 128 px at output stride 16
    cfg = (Path(s['runs'][0]['output_dir'])/'config.yaml').read_text()
    assert 'architecture: efficientnet_lite0' in cfg and 'pretrained: true' in cfg
    assert s['runs'][0]['analysis']['last']['peak_in_head'] >= 0  # a linear fc: decomposed


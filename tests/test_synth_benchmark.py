"""Smoke test of benchmarks/synth_benchmark.py at tiny sizes (tiny SYNTH, tiny pretraining, 2 short epochs).
It checks the plumbing and the report, not the CAM vs bridging-gap gap (that is the benchmark's job)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT/'benchmarks'/'synth_benchmark.py'


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    base = tmp_path_factory.mktemp('synth_benchmark')
    out = base/'out'
    cmd = [sys.executable, str(SCRIPT), '--smoke', '--seeds', '0', '1', '--data_root', str(base/'data'),
           '--metadata_root', str(base/'metadata'), '--runs_dir', str(base/'runs'), '--out', str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return base, out, proc.stdout


def test_report_files(smoke):
    base, out, stdout = smoke
    md = (out/'results_synth.md').read_text()
    assert md in stdout  # the table is printed too
    for needle in ('| cam | 0 |', '| bridging-gap | 1 |', 'Gap (bridging-gap - CAM)', 'Oracle sanity check', 'CAM peak in head box'):
        assert needle in md, needle
    png = out/'fig1_synth.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size < 300_000
    assert not list(out.glob('.*tmp*'))  # atomic writes leave no temporary files


def test_results_json(smoke):
    base, out, _ = smoke
    s = json.loads((out/'results_synth.json').read_text())
    assert [(r['method'], r['seed']) for r in s['runs']] == [('cam', 0), ('bridging-gap', 0), ('cam', 1), ('bridging-gap', 1)]
    for r in s['runs']:
        for ck in ('best', 'last'):
            assert 0 <= r[ck]['maxboxacc_v2'] <= 100
            assert abs(r[ck]['maxboxacc_v2'] - (r[ck]['iou30'] + r[ck]['iou50'] + r[ck]['iou70']) / 3) < 1e-6
        for ck in ('best', 'last'):
            a = r['analysis'][ck]
            assert 0 <= a['peak_in_head'] <= 100 and a['head_body_ratio'] > 0 and -1 <= a['cos_body'] <= 1
            assert 0 <= a['object_mass'] <= 100
        assert 1 <= r['best_epoch'] <= 2
        assert r['seconds'] > 0
        # each run went through wsol.train.train into its own output_dir with the smoke pretrained weights
        cfg = (Path(r['output_dir'])/'config.yaml').read_text()
        assert 'synth_tinyresnet_' in cfg and f"seed: {r['seed']}" in cfg
    for m in ('cam', 'bridging-gap'):
        v = [r['best']['maxboxacc_v2'] for r in s['runs'] if r['method'] == m]
        assert abs(s['methods'][m]['best']['mean'] - sum(v) / len(v)) < 1e-6
    assert abs(s['gap']['best'] - (s['methods']['bridging-gap']['best']['mean'] - s['methods']['cam']['best']['mean'])) < 1e-9
    # the oracle (ground truth blurred to the 16 x 16 feature map) is localised almost perfectly
    assert s['oracle']['feature_size'] == 16 and s['oracle']['maxboxacc']['70'] >= 90
    assert s['pretraining']['file'].startswith('synth_tinyresnet_')


def test_bad_arguments():
    proc = subprocess.run([sys.executable, str(SCRIPT), '--jobs', '0'], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and '--jobs' in proc.stderr

"""DDP: `torchrun --standalone --nproc_per_node 2 -m wsol.train` with gloo on the CPU. Training finishes, only rank 0
writes into output_dir (every process records its file writes with a Python audit hook), and the sharded evaluation
counts every val/test image exactly once (and agrees with a single-process evaluation of the same checkpoint)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Imported at start-up by every Python process that has this folder on PYTHONPATH: under torchrun (RANK set), log
# every write-like file operation below WSOL_AUDIT_WATCH to <WSOL_AUDIT_LOG>.rank<RANK>.
SITECUSTOMIZE = r'''
import os, sys
_watch, _log, _rank = os.environ.get('WSOL_AUDIT_WATCH'), os.environ.get('WSOL_AUDIT_LOG'), os.environ.get('RANK')
if _watch and _log and _rank is not None:
    _out = open(f'{_log}.rank{_rank}', 'a', buffering=1)
    _writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    def _hook(event, args):
        if event == 'open':
            path, mode, flags = args[0], args[1], args[2]
            if not ((isinstance(mode, str) and any(c in mode for c in 'wax+')) or (isinstance(flags, int) and flags & _writing)):
                return
            paths = [path]
        elif event in ('os.rename', 'os.link', 'os.symlink'): paths = [args[0], args[1]]
        elif event in ('os.remove', 'os.rmdir', 'os.mkdir', 'os.truncate', 'shutil.rmtree', 'os.chmod'): paths = [args[0]]
        else: return
        for p in paths:
            if isinstance(p, (str, bytes, os.PathLike)) and os.path.abspath(os.fsdecode(p)).startswith(_watch):
                _out.write(f'{event} {os.fsdecode(p)}\n')
    sys.addaudithook(_hook)
'''


def torchrun() -> list:
    exe = Path(sys.executable).parent/'torchrun'
    return [str(exe)] if exe.exists() else [sys.executable, '-m', 'torch.distributed.run']


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    from wsol.synth import ensure_synth
    base = tmp_path_factory.mktemp('ddp_data')
    ensure_synth(base/'data', base/'metadata')
    return {'data_root': str(base/'data'), 'metadata_root': str(base/'metadata')}


def test_ddp_two_cpu_processes(roots, tmp_path):
    from wsol.metadata import load_metadata
    from wsol.evaluation import evaluate_checkpoint
    hook = tmp_path/'hook'
    hook.mkdir()
    (hook/'sitecustomize.py').write_text(SITECUSTOMIZE)
    out = (tmp_path/'ddp').resolve()
    log = tmp_path/'writes'
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(hook), os.environ.get('PYTHONPATH', '')]),
           'WSOL_AUDIT_WATCH': str(out), 'WSOL_AUDIT_LOG': str(log), 'OMP_NUM_THREADS': '1'}
    cmd = torchrun() + ['--standalone', '--nproc_per_node', '2', '-m', 'wsol.train',
                        '--config', str(ROOT/'configs'/'synth_tinyresnet.yaml'), *sum([[f'--{k}', v] for k, v in roots.items()], []),
                        '--epochs', '2', '--warm_epochs', '1', '--max_steps_per_epoch', '2', '--cam_curve_interval', '0.05',
                        '--device', 'cpu', '--workers', '0', '--pretrained', 'false', '--output_dir', str(out)]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert 'x 2 processes' in r.stdout and r.stdout.count('epoch 2/2') == 1  # one log, from rank 0

    # only rank 0 wrote into output_dir
    rank0, rank1 = (Path(f'{log}.rank{k}').read_text().splitlines() for k in (0, 1))
    assert any(line.endswith('results.json') for line in rank0) and any('last.pt' in line for line in rank0)
    assert rank1 == [], rank1[:10]

    # training finished; evaluation counted every image once
    history = pd.read_csv(out/'history.csv')
    assert history['epoch'].tolist() == [1, 2]
    assert (history['train_images'] == 2 * 2 * 16).all()  # 2 steps x 2 processes x 16 images (batch 32 split in two)
    results = json.loads((out/'results.json').read_text())
    n_val = len(load_metadata(roots['metadata_root'], 'SYNTH', 'val').image_ids)
    n_test = len(load_metadata(roots['metadata_root'], 'SYNTH', 'test').image_ids)
    assert results['val']['num_images'] == n_val and history['val_num_images'].tolist() == [n_val, n_val]
    assert results['test']['best']['num_images'] == results['test']['last']['num_images'] == n_test
    # the merged shards give exactly what one process gives on the whole test set
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the DDP processes (OMP_NUM_THREADS=1): the same float arithmetic
    try: single = evaluate_checkpoint(out/'checkpoints'/'best.pt', split='test', device='cpu', progress=False)
    finally: torch.set_num_threads(threads)
    assert single == results['test']['best']
    assert sorted(p.name for p in out.iterdir()) == ['checkpoints', 'config.yaml', 'curves.png', 'history.csv', 'results.json']
    assert sorted(p.name for p in (out/'checkpoints').iterdir()) == ['best.pt', 'last.pt']

"""Faults a long run must survive and bad inputs it must refuse (issue 16), each on a small SYNTH in seconds:
a full disk while any output file is written, SIGKILL at many points followed by `resume` (bit-equal to an
uninterrupted run), corrupt / truncated / missing / odd-mode training images (also read in DataLoader workers) and
`skip_unreadable_images`, a DDP process that dies or hangs, two runs on one output_dir, and an interrupted evaluation
(results.json and score maps). The table of these faults is nbs/reliability.ipynb."""
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from itertools import count
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(train_per_class=4, val_per_class=2, test_per_class=2, proxy_per_class=0)  # 48 / 24 / 24 images
WRITE_ORDER = ('config.yaml', 'checkpoints/best.pt', 'checkpoints/last.pt', 'history.csv', 'curves.png', 'results.json')


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    from wsol.synth import ensure_synth
    base = tmp_path_factory.mktemp('reliability_data')
    ensure_synth(base/'data', base/'metadata', **SMALL)
    return {'data_root': str(base/'data'), 'metadata_root': str(base/'metadata')}


def settings(roots, out, **kw) -> dict:
    return {**dict(dataset='SYNTH', **roots, synth=SMALL, epochs=3, warm_epochs=1, max_steps_per_epoch=2, batch_size=16,
                   warm_batch_size=16, workers=0, lr_decay_points=[3], cam_curve_interval=0.05, device='cpu',
                   pretrained=False, output_dir=str(out)), **kw}


def cli_args(s: dict) -> list:
    "`settings` as wsol-train flags."
    return sum([[f'--{k}', json.dumps(v) if isinstance(v, (dict, list)) else str(v).lower() if isinstance(v, bool) else str(v)]
                for k, v in s.items()], [])


def digest(folder) -> dict:
    "relative path -> sha256 of every file under `folder`."
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def run_cli(argv, capsys) -> tuple:
    "wsol-train in this process -> (exit status, stderr lines)."
    from wsol.train import main
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    text = capsys.readouterr().err
    errors = re.findall(r'wsol-train: error: [^\r\n]*', text)  # tqdm's bars may share the line
    return code, errors + (['a traceback'] if 'Traceback' in text else [])


@pytest.fixture(scope='module')
def reference(roots, tmp_path_factory):
    "An uninterrupted 3-epoch run (one thread, as the killed processes): {'dir', 'results'}."
    import torch
    from wsol.config import make_config
    from wsol.train import train
    out = tmp_path_factory.mktemp('reference')/'run'
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try: results = train(make_config(**settings(roots, out)), progress=False)
    finally: torch.set_num_threads(threads)
    return {'dir': out, 'results': results}


# ---------------------------------------------------------------- the disk fills while a file is written

def _full_disk_on(name: str):
    "Patch every writer so that writing a file called `name` fills the disk halfway through (ENOSPC)."
    import wsol.config, wsol.plots, wsol.weights
    real = wsol.config.atomic_write

    def atomic_write(path, write):
        if Path(path).name != name: return real(path, write)

        def half_then_full(tmp):
            write(tmp)
            data = Path(tmp).read_bytes()
            Path(tmp).write_bytes(data[:len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, half_then_full)
    return mock.patch.multiple('wsol.config', atomic_write=atomic_write), mock.patch.object(wsol.plots, 'atomic_write', atomic_write), \
        mock.patch.object(wsol.weights, 'atomic_write', atomic_write)


@pytest.fixture(scope='module')
def after_epoch_1(roots, tmp_path_factory):
    "A run stopped after epoch 1 of 2 (every output but results.json written), and the same run finished."
    from wsol.config import make_config
    from wsol.train import train
    base = tmp_path_factory.mktemp('full_disk')
    s = settings(roots, base/'stopped', epochs=2, lr_decay_points=[])

    def stop(epoch, row): raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(make_config(**s), progress=False, on_epoch_end=stop)
    shutil.copytree(base/'stopped', base/'finished')
    train(make_config(**{**s, 'output_dir': str(base/'finished')}, resume=True), progress=False)
    return {'stopped': base/'stopped', 'finished': base/'finished', 'settings': s}


@pytest.mark.parametrize('name', ['last.pt', 'best.pt', 'history.csv', 'curves.png', 'config.yaml', 'results.json'])
def test_full_disk_keeps_the_previous_files(after_epoch_1, tmp_path, capsys, name):
    from wsol.weights import load_checkpoint
    source = after_epoch_1['finished' if name == 'results.json' else 'stopped']
    out = tmp_path/'run'
    shutil.copytree(source, out)
    before = digest(out)
    s = {**after_epoch_1['settings'], 'output_dir': str(out), 'resume': True}
    patches = _full_disk_on(name)
    best = count(1)  # every evaluated epoch is the best so far, so that best.pt is written at epoch 2
    with patches[0], patches[1], patches[2], mock.patch('wsol.train.selection_score', lambda m, multi: 1000 + next(best)):
        code, err = run_cli(cli_args(s), capsys)
    path = out/'checkpoints'/name if name.endswith('.pt') else out/name
    assert code == 1
    assert err == [f"wsol-train: error: cannot write {path}: No space left on device ({name} left as it was)"]
    after = digest(out)
    # the file that could not be written, and those a run writes after it, are as they were
    later = WRITE_ORDER[[Path(n).name for n in WRITE_ORDER].index(name):]
    assert {k: after.get(k) for k in later if k in before} == {k: before[k] for k in later if k in before}
    assert path.relative_to(out).as_posix() in before
    assert not [p for p in out.rglob('*') if p.name.endswith('.tmp') or p.name == '.wsol-train.lock']
    for ckpt in ('last.pt', 'best.pt'): assert load_checkpoint(out/'checkpoints'/ckpt)['epoch'] >= 1
    if name == 'results.json': assert set(json.loads((out/'results.json').read_text())) == {'val', 'test'}


# ---------------------------------------------------------------- killed anywhere, resumed to the same end

CHILD = r'''
import io, json, sys, time
from pathlib import Path
import torch
import wsol.evaluation, wsol.train, wsol.weights
from wsol.config import atomic_write, make_config

settings, phase, ready = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3])

def stop():  # tell the test where this process is, then wait for SIGKILL
    ready.write_text(phase)
    time.sleep(3600)

real_save, real_eval, real_scoremaps = torch.save, wsol.train.evaluate_model, wsol.evaluation.scoremaps
real_save_ckpt, real_text = wsol.train.save_checkpoint, wsol.train.atomic_write_text
calls = {'loss': 0}
evaluating = {'split': None}

def half_save(obj, f, *a, **k):  # the first checkpoint of this run: half of its bytes written, then killed
    buf = io.BytesIO()
    real_save(obj, buf, *a, **k)
    handle = open(f, 'wb') if isinstance(f, (str, Path)) else f
    handle.write(buf.getvalue()[:len(buf.getvalue()) // 2])
    handle.flush()
    stop()

def save_ckpt(state, path):
    real_save_ckpt(state, path)
    if phase == 'between-best-and-last' and Path(path).name == 'best.pt': stop()

def text(path, content):  # history.csv / results.json: half written, then killed
    if Path(path).name == phase:
        atomic_write(path, lambda tmp: (Path(tmp).write_text(content[:len(content) // 2]), stop()))
    real_text(path, content)

def evaluate_model(model, cfg, split, *a, **k):
    evaluating['split'] = split
    return real_eval(model, cfg, split, *a, **k)

def scoremaps(*a, **k):  # killed after the first batch of score maps of the chosen split
    for i, batch in enumerate(real_scoremaps(*a, **k)):
        yield batch
        if evaluating['split'] == phase: stop()

real_loss = wsol.train.training_loss
def training_loss(*a, **k):  # killed in the middle of an epoch, after one optimizer step
    calls['loss'] += 1
    if phase == 'train-step' and calls['loss'] == 2: stop()
    return real_loss(*a, **k)

if phase == 'checkpoint-write': torch.save = half_save
wsol.train.save_checkpoint = save_ckpt
wsol.train.atomic_write_text = text
wsol.train.evaluate_model = evaluate_model
wsol.evaluation.scoremaps = scoremaps
wsol.train.training_loss = training_loss
wsol.train.train(make_config(**settings), progress=False)
'''


def kill_at(s: dict, phase: str, tmp_path) -> None:
    "Run training in a subprocess until it reaches `phase`, then SIGKILL it."
    ready = tmp_path/f'ready_{phase}'
    proc = subprocess.Popen([sys.executable, '-c', CHILD, json.dumps(s), phase, str(ready)], cwd=ROOT,
                            env={**os.environ, 'OMP_NUM_THREADS': '1'})
    try:
        deadline = time.time() + 300
        while not ready.exists():
            assert proc.poll() is None, f"{phase}: the training process ended early (exit status {proc.returncode})"
            assert time.time() < deadline, f"{phase}: not reached after 300 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_killed_anywhere_resumes_to_the_same_end(roots, reference, tmp_path):
    "SIGKILL at seven points of one run, each time resumed; the end is bit-equal to an uninterrupted run."
    import torch
    from wsol.config import make_config
    from wsol.train import train
    from wsol.weights import load_checkpoint
    ref = reference['dir']
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the killed processes (OMP_NUM_THREADS=1): the same float arithmetic
    try:
        out = tmp_path/'run'
        s = settings(roots, out, resume=True)
        ckpts = out/'checkpoints'
        epoch = lambda name: load_checkpoint(ckpts/name)['epoch'] if (ckpts/name).exists() else 0
        kill_at(s, 'checkpoint-write', tmp_path)  # epoch 1's best.pt half written
        assert (epoch('best.pt'), epoch('last.pt')) == (0, 0) and list(ckpts.glob('.best.pt.*.tmp'))
        kill_at(s, 'between-best-and-last', tmp_path)  # epoch 1: best.pt written, last.pt not yet
        assert (epoch('best.pt'), epoch('last.pt')) == (1, 0)
        kill_at(s, 'val', tmp_path)  # resumed from best.pt; killed evaluating epoch 2 on val
        assert (epoch('best.pt'), epoch('last.pt')) == (1, 0)
        kill_at(s, 'history.csv', tmp_path)  # epoch 2's checkpoints written, history.csv half written
        assert epoch('last.pt') == 2 and list(out.glob('.history.csv.*.tmp'))
        kill_at(s, 'train-step', tmp_path)  # in the middle of epoch 3
        assert epoch('last.pt') == 2
        kill_at(s, 'test', tmp_path)  # epoch 3 done; killed in the final test evaluation
        assert epoch('last.pt') == 3 and not (out/'results.json').exists()
        kill_at(s, 'results.json', tmp_path)  # results.json half written
        assert not (out/'results.json').exists() and list(out.glob('.results.json.*.tmp'))

        results = train(make_config(**s), progress=False)
        assert results == reference['results']
        assert json.loads((out/'results.json').read_text()) == json.loads((ref/'results.json').read_text())
        for name in ('last.pt', 'best.pt'):
            a, b = load_checkpoint(ckpts/name), load_checkpoint(ref/'checkpoints'/name)
            assert (a['epoch'], a['best_epoch']) == (b['epoch'], b['best_epoch'])
            assert a['model'].keys() == b['model'].keys()
            for k in a['model']: assert torch.equal(a['model'][k], b['model'][k]), (name, k)
        ha, hb = pd.read_csv(out/'history.csv'), pd.read_csv(ref/'history.csv')
        timing = [c for c in ha if c.endswith('_time')]
        pd.testing.assert_frame_equal(ha.drop(columns=timing), hb.drop(columns=timing))
        # nothing left over: the folder holds what an uninterrupted run leaves (no temporary files, no lock)
        listing = lambda d: sorted(p.relative_to(d).as_posix() for p in d.rglob('*'))
        assert listing(out) == listing(ref)
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------- bad training images

@pytest.fixture
def own_data(roots, tmp_path):
    "A private copy of the small SYNTH that a test may damage."
    data = tmp_path/'data'
    shutil.copytree(roots['data_root'], data)
    return {'data_root': str(data), 'metadata_root': roots['metadata_root']}


def _train_ids(metadata_root):
    from wsol.metadata import load_metadata
    return load_metadata(metadata_root, 'SYNTH', 'train').image_ids


@pytest.mark.parametrize('fault', ['corrupt', 'truncated'])
@pytest.mark.parametrize('workers', [0, 1])
def test_unreadable_training_image_stops_with_one_line(own_data, tmp_path, capsys, fault, workers):
    ids = _train_ids(own_data['metadata_root'])
    path = Path(own_data['data_root'])/'SYNTH'/ids[7]
    if fault == 'corrupt': path.write_bytes(os.urandom(500))
    else: path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    s = settings(own_data, tmp_path/'run', epochs=1, warm_epochs=0, max_steps_per_epoch=0, workers=workers)
    code, err = run_cli(cli_args(s), capsys)  # full epochs: every train image is read
    assert code == 1
    assert len(err) == 1 and err[0].startswith(f"wsol-train: error: cannot read SYNTH train image {path}: "), err


def test_missing_training_image_stops_before_training(own_data, tmp_path, capsys):
    # SYNTH regenerates missing files, so the same images as a custom dataset (MINE) that cannot
    shutil.copytree(Path(own_data['metadata_root'])/'SYNTH', tmp_path/'metadata'/'MINE')
    shutil.move(Path(own_data['data_root'])/'SYNTH', Path(own_data['data_root'])/'MINE')
    ids = _train_ids(own_data['metadata_root'])
    path = Path(own_data['data_root'])/'MINE'/ids[3]
    path.unlink()
    s = settings({**own_data, 'metadata_root': str(tmp_path/'metadata')}, tmp_path/'run', dataset='MINE', synth={},
                 architecture='tinyresnet', resize_size=72, crop_size=64)
    code, err = run_cli(cli_args(s), capsys)
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f"wsol-train: error: 1 of 48 MINE train images are missing under "
                             f"{Path(own_data['data_root'])/'MINE'}, e.g. {path}."), err
    assert not (tmp_path/'run'/'checkpoints').exists()


def test_odd_image_modes_are_converted(own_data, tmp_path, capsys):
    import torch
    from PIL import Image
    from wsol.config import make_config
    from wsol.data import dataset_for
    ids = _train_ids(own_data['metadata_root'])
    root = Path(own_data['data_root'])/'SYNTH'
    for i, (mode, fmt) in zip((0, 1, 2), (('L', 'PNG'), ('CMYK', 'JPEG'), ('RGBA', 'PNG'))):
        with Image.open(root/ids[i]) as im: rgb = im.convert('RGB')
        rgb.convert(mode).save(root/ids[i], format=fmt)  # same name, another mode (PIL reads by content)
        with Image.open(root/ids[i]) as im: assert im.mode == mode
    train_set = dataset_for(make_config(**settings(own_data, tmp_path/'run')), 'train')
    train_set.transform = lambda image: torch.from_numpy(np.asarray(image).copy())
    gray, cmyk, rgba = (train_set[train_set.image_ids.index(ids[i])][0] for i in (0, 1, 2))
    assert gray.shape == cmyk.shape == rgba.shape and gray.shape[-1] == 3
    assert torch.equal(gray[..., 0], gray[..., 1]) and torch.equal(gray[..., 1], gray[..., 2])  # grey as RGB
    with Image.open(root/ids[2]) as im: assert torch.equal(rgba, torch.from_numpy(np.asarray(im)[..., :3].copy()))
    code, err = run_cli(cli_args(settings(own_data, tmp_path/'run', epochs=1, warm_epochs=0, max_steps_per_epoch=0)), capsys)
    assert code == 0, err
    assert pd.read_csv(tmp_path/'run'/'history.csv')['train_images'].tolist() == [48]


def test_skip_unreadable_images_lists_them(own_data, tmp_path, capsys):
    ids = _train_ids(own_data['metadata_root'])
    root = Path(own_data['data_root'])/'SYNTH'
    bad = [ids[5], ids[20], ids[40]]
    (root/bad[0]).write_bytes(b'<html>404 Not Found</html>')  # what a scraper saves
    (root/bad[1]).write_bytes((root/bad[1]).read_bytes()[:100])
    (root/bad[2]).write_bytes(b'')
    s = settings(own_data, tmp_path/'run', epochs=1, warm_epochs=0, max_steps_per_epoch=0, workers=1,
                 skip_unreadable_images=True)
    from wsol.train import main
    main(cli_args(s))
    out = capsys.readouterr().out
    listed = (tmp_path/'run'/'skipped_images.txt').read_text().splitlines()
    assert [line.split('\t')[0] for line in listed] == sorted(bad, key=ids.index)
    assert all(line.split('\t')[1].startswith(f"cannot read SYNTH train image {root/line.split(chr(9))[0]}: ") for line in listed)
    assert f"left out 3 unreadable train image(s), listed in {tmp_path/'run'/'skipped_images.txt'}" in out
    assert pd.read_csv(tmp_path/'run'/'history.csv')['train_images'].tolist() == [45]
    # also a parameter of the train notebook / config_from_params (text or bool)
    from wsol.config import config_from_params
    assert config_from_params(skip_unreadable_images='true').skip_unreadable_images is True


# ---------------------------------------------------------------- DDP: a process dies or hangs

DDP_CHILD = r'''
import os, signal, sys, time
import wsol.train
fault = os.environ.get('WSOL_TEST_FAULT', '')
real = wsol.train.train_one_epoch
def train_one_epoch(*a, **k):
    if os.environ['RANK'] == '1' and a[6] == 2:  # rank 1, epoch 2
        if fault == 'die': os.kill(os.getpid(), signal.SIGKILL)
        if fault == 'hang': time.sleep(3600)
    return real(*a, **k)
wsol.train.train_one_epoch = train_one_epoch
wsol.train.main(sys.argv[1:])
'''


def test_ddp_rank_dies_or_hangs_then_resume(roots, tmp_path):
    exe = Path(sys.executable).parent/'torchrun'
    torchrun = lambda: [str(exe)] if exe.exists() else [sys.executable, '-m', 'torch.distributed.run']
    script = tmp_path/'ddp_child.py'
    script.write_text(DDP_CHILD)
    out = tmp_path/'ddp'
    s = {k: v for k, v in settings(roots, out, epochs=2, batch_size=16, warm_batch_size=16, max_eval_images=8).items()}
    cmd = torchrun() + ['--standalone', '--nproc_per_node', '2', str(script), *cli_args(s), '--dist_timeout', '10']

    def launch(fault, *extra):
        t0 = time.time()
        r = subprocess.run(cmd + list(extra), cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env={**os.environ, 'OMP_NUM_THREADS': '1', 'WSOL_TEST_FAULT': fault})
        return r, time.time() - t0

    r, took = launch('die')  # rank 1 killed at epoch 2: the run ends (torchrun stops rank 0), no hang
    assert r.returncode != 0 and took < 120, (took, r.stderr[-2000:])
    from wsol.weights import load_checkpoint
    assert load_checkpoint(out/'checkpoints'/'last.pt')['epoch'] == 1
    r, took = launch('hang', '--resume', 'true')  # rank 1 stuck at epoch 2: rank 0 gives up after dist_timeout
    assert r.returncode != 0 and took < 120, (took, r.stderr[-2000:])
    lines = re.findall(r'wsol-train: error: [^\r\n]*', r.stderr)  # tqdm's bar may share the line
    assert lines and lines[0].startswith('wsol-train: error: rank 0 of 2: lost contact with the other processes ('), r.stderr[-3000:]
    assert 'dist_timeout=10 s' in lines[0] and 'resume=true' in lines[0]
    assert load_checkpoint(out/'checkpoints'/'last.pt')['epoch'] == 1
    r, _ = launch('', '--resume', 'true')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'resumed from' in r.stdout
    assert pd.read_csv(out/'history.csv')['epoch'].tolist() == [1, 2]
    assert set(json.loads((out/'results.json').read_text())) == {'val', 'test'}
    assert not (out/'.wsol-train.lock').exists()


# ---------------------------------------------------------------- two runs, one output_dir

HOLD = r'''
import json, sys, time
from pathlib import Path
from wsol.config import make_config
from wsol.train import train
ready = Path(sys.argv[2])
def hold(epoch, row): ready.write_text('epoch 1'); time.sleep(3600)
train(make_config(**json.loads(sys.argv[1])), progress=False, on_epoch_end=hold)
'''


def test_second_run_on_the_same_output_dir_is_refused(roots, tmp_path, capsys):
    from wsol.config import make_config
    from wsol.train import train
    out = tmp_path/'run'
    s = settings(roots, out, epochs=2, lr_decay_points=[])
    ready = tmp_path/'ready'
    first = subprocess.Popen([sys.executable, '-c', HOLD, json.dumps(s), str(ready)], cwd=ROOT)
    try:
        deadline = time.time() + 300
        while not ready.exists():
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.05)
        before = digest(out)
        code, err = run_cli(cli_args(s), capsys)
        assert code == 1
        assert len(err) == 1 and err[0].startswith(f"wsol-train: error: output_dir {out} is in use by another run "
                                                   f"(pid {first.pid} on "), err
        assert 'choose another output_dir' in err[0]
        assert digest(out) == before  # the second run touched nothing
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (out/'.wsol-train.lock').exists()  # left by the killed run, but no longer locked
    results = train(make_config(**s, resume=True), progress=False)
    assert results['test']['last']['num_images'] == 24 and not (out/'.wsol-train.lock').exists()


# ---------------------------------------------------------------- an interrupted evaluation

EVAL_CHILD = r'''
import io, json, sys, time
from pathlib import Path
import numpy as np
import wsol.config, wsol.evaluation
from wsol.evaluation import evaluate_checkpoint
ckpt, out, phase, ready = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
def stop(): ready.write_text(phase); time.sleep(3600)
real_save, real_text, n = np.save, wsol.evaluation.atomic_write_text, [0]
def half_save(f, arr, *a, **k):  # the 5th score map: half of its bytes written, then killed
    n[0] += 1
    if n[0] < 5: return real_save(f, arr, *a, **k)
    buf = io.BytesIO()
    real_save(buf, arr, *a, **k)
    handle = open(f if str(f).endswith('.npy') else f'{f}.npy', 'wb') if isinstance(f, (str, Path)) else f
    handle.write(buf.getvalue()[:len(buf.getvalue()) // 2])
    handle.flush()
    stop()
def text(path, content):
    if Path(path).name == 'results.json':
        wsol.config.atomic_write(path, lambda tmp: (Path(tmp).write_text(content[:len(content) // 2]), stop()))
    real_text(path, content)
if phase == 'scoremap': np.save = half_save
wsol.evaluation.atomic_write_text = text
evaluate_checkpoint(ckpt, split='test', save_cam=phase == 'scoremap', output_dir=out, progress=False, workers=0)
'''


def _kill_evaluation(ckpt, out, phase, tmp_path):
    ready = tmp_path/f'ready_{phase}'
    proc = subprocess.Popen([sys.executable, '-c', EVAL_CHILD, str(ckpt), str(out), phase, str(ready)], cwd=ROOT)
    try:
        deadline = time.time() + 300
        while not ready.exists():
            assert proc.poll() is None, f"{phase}: the evaluation ended early (exit status {proc.returncode})"
            assert time.time() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_interrupted_evaluation_leaves_no_half_written_results(reference, tmp_path):
    from wsol.evaluation import evaluate_checkpoint
    ckpt = reference['dir']/'checkpoints'/'best.pt'
    out = tmp_path/'eval'
    earlier = evaluate_checkpoint(ckpt, split='test', output_dir=out, progress=False, workers=0)
    before = (out/'results.json').read_bytes()
    _kill_evaluation(ckpt, out, 'results.json', tmp_path)
    assert (out/'results.json').read_bytes() == before and json.loads(before) == earlier  # the earlier file, whole


def test_interrupted_evaluation_leaves_whole_score_maps(reference, roots, tmp_path, capsys):
    from wsol.evaluate_scoremaps import main
    ckpt = reference['dir']/'checkpoints'/'best.pt'
    out = tmp_path/'eval'
    _kill_evaluation(ckpt, out, 'scoremap', tmp_path)
    maps = sorted((out/'scoremaps'/'test').rglob('*.npy'))
    assert len(maps) == 4  # four whole score maps; the fifth was being written
    for p in maps:
        s = np.load(p)
        assert s.shape == (64, 64) and s.dtype == np.float32
    assert not (out/'results.json').exists()
    # wsol-evaluate refuses the partial folder and names a missing score map
    capsys.readouterr()
    assert main(['--scoremap_root', str(out/'scoremaps'/'test'), '--metadata_root', roots['metadata_root'],
                 '--dataset_name', 'SYNTH', '--image_size', '64', '--workers', '0']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('wsol-evaluate: error: ') and 'score map not found for image' in err[0], err

"""Integration tests of training and evaluation: configs/, the train and evaluate papermill notebooks,
a killed run resumed to the same weights, divergence, fail-fast on missing data, and the command line."""
import hashlib
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
CONFIGS = sorted((ROOT/'configs').glob('*.yaml'))
M_KEYS = {'top1_cls', 'top5_cls', 'gt_known_loc', 'top1_loc', 'top5_loc', 'maxboxacc', 'maxboxacc_v2',
          'cam_threshold', 'num_images', 'pxap', 'piou'}
TINY = dict(epochs=2, warm_epochs=1, max_steps_per_epoch=2, max_eval_images=16, workers=0, pretrained='false')


# ---------------------------------------------------------------- configs/

@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_files_load_and_match_presets(path):
    from wsol.config import make_config, preset
    cfg = make_config(config=path)
    dataset, architecture = path.stem.split('_')
    assert (cfg.dataset.lower(), cfg.architecture) == (dataset, architecture)
    assert cfg.method == 'bridging-gap'
    # the files hold the paper's settings: the same values as the presets
    differ = {k: (v, getattr(cfg, k)) for k, v in preset(cfg.dataset, cfg.architecture).items() if getattr(cfg, k) != v}
    assert not differ, f"{path.name} differs from the preset: {differ}"


def test_config_files_cover_the_paper():
    assert {p.stem for p in CONFIGS} >= {'cub_resnet50', 'cub_vgg16', 'ilsvrc_resnet50', 'ilsvrc_vgg16', 'synth_tinyresnet'}


# ---------------------------------------------------------------- helpers

@pytest.fixture(scope='session')
def roots(tmp_path_factory):
    "A data root and a metadata root with SYNTH generated once for the whole session."
    from wsol.synth import ensure_synth
    base = tmp_path_factory.mktemp('wsol_data')
    ensure_synth(base/'data', base/'metadata')
    return {'data_root': str(base/'data'), 'metadata_root': str(base/'metadata')}


def run_notebook(name, out_dir, **parameters):
    import papermill as pm
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return pm.execute_notebook(str(NBS/name), str(out_dir/f'executed_{name}'), parameters=parameters,
                               cwd=str(ROOT), kernel_name='python3', progress_bar=False)


def check_metrics(m, num_images):
    assert set(m) == M_KEYS, set(m) ^ M_KEYS
    assert m['num_images'] == num_images
    for k in M_KEYS - {'maxboxacc', 'num_images', 'cam_threshold'}:
        assert 0 <= m[k] <= 100, (k, m[k])
    assert set(m['maxboxacc']) == {'30', '50', '70'}
    assert all(0 <= v <= 100 for v in m['maxboxacc'].values())
    assert math.isclose(m['maxboxacc_v2'], np.mean(list(m['maxboxacc'].values())))
    assert 0 <= m['cam_threshold'] < 1
    assert m['top1_cls'] <= m['top5_cls']
    assert m['top1_loc'] <= m['top5_loc'] <= m['gt_known_loc'] <= m['maxboxacc']['50'] + 1e-9


def file_hash(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------- the train notebook

@pytest.fixture(scope='module')
def notebook_runs(roots, tmp_path_factory):
    "Run nbs/train.ipynb with tiny settings for both methods; {method: output_dir}."
    base = tmp_path_factory.mktemp('train_nb')
    runs = {}
    for method, large in (('bridging-gap', True), ('cam', 'true')):  # papermill's -p x True arrives as a bool
        out = base/method
        run_notebook('train.ipynb', base/f'nb_{method}', dataset='SYNTH', method=method, output_dir=str(out),
                     large_feature_map=large, **roots, **TINY)
        runs[method] = out
    return runs


@pytest.mark.parametrize('method', ['bridging-gap', 'cam'])
def test_train_notebook_writes_results(notebook_runs, method):
    import torch
    from wsol.config import make_config
    out = notebook_runs[method]
    results = json.loads((out/'results.json').read_text())
    assert set(results) == {'val', 'test'} and set(results['test']) == {'best', 'last'}
    for m in (results['val'], results['test']['best'], results['test']['last']):
        check_metrics(m, num_images=16)
    # test is scored at the threshold chosen on val
    assert results['test']['best']['cam_threshold'] == results['val']['cam_threshold']

    history = pd.read_csv(out/'history.csv')
    assert history['epoch'].tolist() == [1, 2] and history['warm'].tolist() == [True, False]
    terms = {'loss_total', 'loss_ce'} | ({'loss_drop', 'loss_sim', 'loss_norm'} if method == 'bridging-gap' else set())
    assert terms <= set(history.columns)
    assert {'lr', 'lr_classifier', 'train_top1', 'epoch_time', 'val_maxboxacc_v2', 'val_pxap'} <= set(history.columns)
    assert history[sorted(terms)].notna().all().all()
    assert (out/'curves.png').stat().st_size > 0
    saved = make_config(config=out/'config.yaml')
    assert saved.method == method and saved.large_feature_map is True

    last = torch.load(out/'checkpoints'/'last.pt', weights_only=True)
    best = torch.load(out/'checkpoints'/'best.pt', weights_only=True)
    assert last['epoch'] == 2 and len(last['history']) == 2 and best['epoch'] in (1, 2)
    assert {'model', 'optimizer', 'epoch', 'rng', 'config', 'best_score', 'history'} <= set(last)
    assert best['val'] == results['val']
    assert last['best_score'] == results['val']['maxboxacc_v2']


def test_train_notebook_shows_figures(notebook_runs):
    import nbformat
    nb = nbformat.read(notebook_runs['bridging-gap'].parent/'nb_bridging-gap'/'executed_train.ipynb', as_version=4)
    images = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []) if 'image/png' in o.get('data', {})]
    assert len(images) >= 2  # training curves and CAM overlays
    assert any('parameters' in c.metadata.get('tags', []) for c in nb.cells)


# ---------------------------------------------------------------- the evaluate notebook

def test_evaluate_notebook_saves_scoremaps(notebook_runs, roots, tmp_path):
    from wsol.metadata import load_metadata
    from wsol.evaluation import eval_indices
    run = notebook_runs['bridging-gap']
    out = tmp_path/'eval'
    run_notebook('evaluate.ipynb', tmp_path, checkpoint=str(run/'checkpoints'/'best.pt'), split='test',
                 save_cam=True, output_dir=str(out), max_eval_images=16, large_feature_map=True)
    m = json.loads((out/'results.json').read_text())
    check_metrics(m, num_images=16)
    # the same model, images and (val) threshold as the training run's final test evaluation
    assert m == json.loads((run/'results.json').read_text())['test']['best']
    maps = sorted((out/'scoremaps'/'test').rglob('*.npy'))
    all_ids = load_metadata(roots['metadata_root'], 'SYNTH', 'test').image_ids
    ids = [all_ids[i] for i in eval_indices(len(all_ids), 16)]  # 16 images spread over the split
    assert sorted(p.relative_to(out/'scoremaps'/'test').as_posix() for p in maps) == sorted(f'{i}.npy' for i in ids)
    for p in maps:
        s = np.load(p)
        assert s.shape == (64, 64) and s.dtype == np.float32 and 0 <= s.min() and s.max() <= 1
    assert (out/'threshold_curves.csv').is_file() and (out/'threshold_curves.png').is_file()


# ---------------------------------------------------------------- resume after a real interruption

def _settings(roots, out, **kw):
    return {**dict(dataset='SYNTH', **roots, epochs=3, warm_epochs=1, max_steps_per_epoch=2, batch_size=16,
                   warm_batch_size=16, max_eval_images=16, workers=0, lr_decay_points=[3], cam_curve_interval=0.05,
                   device='cpu', pretrained=False, output_dir=str(out)), **kw}


def test_killed_run_resumes_to_the_same_weights(roots, tmp_path):
    import torch
    from wsol.config import make_config
    from wsol.train import train
    out = tmp_path/'interrupted'
    settings = _settings(roots, out)
    code = ("import json, sys, time\n"
            "from wsol.config import make_config\n"
            "from wsol.train import train\n"
            "cfg = make_config(**json.loads(sys.argv[1]))\n"
            "train(cfg, progress=False, on_epoch_end=lambda epoch, row: time.sleep(3600) if epoch == 1 else None)\n")
    proc = subprocess.Popen([sys.executable, '-c', code, json.dumps(settings)], cwd=ROOT)
    last = out/'checkpoints'/'last.pt'
    try:
        deadline = time.time() + 300
        while not last.exists():
            assert proc.poll() is None, f"the training process ended early (exit code {proc.returncode})"
            assert time.time() < deadline, "no checkpoint after 300 s"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert torch.load(last, weights_only=True)['epoch'] == 1  # killed during epoch 2 at the latest
    assert not (out/'results.json').exists()

    resumed = train(make_config(**settings, resume=True), progress=False)
    reference = train(make_config(**{**settings, 'output_dir': str(tmp_path/'reference')}), progress=False)

    a = torch.load(last, weights_only=True)
    b = torch.load(tmp_path/'reference'/'checkpoints'/'last.pt', weights_only=True)
    assert a['epoch'] == b['epoch'] == 3
    assert a['model'].keys() == b['model'].keys()
    for k in a['model']: assert torch.equal(a['model'][k], b['model'][k]), k
    ha, hb = pd.read_csv(out/'history.csv'), pd.read_csv(tmp_path/'reference'/'history.csv')
    assert ha['epoch'].tolist() == [1, 2, 3]
    timing = [c for c in ha if c.endswith('_time')]
    pd.testing.assert_frame_equal(ha.drop(columns=timing), hb.drop(columns=timing))
    assert [g['lr'] for g in a['optimizer']['param_groups']] == [g['lr'] for g in b['optimizer']['param_groups']]
    assert resumed == reference


def test_resume_with_another_config_is_refused(roots, tmp_path):
    from wsol.config import make_config
    from wsol.train import train
    settings = _settings(roots, tmp_path/'run', epochs=1, warm_epochs=0)
    train(make_config(**settings), progress=False)
    with pytest.raises(ValueError, match=r"another config \(epochs: 1 in the checkpoint, 2 now\)"):
        train(make_config(**{**settings, 'epochs': 2}, resume=True), progress=False)


def test_fresh_run_removes_an_earlier_runs_checkpoints(roots, tmp_path):
    import torch
    from wsol.config import make_config
    from wsol.train import train
    old = _settings(roots, tmp_path/'run', epochs=1, warm_epochs=0)
    train(make_config(**old), progress=False)  # an earlier run: best.pt, last.pt, results.json of epoch 1
    new = _settings(roots, tmp_path/'run', epochs=2, warm_epochs=0, eval_interval=2, lr_decay_points=[])

    def interrupt(epoch, row): raise KeyboardInterrupt  # after epoch 1, which is not evaluated: no new best.pt

    with pytest.raises(KeyboardInterrupt):
        train(make_config(**new), progress=False, on_epoch_end=interrupt)
    ckpts = tmp_path/'run'/'checkpoints'
    assert sorted(p.name for p in ckpts.iterdir()) == ['last.pt'] and not (tmp_path/'run'/'results.json').exists()
    results = train(make_config(**new, resume=True), progress=False)
    assert torch.load(ckpts/'best.pt', weights_only=True)['epoch'] == 2
    assert [r['epoch'] for r in torch.load(ckpts/'last.pt', weights_only=True)['history']] == [1, 2]
    assert results['test']['best'] == results['test']['last']


# ---------------------------------------------------------------- divergence

def test_nan_loss_stops_and_keeps_the_checkpoints(roots, tmp_path):
    import torch
    from dataclasses import replace
    from wsol import train as train_module
    from wsol.config import make_config
    from wsol.methods import METHODS
    run = tmp_path/'run'
    original = METHODS['bridging-gap'].loss
    calls, saved = [], {}

    def poisoned(out, targets, fc_weight, hp, warm):
        losses = original(out, targets, fc_weight, hp, warm)
        calls.append(1)
        if len(calls) == 4: losses = dict(losses, total=losses['total'] * float('nan'))  # epoch 2, step 2
        return losses

    def after_epoch(epoch, row):
        saved.update({p.name: file_hash(p) for p in (run/'checkpoints').glob('*.pt')})

    with mock.patch.dict(METHODS, {'bridging-gap': replace(METHODS['bridging-gap'], loss=poisoned)}):
        with pytest.raises(train_module.TrainingDiverged, match=r"epoch 2 step 2: the loss is not finite \(total=nan, ce="):
            train_module.train(make_config(**_settings(roots, run)), progress=False, on_epoch_end=after_epoch)
    assert set(saved) == {'best.pt', 'last.pt'}
    assert {p.name: file_hash(p) for p in (run/'checkpoints').glob('*.pt')} == saved  # untouched
    assert torch.load(run/'checkpoints'/'last.pt', weights_only=True)['epoch'] == 1
    assert not (run/'results.json').exists()


# ---------------------------------------------------------------- missing data, bad parameters, the command line

def test_missing_dataset_fails_before_building_a_model(tmp_path, capsys):
    from wsol import train as train_module
    with mock.patch.object(train_module, 'model_for', side_effect=AssertionError('a model was built')) as build:
        with pytest.raises(SystemExit) as e:
            train_module.main(['--dataset', 'CUB', '--data_root', str(tmp_path/'nothing'), '--metadata_root',
                               str(ROOT/'metadata'), '--output_dir', str(tmp_path/'out'), '--pretrained', 'false'])
    assert e.value.code == 1 and not build.called
    err = capsys.readouterr().err
    assert f"CUB images not found: the folder {tmp_path/'nothing'/'CUB'} does not exist" in err
    assert 'CUB_200_2011' in err


def test_train_notebook_fails_at_once_without_images(tmp_path):
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError, match='CUB_200_2011'):
        run_notebook('train.ipynb', tmp_path, dataset='CUB', data_root=str(tmp_path/'nothing'), output_dir=str(tmp_path/'out'))
    assert not (tmp_path/'out').exists()  # stopped before anything was written
    with pytest.raises(pm.PapermillExecutionError, match="method='eil' is not one of: cam, bridging-gap"):
        run_notebook('train.ipynb', tmp_path, method='eil')


def test_command_line_parses_every_config_field():
    from dataclasses import fields
    from wsol.config import Config, config_from_params
    from wsol.train import build_parser, main
    parser = build_parser()
    options = {a.dest for a in parser._actions}
    assert {f.name for f in fields(Config)} <= options and 'config' in options
    args = parser.parse_args(['--nesterov', 'false', '--lr_decay_points', '[3, 5]', '--synth', '{train_per_class: 5}',
                              '--pretrained', 'false', '--amp', 'true', '--lr', '0.1', '--epochs', '4', '--sync_bn', 'true'])
    cfg = config_from_params(**vars(args))
    assert (cfg.nesterov, cfg.lr_decay_points, cfg.synth, cfg.pretrained, cfg.amp, cfg.lr, cfg.epochs, cfg.sync_bn) \
        == (False, [3, 5], {'train_per_class': 5}, False, True, 0.1, 4, True)
    assert config_from_params(**vars(parser.parse_args(['--pretrained', 'weights/r50.pth']))).pretrained == 'weights/r50.pth'
    with pytest.raises(SystemExit) as e:
        main(['--nesterov', 'maybe'])
    assert e.value.code == 2


def test_command_line_trains(roots, tmp_path):
    out = tmp_path/'cli'
    r = subprocess.run([sys.executable, '-m', 'wsol.train', '--config', str(ROOT/'configs'/'synth_tinyresnet.yaml'),
                        '--data_root', roots['data_root'], '--metadata_root', roots['metadata_root'],
                        '--epochs', '1', '--warm_epochs', '0', '--max_steps_per_epoch', '1', '--max_eval_images', '8',
                        '--method', 'cam', '--pretrained', 'false', '--output_dir', str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((out/'results.json').read_text())
    assert results['test']['last']['num_images'] == 8
    assert 'best epoch 1' in r.stdout


def test_evaluate_notebook_takes_switches_as_text(notebook_runs, tmp_path):
    run = notebook_runs['cam']
    out = tmp_path/'eval'
    run_notebook('evaluate.ipynb', tmp_path, checkpoint=str(run/'checkpoints'/'last.pt'), split='val', save_cam=False,
                 output_dir=str(out), max_eval_images=8, large_feature_map='true', multi_contour_eval='false')
    assert json.loads((out/'results.json').read_text())['num_images'] == 8
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError, match="large_feature_map='big': expected true or false"):
        run_notebook('evaluate.ipynb', tmp_path, checkpoint=str(run/'checkpoints'/'last.pt'), large_feature_map='big')


def test_official_v1_config_selects_by_iou50_largest_contour(roots, tmp_path):
    "box_v2_metric: False (official config) -> largest-contour boxes and `best` by MaxBoxAcc at IoU 50, as the official trainer."
    import torch
    from wsol.config import make_config
    from wsol.train import train
    (tmp_path/'official.yaml').write_text('dataset_name: SYNTH\nwsol_method: cam\nbox_v2_metric: False\n'
                                          'multi_contour_eval: True\nmulti_iou_eval: True\nexperiment_name: v1\n')
    settings = {k: v for k, v in _settings(roots, tmp_path/'run', epochs=3, lr_decay_points=[1]).items() if k != 'dataset'}
    cfg = make_config(config=tmp_path/'official.yaml', **settings)
    assert (cfg.multi_contour_eval, cfg.multi_iou_eval) == (False, False)  # box_v2_metric wins, as in the official config.py
    train(cfg, progress=False)
    last = torch.load(tmp_path/'run'/'checkpoints'/'last.pt', weights_only=True)
    iou50 = {r['epoch']: r['val_maxboxacc_50'] for r in last['history']}
    v2 = {r['epoch']: r['val_maxboxacc_v2'] for r in last['history']}
    assert last['best_score'] == max(iou50.values())
    assert last['best_epoch'] == min(e for e, s in iou50.items() if s == max(iou50.values()))
    assert last['best_val']['maxboxacc']['50'] == max(iou50.values())
    assert iou50 != v2


@pytest.mark.parametrize('notebook', ['train.ipynb', 'evaluate.ipynb'])
def test_papermill_sees_every_parameter(notebook, caplog):
    "`papermill --help-notebook` lists every parameter with its help: papermill skips a line with a second '=' (e.g. '>=')."
    import nbformat
    import papermill
    path = ROOT / 'nbs' / notebook
    cell = next(c for c in nbformat.read(path, as_version=4).cells if 'parameters' in c.metadata.get('tags', []))
    names = [line.split(':')[0].split('=')[0].strip() for line in cell.source.splitlines() if line and not line.startswith('#')]
    with caplog.at_level('WARNING', logger='papermill'):
        found = papermill.inspect_notebook(str(path))
    assert not [r.message for r in caplog.records if 'Unable to parse' in r.message]
    assert list(found) == names
    assert all(p['help'] for p in found.values()), [n for n, p in found.items() if not p['help']]

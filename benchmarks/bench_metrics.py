"""Throughput of the box evaluation: the reference algorithm (one findContours per threshold, as clovaai/wsolevaluation)
against `wsol.metrics.BoxEvaluator`, on the same score maps, with a check that both agree exactly.

    python benchmarks/bench_metrics.py [--n 300] [--interval 0.001] [--workers 2] [--cpus 2]

Maps: the golden CUB maps (tests/golden/eval, with their real GT boxes) repeated, and CAM-like maps (a random 7x7 or
14x14 activation grid upsampled with bicubic interpolation and min-max normalised, as `wsol.cam.to_scoremaps` does)
with a GT box around their strongest region. The reference loop below is written from the reference's description,
independently of wsol.metrics: per threshold cv2.threshold + cv2.findContours (RETR_TREE, CHAIN_APPROX_SIMPLE),
bounding rectangles, then one IoU computation per image.
"""
import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from wsol.metadata import Metadata
from wsol.metrics import BoxEvaluator

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / 'tests' / 'golden' / 'eval'


def reference_accuracy_hits(scoremap, gt_boxes, thresholds, iou_thresholds, multi_contour):
    "(len(iou_thresholds), len(thresholds)) bool, computed like the reference's BoxEvaluator.accumulate."
    height, width = scoremap.shape
    image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
    boxes_at, counts = [], []
    for tau in thresholds:
        _, binary = cv2.threshold(image, int(tau * np.max(image)), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
        if len(contours) == 0:
            boxes_at.append([[0, 0, 0, 0]]); counts.append(1); continue
        if not multi_contour: contours = [max(contours, key=cv2.contourArea)]
        boxes = []
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
        boxes_at.append(boxes); counts.append(len(boxes))
    a = np.concatenate([np.asarray(b) for b in boxes_at])[:, None, :]
    g = np.asarray(gt_boxes)[None, :, :]
    inter = (np.maximum(0, np.minimum(a[..., 2], g[..., 2]) - np.maximum(a[..., 0], g[..., 0]) + 1)
             * np.maximum(0, np.minimum(a[..., 3], g[..., 3]) - np.maximum(a[..., 1], g[..., 1]) + 1))
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_g = (g[..., 2] - g[..., 0] + 1) * (g[..., 3] - g[..., 1] + 1)
    union = area_a + area_g - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0).max(1)
    best = np.maximum.reduceat(iou, np.cumsum([0] + counts[:-1]))
    return np.stack([best >= d / 100 for d in iou_thresholds])


def cam_like(rng, size=224):
    "A CAM-like score map (float64) and a GT box around its strongest region."
    g = rng.choice([7, 14])
    act = rng.random((g, g)) ** 3
    cy, cx = rng.integers(1, g - 1, 2)
    act[cy - 1:cy + 2, cx - 1:cx + 2] += rng.uniform(1, 2)
    s = cv2.resize(act.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    s = ((s - s.min()) / (s.max() - s.min())).astype(np.float64)
    ys, xs = np.nonzero(s > rng.uniform(0.2, 0.5))
    box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
    return s, [box]


def build(n, seed=0, kind='mixed'):
    "Golden CUB maps (repeated) and/or CAM-like maps: ids, maps, Metadata (sizes = 224, so GT boxes are unchanged)."
    d = np.load(GOLDEN / 'cub_scoremaps_u16.npz')
    gmaps = [(m.astype(np.float32) / np.float32(65535)).astype(np.float64) for m in d['maps']]
    sizes, boxes = {}, {}
    for line in (GOLDEN / 'metadata' / 'CUB' / 'test' / 'image_sizes.txt').read_text().split():
        i, w, h = line.split(','); sizes[i] = (int(w), int(h))
    for line in (GOLDEN / 'metadata' / 'CUB' / 'test' / 'localization.txt').read_text().split():
        i, *b = line.split(','); w, h = sizes[i]
        b = list(map(float, b))
        boxes.setdefault(i, []).append((int(b[0] * 224. / w), int(b[1] * 224. / h), int(b[2] * 224. / w), int(b[3] * 224. / h)))
    rng = np.random.default_rng(seed)
    ids, maps, gt = [], [], {}
    for k in range(n):
        if kind == 'golden' or (kind == 'mixed' and k % 2 == 0):
            j = (k // (2 if kind == 'mixed' else 1)) % len(gmaps)
            s, b = gmaps[j], boxes[str(d['ids'][j])]
        else:
            s, b = cam_like(rng)
        ids.append(f'img{k:05d}'); maps.append(s); gt[ids[-1]] = b
    md = Metadata('BENCH', 'test', Path('.'), ids, {i: 0 for i in ids}, {i: (224, 224) for i in ids}, gt,
                  None, None, None, 1)
    return ids, maps, md


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=300, help="number of score maps")
    p.add_argument('--interval', type=float, default=0.001, help="cam_curve_interval")
    p.add_argument('--workers', type=int, default=2, help="process pool size of the fast evaluator")
    p.add_argument('--cpus', type=int, default=2, help="restrict this process (and its children) to this many CPUs (0: all)")
    p.add_argument('--batch', type=int, default=64, help="maps per accumulate call")
    p.add_argument('--maps', choices=('mixed', 'golden', 'camlike'), default='mixed', help="which score maps")
    args = p.parse_args()
    if args.cpus and hasattr(os, 'sched_setaffinity'):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.cpus])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    ids, maps, md = build(args.n, kind=args.maps)
    thresholds = np.arange(0, 1, args.interval)
    ious = (30, 50, 70)
    what = {'mixed': 'half golden CUB, half CAM-like', 'golden': 'golden CUB, repeated', 'camlike': 'CAM-like'}[args.maps]
    print(f"{args.n} maps 224x224 ({what}), cam_curve_interval={args.interval} "
          f"({len(thresholds)} thresholds), {cpus} CPUs, OpenCV {cv2.__version__}, NumPy {np.__version__}")
    for multi in (True, False):
        t = time.perf_counter()
        ref = [reference_accuracy_hits(s, md.boxes[i], thresholds, ious, multi) for s, i in zip(maps, ids)]
        t_ref = time.perf_counter() - t
        ref_curves = np.sum(ref, 0) * 100. / float(len(ref))
        rates = {}
        for workers in (0, args.workers):
            t = time.perf_counter()
            with BoxEvaluator(md, args.interval, ious, multi, image_size=224, workers=workers) as ev:
                for a in range(0, len(ids), args.batch):
                    ev.accumulate(np.stack(maps[a:a + args.batch]), ids[a:a + args.batch])
                r = ev.compute()
            rates[workers] = len(ids) / (time.perf_counter() - t)
            same = all(np.array_equal(r['curves'][d], ref_curves[k]) for k, d in enumerate(ious))
            if workers == 0:
                bits = ev.state()['hits']
                per_image = all(np.array_equal(np.unpackbits(bits[k], axis=-1, count=len(thresholds)), ref[k])  # rows: IoU 30, 50, 70
                                for k in range(len(ids)))
                same = same and per_image
            if not same: raise SystemExit(f"MISMATCH (multi_contour={multi}, workers={workers})")
        print(f"multi_contour={str(multi):5}  reference {len(ids) / t_ref:7.1f} img/s | ours, 1 process {rates[0]:7.1f} img/s "
              f"(x{rates[0] * t_ref / len(ids):.1f}) | ours, {args.workers} workers {rates[args.workers]:7.1f} img/s "
              f"(x{rates[args.workers] * t_ref / len(ids):.1f}) | identical per image and per threshold: yes; "
              f"MaxBoxAcc {[round(v, 4) for v in r['maxboxacc'].values()]}")


if __name__ == '__main__':
    main()

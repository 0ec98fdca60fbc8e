"""Throughput of the box evaluation: the reference algorithm (one findContours per threshold, as clovaai/wsolevaluation)
against `wsol.metrics.BoxEvaluator`, on the same score maps, with a check that both agree exactly.

    python benchmarks/bench_metrics.py [--n 300] [--interval 0.001] [--workers 2] [--cpus 2] [--check 200]

Maps: the golden CUB maps (tests/golden/eval, with their real GT boxes) repeated, and CAM-like maps (a random 7x7 or
14x14 activation grid upsampled with bicubic interpolation and min-max normalised, as `wsol.cam.to_scoremaps` does)
with a GT box around their strongest region. The reference loop below is written from the reference's description,
independently of wsol.metrics: per threshold cv2.threshold + cv2.findContours (RETR_TREE, CHAIN_APPROX_SIMPLE),
bounding rectangles, then one IoU computation per image.

Before timing, `--check` extra 224x224 maps of harder kinds (rings and pitted blobs with holes, many small blobs,
plateaus / steps, noise, near-constant maps) with random GT boxes are compared with the same loop, image by image and
threshold by threshold, with and without multi-contour evaluation. Any difference stops the benchmark.
"""
import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from wsol.metadata import Metadata
from wsol.metrics import BoxEvaluator, box_hits

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


def hard_map(rng, kind, size=224):
    "A 224x224 map of a kind that stresses the fast path: holes, many blobs, plateaus, noise, (near-)constant."
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    if kind == 'ring':  # annuli: components with holes over many levels
        z = sum(np.exp(-((np.hypot(yy - rng.uniform(0, size), xx - rng.uniform(0, size)) - rng.uniform(10, 60)) / rng.uniform(3, 12)) ** 2)
                for _ in range(rng.integers(1, 4))) + 0.15 * rng.random((size, size))
    elif kind == 'pitted':  # a smooth blob with dips: holes that open and close as the threshold rises
        z = np.exp(-((yy - rng.uniform(60, 160)) ** 2 + (xx - rng.uniform(60, 160)) ** 2) / (2 * rng.uniform(30, 60) ** 2))
        for _ in range(rng.integers(3, 15)):
            z -= rng.uniform(0.1, 0.5) * np.exp(-((yy - rng.uniform(0, size)) ** 2 + (xx - rng.uniform(0, size)) ** 2) / (2 * rng.uniform(2, 10) ** 2))
    elif kind == 'speckle':  # many small blobs
        z = cv2.GaussianBlur(rng.random((size, size)) ** 4, (0, 0), rng.uniform(0.7, 2.5))
    elif kind == 'steps':  # plateaus: few distinct values, large flat regions
        g = rng.integers(4, 16)
        z = cv2.resize(rng.integers(0, rng.integers(2, 8), (g, g)).astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST).astype(np.float64)
    elif kind == 'noise':
        z = rng.random((size, size))
    else:  # near-constant: one or two values
        z = np.full((size, size), rng.uniform(0, 1)); z[rng.integers(0, size, 5), rng.integers(0, size, 5)] = rng.uniform(0, 1)
    z = z - z.min()
    z = z / max(z.max(), 1e-12) * rng.choice([1, 1, 1, 0.5, 0.02])
    return np.clip(z, 0, 1)


def random_gt(rng, size=224):
    "1-3 random GT boxes (x0, y0, x1, y1), inclusive, inside the map."
    k = rng.integers(1, 4)
    x0, y0 = rng.integers(0, size, k), rng.integers(0, size, k)
    return np.stack([x0, y0, rng.integers(x0, size), rng.integers(y0, size)], 1)


def check_hard(n, thresholds, ious, seed=1):
    "Compare box_hits with the reference loop on n hard maps, both contour modes; returns the number of comparisons."
    rng = np.random.default_rng(seed)
    kinds = ('ring', 'pitted', 'speckle', 'steps', 'noise', 'constant')
    for k in range(n):
        kind = kinds[k % len(kinds)]
        s, gt = hard_map(rng, kind), random_gt(rng)
        u = (s * 255).astype(np.uint8)
        for multi in (True, False):
            ref = reference_accuracy_hits(s, gt, thresholds, ious, multi)
            ours = box_hits(u, gt, thresholds, ious, multi)
            if not np.array_equal(ref, ours):
                bad = np.argwhere(ref != ours)[0]
                raise SystemExit(f"MISMATCH on hard map {k} ({kind}), multi_contour={multi}: IoU {ious[bad[0]]}%, "
                                 f"threshold {thresholds[bad[1]]:.4f}: reference {ref[tuple(bad)]}, ours {ours[tuple(bad)]}")
    return 2 * n


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
    p.add_argument('--check', type=int, default=12, help="hard random maps compared with the reference first (0: none)")
    p.add_argument('--repeat', type=int, default=1, help="time each evaluator this many times (best run is reported)")
    args = p.parse_args()
    if args.cpus and hasattr(os, 'sched_setaffinity'):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.cpus])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    ids, maps, md = build(args.n, kind=args.maps)
    thresholds = np.arange(0, 1, args.interval)
    ious = (30, 50, 70)
    what = {'mixed': 'half golden CUB, half CAM-like', 'golden': 'golden CUB, repeated', 'camlike': 'CAM-like'}[args.maps]
    print(f"{args.n} maps 224x224 ({what}), cam_curve_interval={args.interval} "
          f"({len(thresholds)} thresholds), {cpus} CPUs, OpenCV {cv2.__version__}, NumPy {np.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.check:
        t = time.perf_counter()
        done = check_hard(args.check, thresholds, ious)
        print(f"hard random maps (rings, pitted blobs, speckle, plateaus, noise, constant): {done} map x contour-mode "
              f"comparisons, identical per image and per threshold ({time.perf_counter() - t:.0f} s)")
    for multi in (True, False):  # compile (or load from numba's cache) before timing: once per process
        box_hits((maps[0] * 255).astype(np.uint8), md.boxes[ids[0]], thresholds, ious, multi)
    for multi in (True, False):
        t_ref = float('inf')
        for _ in range(args.repeat):
            t = time.perf_counter()
            ref = [reference_accuracy_hits(s, md.boxes[i], thresholds, ious, multi) for s, i in zip(maps, ids)]
            t_ref = min(t_ref, time.perf_counter() - t)
        ref_curves = np.sum(ref, 0) * 100. / float(len(ref))
        rates = {}
        for workers in (0, args.workers):
            rates[workers] = 0.
            for _ in range(args.repeat):
                t = time.perf_counter()
                with BoxEvaluator(md, args.interval, ious, multi, image_size=224, workers=workers) as ev:
                    for a in range(0, len(ids), args.batch):
                        ev.accumulate(np.stack(maps[a:a + args.batch]), ids[a:a + args.batch])
                    r = ev.compute()
                rates[workers] = max(rates[workers], len(ids) / (time.perf_counter() - t))
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

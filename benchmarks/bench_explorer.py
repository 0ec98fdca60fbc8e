"""Update latency of the CAM explorer (`wsol.explorer`) on the CPU: what one control change costs in the kernel, from
the new widget value to the new PNG images and info text (the browser's part, decoding a PNG, is not included).

    python benchmarks/bench_explorer.py [--run outputs/SYNTH_tinyresnet_bridging-gap] [--compare RUN] [--repeats 30]

Without --run it trains a small run of a few steps on a small SYNTH in a temporary folder (seconds) and explores it.
Timed, each as the median (and 90th percentile) over --repeats:

- slider move: the threshold slider set to another value of the grid (cached image: look up boxes, redraw, encode);
- image change, cached: the image slider set to an image seen before;
- image change, new image: the cache emptied first, so the forward pass, score map, decomposition and the boxes at
  every threshold are computed;
- for comparison, the same view drawn as one matplotlib figure (four panels and the threshold curve) and saved as PNG,
  the other rendering approach the explorer could take.
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use('Agg')
from matplotlib.figure import Figure  # noqa: E402

from wsol.config import make_config  # noqa: E402
from wsol.explorer import explore  # noqa: E402
from wsol.explorer_state import boxes_at, grid_index  # noqa: E402
from wsol.train import train  # noqa: E402


def tiny_run(folder: Path) -> Path:
    "A bridging-gap run of three steps on a small SYNTH (8 training, 3 test images per class)."
    small = dict(train_per_class=8, val_per_class=2, test_per_class=3, proxy_per_class=0)
    cfg = make_config('SYNTH', data_root=str(folder/'data'), metadata_root=str(folder/'metadata'), synth=small,
                      workers=0, device='cpu', pretrained=False, epochs=1, warm_epochs=0, max_steps_per_epoch=3,
                      batch_size=16, warm_batch_size=16, output_dir=str(folder/'run'))
    train(cfg, progress=False)
    return folder/'run'


def timed(action, repeats: int) -> list:
    "Milliseconds of each of `repeats` calls of action(k)."
    out = []
    for k in range(repeats):
        t = time.perf_counter()
        action(k)
        out.append(1000 * (time.perf_counter() - t))
    return out


def matplotlib_view(state, threshold, multi, curves, thresholds) -> bytes:
    "The alternative: the same panels and the curve drawn by matplotlib and saved as PNG."
    boxes, iou = boxes_at(state, threshold, multi)
    fig = Figure(figsize=(12, 2.6), dpi=100)
    axes = fig.subplots(1, 5)
    axes[0].imshow(state.rgb)
    for (x0, y0, x1, y1), color in [(b, 'lime') for b in state.gt_boxes] + [(b, 'red') for b in boxes]:
        axes[0].add_patch(matplotlib.patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=color))
    axes[1].imshow(state.rgb); axes[1].imshow(state.scoremap, cmap='jet', alpha=0.5)
    axes[2].imshow(state.feature_norm, cmap='viridis')
    axes[3].imshow(state.cosine, cmap='coolwarm', vmin=-1, vmax=1)
    for c in curves: axes[4].plot(thresholds, curves[c].to_numpy(), label=c)
    axes[4].plot(thresholds, 100 * state.ious(multi), color='m')
    axes[4].axvline(threshold, color='k', ls='--')
    axes[4].legend(fontsize=6)
    for ax in axes[:4]: ax.axis('off')
    fig.suptitle(f'IoU {iou:.3f} at {threshold:.3f}', fontsize=9)
    buf = __import__('io').BytesIO()
    fig.savefig(buf, format='png')
    return buf.getvalue()


def summary(name: str, ms: list) -> str:
    return f"{name:<38} median {statistics.median(ms):7.1f} ms   p90 {np.percentile(ms, 90):7.1f} ms   (n={len(ms)})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--run', default=None, help='run folder or checkpoint to explore (default: a small run made here)')
    p.add_argument('--compare', default=None, help='a second run or checkpoint, side by side')
    p.add_argument('--split', default='test')
    p.add_argument('--repeats', type=int, default=30)
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1: a laptop-like single core)')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else tiny_run(Path(tmp))
        t = time.perf_counter()
        ex = explore(run, args.split, compare=args.compare, device='cpu')
        opened = time.perf_counter() - t
        first, summ = ex.runs[0]
        grid = [float(v) for v in first.thresholds]
        j0 = grid_index(grid, ex.threshold.value)
        n = len(ex.order)
        print(f"explorer on {run} ({first.cfg.dataset}/{args.split}, {n} images, {len(grid)} thresholds, "
              f"{len(ex.runs)} run{'s' if len(ex.runs) > 1 else ''}, score maps {first.cfg.crop_size}px, "
              f"{torch.get_num_threads()} torch thread(s)); opened in {opened:.1f} s")

        def move(k):  # alternate between neighbouring grid values around the start threshold
            ex.threshold.value = grid[min(max(j0 + (1 if k % 2 == 0 else -1) * (1 + k % 5), 0), len(grid) - 1)]
        slider = timed(move, args.repeats)

        m = max(2, min(n, args.repeats))  # images visited (the slider counts from 1)
        def show(position):  # a different image each time, so that the control fires
            ex.position.value = position if position != ex.position.value else position % m + 1
        for k in range(1, m + 1): show(k)  # fill the cache
        cached = timed(lambda k: show((k * 7) % m + 1), args.repeats)

        def new_image(k):
            ex.cache.states.clear()
            show((k * 5 + 3) % n + 1)
        fresh = timed(new_image, args.repeats)

        st = ex.cache.state(0, first, ex.order[ex.position.value - 1], 'gt')
        curves = summ.curves[ex.multi_contour.value]
        mpl = timed(lambda k: matplotlib_view(st, grid[(j0 + k) % len(grid)], ex.multi_contour.value, curves,
                                              curves.index.to_numpy()), max(5, args.repeats // 3))
    print(summary('slider move (threshold)', slider))
    print(summary('image change (cached image)', cached))
    print(summary('image change (new image: forward + boxes)', fresh))
    print(summary('alternative: matplotlib figure -> PNG', mpl))


if __name__ == '__main__':
    main()

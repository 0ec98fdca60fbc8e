"""What mixed precision changes in the evaluation: score maps and box decisions of the same seeded model in float32
and under autocast (bfloat16 on the CPU as a proxy; on a GPU also float16).

For each architecture a model is built with `torch.manual_seed(seed)` (no pretrained weights), SYNTH test images are
evaluated at 224 px, and the ground-truth class's score maps (`wsol.evaluation.scoremaps`, the evaluation's own path)
are compared: the share of uint8 score-map pixels (`wsol.metrics.quantize_scoremap`) that differ, and how many of the
box decisions "IoU >= 0.5 at threshold tau" (100 thresholds per image, `wsol.metrics.box_hits`) flip.

    python benchmarks/amp_fidelity.py --images 12 --data_root data --metadata_root metadata
"""
import argparse

import numpy as np
import pandas as pd
import torch

from wsol.config import make_config
from wsol.data import dataset_for, make_loader, prepare_data
from wsol.evaluation import scoremaps
from wsol.methods import method_for, model_for
from wsol.metrics import box_hits, quantize_scoremap
from wsol.runtime import resolve_device


def maps_and_hits(model, cfg, loader, device, amp, dtype=None):
    "Score maps (N, 224, 224) and box decisions (N, 100) of `loader` with autocast on or off."
    maps = []
    if dtype is not None:  # force a specific autocast dtype (float16 on a GPU)
        import wsol.evaluation as ev
        original = ev.autocast_dtype
        ev.autocast_dtype = lambda d, a: dtype if a else None
    try:
        for ids, _, _, m in scoremaps(model, method_for(cfg.method), loader, cfg.crop_size, device, amp): maps.append(m)
    finally:
        if dtype is not None: ev.autocast_dtype = original
    u = np.stack([quantize_scoremap(m) for m in np.concatenate(maps)])
    return u


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--architectures', default='resnet50,vgg16')
    p.add_argument('--images', type=int, default=12)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--device', default='cpu', help='cpu | cuda')
    p.add_argument('--data_root', default='data')
    p.add_argument('--metadata_root', default='metadata')
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    rows = []
    for arch in args.architectures.split(','):
        cfg = make_config('SYNTH', architecture=arch, method='bridging-gap', pretrained=False, crop_size=224,
                          resize_size=256, batch_size=4, workers=0, data_root=args.data_root,
                          metadata_root=args.metadata_root, large_feature_map=arch == 'resnet50')
        prepare_data(cfg, splits=('test',))
        test = dataset_for(cfg, 'test')
        subset = torch.utils.data.Subset(test, np.linspace(0, len(test) - 1, args.images).round().astype(int).tolist())
        loader = make_loader(subset, cfg.batch_size)
        torch.manual_seed(args.seed)
        model = model_for(cfg, 12).to(device).eval()
        fp32 = maps_and_hits(model, cfg, loader, device, amp=False)
        gts = [test.metadata.boxes[test.image_ids[i]] for i in subset.indices]
        sizes = [test.metadata.sizes[test.image_ids[i]] for i in subset.indices]
        scale = lambda b, s: [round(b[0] * 224 / s[0]), round(b[1] * 224 / s[1]), round(b[2] * 224 / s[0]), round(b[3] * 224 / s[1])]
        gt = [[scale(b, s) for b in bs] for bs, s in zip(gts, sizes)]
        tau = np.arange(0, 1, 0.01)
        hits = lambda u: np.stack([box_hits(ui, g, tau, (50,))[0] for ui, g in zip(u, gt)])
        h32 = hits(fp32)
        kinds = [('bfloat16', torch.bfloat16)] + ([('float16', torch.float16)] if device.type == 'cuda' else [])
        for name, dtype in kinds:
            low = maps_and_hits(model, cfg, loader, device, amp=True, dtype=dtype)
            flips = int((hits(low) != h32).sum())
            rows.append({'architecture': arch, 'device': device.type, 'autocast': name,
                         'uint8 pixels changed (%)': 100 * float((low != fp32).mean()),
                         'box decisions flipped': f"{flips} of {h32.size}"})
    print(pd.DataFrame(rows).round(1).to_string(index=False))


if __name__ == '__main__':
    main()

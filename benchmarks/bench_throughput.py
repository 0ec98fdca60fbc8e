"""Training and evaluation throughput (images/s) of wsol's own training step and evaluation, with the data
loader excluded (in-memory tensors) and included (SYNTH images read from disk), so you can see where time goes.

    python benchmarks/bench_throughput.py --architecture tinyresnet --batch_size 32
    python benchmarks/bench_throughput.py --architecture resnet50 --batch_size 8 --steps 3
    python benchmarks/bench_throughput.py --architecture resnet50 --batch_size 64 --device cuda --workers 8

The training step is `wsol.train.train_one_epoch` (forward, losses in float32, backward, SGD step; autocast and
channels_last on CUDA); evaluation is what `wsol.evaluation.evaluate_model` does per batch (forward, ground-truth-class
CAMs, score maps, MaxBoxAccV2 evaluator), timed stage by stage. "SYNTH loader" rows read and transform the
images with the training/evaluation data pipeline (`--workers` processes).
"""
import argparse
import time

import torch

from wsol.cam import to_scoremaps
from wsol.config import make_config, parse_bool
from wsol.data import dataset_for, make_loader, prepare_data
from wsol.evaluation import evaluate_model
from wsol.methods import method_for, model_for
from wsol.metrics import BoxEvaluator
from wsol.runtime import autocast_dtype, resolve_device
from wsol.train import build_optimizer, train_one_epoch



def _switch(value: str) -> bool:
    try: return parse_bool(value)
    except ValueError as e: raise argparse.ArgumentTypeError(str(e)) from None

def _sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def _clock(fn, device) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--architecture', default='tinyresnet', help='tinyresnet | resnet50 | vgg16')
    p.add_argument('--method', default='bridging-gap', help='bridging-gap | cam')
    p.add_argument('--batch_size', type=int, default=32)
    p.add_argument('--image_size', type=int, default=0, help='crop size (0: 64 for tinyresnet, 224 otherwise)')
    p.add_argument('--large_feature_map', type=_switch, default=None, help='true | false (default: the preset)')
    p.add_argument('--device', default='auto', help='auto | cpu | cuda')
    p.add_argument('--amp', type=_switch, default=False, help='true | false (default: off, float32)')
    p.add_argument('--steps', type=int, default=10, help='timed batches per measurement (after 2 warm-up batches)')
    p.add_argument('--workers', type=int, default=2, help='data loader processes for the SYNTH loader rows')
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default)')
    p.add_argument('--cam_curve_interval', type=float, default=0.01)
    p.add_argument('--data_root', default='data')
    p.add_argument('--metadata_root', default='metadata')
    args = p.parse_args(argv)
    if args.threads: torch.set_num_threads(args.threads)
    size = args.image_size or (64 if args.architecture == 'tinyresnet' else 224)
    B, steps, warm = args.batch_size, args.steps, 2
    cfg = make_config('SYNTH', architecture=args.architecture, method=args.method, pretrained=False,
                      large_feature_map=args.large_feature_map, batch_size=B, warm_batch_size=B, epochs=1, warm_epochs=0,
                      crop_size=size, resize_size=max(size, round(size * 256 / 224)), device=args.device, amp=args.amp,
                      workers=args.workers, cam_curve_interval=args.cam_curve_interval, data_root=args.data_root,
                      metadata_root=args.metadata_root, output_dir='unused')
    device = resolve_device(cfg.device)
    dtype = autocast_dtype(device, cfg.amp)
    prepare_data(cfg, splits=('train', 'val'))
    torch.manual_seed(0)
    model = model_for(cfg, num_classes=12).to(device)
    if device.type == 'cuda':
        model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    optimizer = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    rows = []

    def add(phase, data, seconds, images):
        rows.append((phase, data, images / seconds, 1000 * seconds / (images / B)))

    # --- training
    fake = [(torch.randn(B, 3, size, size, device=device), torch.randint(0, 12, (B,), device=device), [''] * B)]

    def run_train(batches, n):
        train_one_epoch(model, model, batches, optimizer, scaler, cfg.__class__(**{**cfg.to_dict(), 'max_steps_per_epoch': n}),
                        1, device, progress=False)

    run_train(fake * warm, warm)
    add('train', 'in-memory tensors', _clock(lambda: run_train(fake * steps, steps), device), steps * B)
    train_set = dataset_for(cfg, 'train')
    n = min(steps, len(train_set) // B)
    loader = lambda: make_loader(train_set, B, shuffle=True, workers=cfg.workers, generator=torch.Generator().manual_seed(0),
                                 pin_memory=device.type == 'cuda')
    run_train(loader(), warm)
    add('train', f'SYNTH loader ({cfg.workers} workers)', _clock(lambda: run_train(loader(), n), device), n * B)
    add('load', f'SYNTH train batches only ({cfg.workers} workers)',
        _clock(lambda: [None for _, _ in zip(range(n), loader())], device), n * B)

    # --- evaluation, stage by stage, on in-memory val images
    val = dataset_for(cfg, 'val')
    ids = val.image_ids[:B]
    images = torch.stack([val[i][0] for i in range(B)]).to(device)
    labels = torch.tensor([val[i][1] for i in range(B)], device=device)
    if device.type == 'cuda': images = images.contiguous(memory_format=torch.channels_last)
    model.eval()

    @torch.no_grad()
    def forward():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return model(images)

    def scoremaps():
        out = forward()
        return to_scoremaps(method_for(cfg.method).cam(model, out, labels), (size, size))

    def full():
        BoxEvaluator(val.metadata, cfg.cam_curve_interval, image_size=size).accumulate(scoremaps(), ids)

    for fn, what in ((forward, 'forward only'), (scoremaps, '+ CAMs and score maps'), (full, '+ MaxBoxAccV2 evaluator')):
        for _ in range(warm): fn()
        add('eval', f'in-memory, {what}', _clock(lambda: [fn() for _ in range(steps)], device), steps * B)
    n_eval = min(len(val), steps * B)
    eval_cfg = cfg.__class__(**{**cfg.to_dict(), 'max_eval_images': n_eval})
    add('eval', f'SYNTH loader, all stages ({cfg.workers} workers)',
        _clock(lambda: evaluate_model(model, eval_cfg, 'val', device, progress=False), device), n_eval)

    threads = f', {torch.get_num_threads()} CPU threads' if device.type == 'cpu' else f' ({torch.cuda.get_device_name(device)})'
    print(f"wsol throughput: {cfg.architecture} / {cfg.method}, batch {B}, {size}x{size}, device {device}{threads}, "
          f"autocast {dtype}, {steps} timed batches each")
    print(f"{'phase':6} {'data':52} {'images/s':>10} {'ms/batch':>10}")
    for phase, data, ips, ms in rows:
        print(f"{phase:6} {data:52} {ips:10.1f} {ms:10.1f}")
    return rows


if __name__ == '__main__':
    main()

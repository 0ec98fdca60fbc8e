"""Generate reference outputs of the official wsolevaluation code (Choe et al., CVPR 2020) for wsol's tests.

The outputs let tests check that wsol reproduces wsolevaluation's models, CAMs, score maps and box metrics exactly,
on four real photos and on deterministic weights that depend on no model code (`tests/wsolevaluation_refs/weights.py`).

Regenerate (CPU only, about 10 minutes on one core):

    git clone https://github.com/clovaai/wsolevaluation /tmp/wsolevaluation
    git -C /tmp/wsolevaluation checkout 96f4b88679af41f005824661f47e6fe3628af2aa
    python tools/wsolevaluation_refs.py --wsolevaluation /tmp/wsolevaluation --out tests/wsolevaluation_refs

Needs torch, torchvision, opencv-python, numpy, Pillow and scikit-image (for the photos). wsolevaluation itself is not
modified: this script only sets `np.float = float` and `np.int = int` (the aliases its code uses, removed from numpy
1.24), makes `torch.Tensor.cuda` return the tensor itself (its inference code calls `.cuda()`), provides a minimal
`munch` module when munch is not installed (its data loader uses `munch.Munch` as an attribute dict), and runs with
one torch thread. --out must hold `weights.py` (hand-written, not generated; it is imported from there). It writes,
under --out:

    data/CUB/skimage/{chelsea,coffee,astronaut,rocket}.jpg   four scikit-image photos, longest side 400, JPEG q90
    metadata/CUB/test/{image_ids,class_labels,image_sizes,localization}.txt   wsolevaluation's metadata layout
    manifests.json   {'manifests': {architecture: {architecture_type: [[key, shape, dtype], ...]}}} -- each model's
                     state_dict in order, built with large_feature_map=False -- and 'large_feature_map_manifests',
                     the same for the models whose keys change with large_feature_map=True (VGG16 CAM and ADL: the
                     4th max-pool is left out of `features`, so the last three convs are renumbered; shapes and
                     dtypes never change). outputs.json names each variant's manifest.
    outputs.npz      per variant V: 'V/logits' (4, 200) float32, 'V/cams' (4, h, w) float32 (raw CAMs), and without
                     large_feature_map 'V/scoremap0' (224, 224) uint16 = round(65535 * normalised score map of the
                     first image), as inference.py's CAMComputer saves it (cv2 INTER_CUBIC resize, normalize_scoremap)
    outputs.json     the settings, the images, and per variant the metrics of CAMComputer.compute_and_evaluate_cams()
                     (BoxEvaluator MaxBoxAcc at IoU 30/50/70, multi_contour_eval True and False), top-1 accuracy (%)
                     and the feature-map size

Variants: `<architecture>_<architecture_type>` for vgg16, resnet50, inception_v3 x cam, acol, spg, adl, with suffix
`_lfm` for large_feature_map=True, plus `<architecture>_acol_thr0.5[_lfm]` (ACoL with acol_drop_threshold=0.5: ACoL's
CAM depends on the drop threshold at test time). All use `seeded_state_dict(manifest, seed=0)`, loaded strictly,
model.eval(), and the test loader of wsolevaluation's own `get_data_loader` (batch size 4, no workers).
`outputs.npz` is written with fixed zip timestamps so that a rerun gives a byte-identical file.
"""
import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import types
import warnings
import zipfile
from pathlib import Path

import numpy as np

ARCHITECTURES = ('vgg16', 'resnet50', 'inception_v3')
ARCHITECTURE_TYPES = ('cam', 'acol', 'spg', 'adl')
NUM_CLASSES = 200  # CUB
MODEL_KWARGS = dict(dataset_name='CUB', pretrained=False, pretrained_path=None, num_classes=NUM_CLASSES,
                    adl_drop_rate=0.75, adl_drop_threshold=0.9, acol_drop_threshold=0.7)  # main.py's _set_model
EXTRA_ACOL_THRESHOLD = 0.5
SEED = 0
IOU_THRESHOLDS = [30, 50, 70]
CAM_CURVE_INTERVAL = 0.01
BATCH_SIZE = 4
RESIZE_SIZE, CROP_SIZE = 256, 224  # wsolevaluation's config defaults; the test transform is Resize((224, 224))
MAX_SIDE = 400
JPEG_QUALITY = 90

# (skimage.data function, image id, class label, object box x0, y0, x1, y1 in the saved (resized) image, inclusive).
# Boxes were chosen by hand on the resized photos:
PHOTOS = [
    ('chelsea', 'skimage/chelsea.jpg', 17, (15, 0, 345, 265)),       # 400x266: the cat's head
    ('coffee', 'skimage/coffee.jpg', 53, (113, 12, 272, 206)),       # 400x267: the cup (without saucer and spoon)
    ('astronaut', 'skimage/astronaut.jpg', 101, (15, 10, 285, 399)),  # 400x400: the astronaut, down to the image edge
    ('rocket', 'skimage/rocket.jpg', 188, (188, 78, 213, 256)),     # 400x267: the rocket on the launch pad
]


def atomic_write_bytes(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.' + path.name + '.')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def import_wsolevaluation(root: Path):
    """Import wsolevaluation's modules from `root` with the shims described in the module docstring."""
    for name in ('inference.py', 'evaluation.py', 'data_loaders.py', 'util.py', 'wsol/vgg.py'):
        if not (root / name).is_file():
            sys.exit(f"--wsolevaluation: {root} has no {name}; pass a checkout of clovaai/wsolevaluation")
    np.float = float  # removed numpy aliases used by wsolevaluation (same meaning)
    np.int = int
    try:
        import munch  # noqa: F401
    except ImportError:
        shim = types.ModuleType('munch')

        class Munch(dict):
            __getattr__ = dict.__getitem__
            __setattr__ = dict.__setitem__

        shim.Munch = Munch
        sys.modules['munch'] = shim
    import torch
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # CPU only
    for name in ('wsol', 'inference', 'evaluation', 'data_loaders', 'util', 'config'):
        if name in sys.modules:
            sys.exit(f"a module named {name!r} is already imported; run this script as a plain script")
    sys.path.insert(0, str(root))
    import data_loaders
    import inference
    import wsol as ref_wsol
    if Path(ref_wsol.__file__).resolve().parent != (root / 'wsol').resolve():
        sys.exit(f"imported wsol from {ref_wsol.__file__}, not from {root}")
    return types.SimpleNamespace(wsol=ref_wsol, inference=inference, data_loaders=data_loaders)


def write_dataset(out: Path):
    """Four scikit-image photos in wsolevaluation's CUB layout, split 'test'."""
    import skimage.data
    from PIL import Image
    lines = {'image_ids': [], 'class_labels': [], 'image_sizes': [], 'localization': []}
    labels = [label for _, _, label, _ in PHOTOS]
    assert len(set(labels)) == len(labels) and all(0 <= x < NUM_CLASSES for x in labels)
    for func, image_id, label, box in PHOTOS:
        image = Image.fromarray(getattr(skimage.data, func)())
        w, h = image.size
        scale = MAX_SIDE / max(w, h)
        image = image.resize((round(w * scale), round(h * scale)), Image.LANCZOS)
        w, h = image.size
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 < w and 0 <= y0 < y1 < h, (image_id, box, (w, h))
        buf = io.BytesIO()
        image.save(buf, format='JPEG', quality=JPEG_QUALITY)
        atomic_write_bytes(out / 'data' / 'CUB' / image_id, buf.getvalue())
        lines['image_ids'].append(image_id)
        lines['class_labels'].append(f'{image_id},{label}')
        lines['image_sizes'].append(f'{image_id},{w},{h}')
        lines['localization'].append(f'{image_id},{x0},{y0},{x1},{y1}')
    for name, rows in lines.items():
        atomic_write_bytes(out / 'metadata' / 'CUB' / 'test' / f'{name}.txt', ('\n'.join(rows) + '\n').encode())


def build_model(ref, architecture, architecture_type, large_feature_map, acol_drop_threshold=None):
    kwargs = dict(MODEL_KWARGS, architecture_type=architecture_type, large_feature_map=large_feature_map)
    if acol_drop_threshold is not None:
        kwargs['acol_drop_threshold'] = acol_drop_threshold
    return ref.wsol.__dict__[architecture](**kwargs)


def manifest_of(model):
    return [[key, list(t.shape), str(t.dtype)] for key, t in model.state_dict().items()]


def manifest_path(manifests, architecture, architecture_type, large_feature_map):
    """Where a variant's manifest lives in manifests.json: (section, architecture, architecture_type)."""
    if large_feature_map and architecture_type in manifests['large_feature_map_manifests'].get(architecture, {}):
        return 'large_feature_map_manifests', architecture, architecture_type
    return 'manifests', architecture, architecture_type


def write_manifests(ref, out: Path):
    """manifests.json: 'manifests' (large_feature_map=False) and 'large_feature_map_manifests' (only the models whose
    state-dict keys change with large_feature_map=True: VGG16 CAM and ADL renumber the convs after the dropped pool)."""
    small_all, large_only = {}, {}
    for architecture in ARCHITECTURES:
        small_all[architecture] = {}
        for architecture_type in ARCHITECTURE_TYPES:
            small, large = (manifest_of(build_model(ref, architecture, architecture_type, lfm)) for lfm in (False, True))
            # Shapes and dtypes never depend on large_feature_map; for some models the key names do.
            assert [e[1:] for e in small] == [e[1:] for e in large], f"{architecture}/{architecture_type}: shapes differ"
            small_all[architecture][architecture_type] = small
            if small != large:
                large_only.setdefault(architecture, {})[architecture_type] = large
    doc = {'manifests': small_all, 'large_feature_map_manifests': large_only}

    def dump(by_arch, indent):
        parts = []
        for architecture, by_type in by_arch.items():
            types_ = [f'{indent}    {json.dumps(t)}: [\n'
                      + ',\n'.join(f'{indent}      {json.dumps(e, separators=(",", ":"))}' for e in m)
                      + f'\n{indent}    ]' for t, m in by_type.items()]
            parts.append(f'{indent}  {json.dumps(architecture)}: {{\n' + ',\n'.join(types_) + f'\n{indent}  }}')
        return '{\n' + ',\n'.join(parts) + f'\n{indent}}}'

    # One entry per line: readable and diff-friendly.
    text = ('{\n' + ',\n'.join(f'  {json.dumps(section)}: {dump(by_arch, "  ")}' for section, by_arch in doc.items())
            + '\n}\n')
    assert json.loads(text) == doc
    atomic_write_bytes(out / 'manifests.json', text.encode())
    return doc


def variants():
    for architecture in ARCHITECTURES:
        for architecture_type in ARCHITECTURE_TYPES:
            for lfm in (False, True):
                yield f"{architecture}_{architecture_type}{'_lfm' if lfm else ''}", architecture, architecture_type, lfm, None
    for architecture in ARCHITECTURES:
        for lfm in (False, True):
            name = f"{architecture}_acol_thr{EXTRA_ACOL_THRESHOLD}{'_lfm' if lfm else ''}"
            yield name, architecture, 'acol', lfm, EXTRA_ACOL_THRESHOLD


def run_variant(ref, manifests, loader, metadata_root, log_root, name, architecture, architecture_type, lfm, thr):
    import cv2
    import torch
    from weights import seeded_state_dict
    model = build_model(ref, architecture, architecture_type, lfm, thr)
    section = manifest_path(manifests, architecture, architecture_type, lfm)
    manifest = manifests[section[0]][architecture][architecture_type]
    assert manifest == manifest_of(model)
    model.load_state_dict(seeded_state_dict(manifest, SEED), strict=True)
    model.eval()
    max_act = [0.0]

    def hook(module, inputs, output):
        if torch.is_tensor(output):
            max_act[0] = max(max_act[0], output.detach().abs().max().item())

    handles = [m.register_forward_hook(hook) for m in model.children()]
    batches = list(loader)
    assert len(batches) == 1, "expected the four images in one batch"
    images, targets, image_ids = batches[0]
    with torch.no_grad():
        logits = model(images)['logits']
        cams = model(images, targets, return_cam=True)
    for h in handles:
        h.remove()
    logits_np = logits.numpy().astype(np.float32)
    cams_np = cams.numpy().astype(np.float32)
    # main.py's Trainer._compute_accuracy, on these logits
    top1 = (logits.argmax(dim=1) == targets).sum().item() / float(images.size(0)) * 100
    # inference.py's per-image score map, recomputed here to check the one CAMComputer saves
    expected0 = ref.inference.normalize_scoremap(
        cv2.resize(ref.inference.t2n(cams)[0], images.shape[2:], interpolation=cv2.INTER_CUBIC))

    metrics, scoremap0 = {}, None
    for multi_contour in (True, False):
        log_folder = log_root / name / ('multi_contour' if multi_contour else 'single_contour')
        computer = ref.inference.CAMComputer(
            model=model, loader=loader, metadata_root=str(metadata_root), mask_root=None,
            iou_threshold_list=IOU_THRESHOLDS, dataset_name='CUB', split='test',
            multi_contour_eval=multi_contour, cam_curve_interval=CAM_CURVE_INTERVAL, log_folder=str(log_folder))
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            max_box_acc = computer.compute_and_evaluate_cams()
        metrics['multi_contour' if multi_contour else 'single_contour'] = {
            str(t): float(v) for t, v in zip(IOU_THRESHOLDS, max_box_acc)}
        saved = np.load(log_folder / 'scoremaps' / (image_ids[0] + '.npy'))
        assert saved.dtype == np.float64 and np.array_equal(saved, expected0), f"{name}: score map differs"
        assert scoremap0 is None or np.array_equal(saved, scoremap0)
        scoremap0 = saved
    arrays = {f'{name}/logits': logits_np, f'{name}/cams': cams_np}
    if not lfm:
        assert 0 <= scoremap0.min() and scoremap0.max() <= 1
        arrays[f'{name}/scoremap0'] = np.round(scoremap0 * 65535).astype(np.uint16)
    for key, a in arrays.items():
        assert np.isfinite(a).all(), f"{key} is not finite"
    assert np.isfinite(max_act[0])
    info = {
        'architecture': architecture, 'architecture_type': architecture_type, 'large_feature_map': lfm,
        'acol_drop_threshold': thr if thr is not None else MODEL_KWARGS['acol_drop_threshold'],
        'manifest': '/'.join(section),
        'feature_map_size': list(cams_np.shape[1:]),
        'top1': top1,
        'max_box_acc': metrics,
        'max_box_acc_v2': float(np.mean(list(metrics['multi_contour'].values()))),
        'max_abs_activation': float(np.float32(max_act[0])),
    }
    row = (name, 'x'.join(map(str, cams_np.shape)), f'{cams_np.min():.3g}..{cams_np.max():.3g}',
           f'{logits_np.min():.3g}..{logits_np.max():.3g}', f'{max_act[0]:.3g}', f"{info['max_box_acc_v2']:.2f}")
    return arrays, info, row


def write_npz(path: Path, arrays: dict):
    """A compressed .npz (what np.savez_compressed writes) with fixed zip timestamps, hence reproducible bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', compression=zipfile.ZIP_DEFLATED) as zf:
        for key, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(key + '.npy', date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue())
    atomic_write_bytes(path, buf.getvalue())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--wsolevaluation', required=True, type=Path, help='checkout of clovaai/wsolevaluation@96f4b88')
    parser.add_argument('--out', required=True, type=Path, help='output folder (tests/wsolevaluation_refs)')
    args = parser.parse_args(argv)
    out = args.out.resolve()
    if not (out / 'weights.py').is_file():
        sys.exit(f"--out: {out} has no weights.py (the seeded weights module); pass tests/wsolevaluation_refs "
                 "or a folder holding a copy of it")
    sys.path.insert(0, str(out))
    ref = import_wsolevaluation(args.wsolevaluation.resolve())
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    warnings.filterwarnings('ignore', message='.*align_corners.*')  # SPG's nn.Upsample(mode='bilinear')

    write_dataset(out)
    manifests = write_manifests(ref, out)
    with tempfile.TemporaryDirectory(prefix='wsolevaluation_refs_') as tmp:
        tmp = Path(tmp)
        # get_data_loader builds train/val/test loaders; all three read our test metadata.
        for split in ('train', 'val', 'test'):
            (tmp / 'metadata').mkdir(exist_ok=True)
            os.symlink(out / 'metadata' / 'CUB' / 'test', tmp / 'metadata' / split)
        data_root = str(out / 'data' / 'CUB')
        loader = ref.data_loaders.get_data_loader(
            data_roots={'train': data_root, 'val': data_root, 'test': data_root},
            metadata_root=str(tmp / 'metadata'), batch_size=BATCH_SIZE, workers=0,
            resize_size=RESIZE_SIZE, crop_size=CROP_SIZE, proxy_training_set=False)['test']
        arrays, infos, rows = {}, {}, []
        for name, architecture, architecture_type, lfm, thr in variants():
            t0 = time.time()
            a, info, row = run_variant(ref, manifests, loader, out / 'metadata' / 'CUB' / 'test', tmp / 'logs',
                                       name, architecture, architecture_type, lfm, thr)
            arrays.update(a)
            infos[name] = info
            rows.append(row)
            print(f'{name}: {time.time() - t0:.1f}s', file=sys.stderr, flush=True)
    for architecture in ARCHITECTURES:  # ACoL's logits (branch A) do not depend on the drop threshold
        for suffix in ('', '_lfm'):
            assert np.array_equal(arrays[f'{architecture}_acol{suffix}/logits'],
                                  arrays[f'{architecture}_acol_thr{EXTRA_ACOL_THRESHOLD}{suffix}/logits'])

    write_npz(out / 'outputs.npz', arrays)
    doc = {
        'generator': 'tools/wsolevaluation_refs.py',
        'reference': 'https://github.com/clovaai/wsolevaluation commit 96f4b88679af41f005824661f47e6fe3628af2aa',
        'settings': {
            'seed': SEED,
            'weights': 'weights.seeded_state_dict(manifest, seed); manifest = manifests.json[section][architecture]'
                       '[architecture_type] with "section/architecture/architecture_type" = variants[name].manifest',
            'model_kwargs': MODEL_KWARGS, 'batch_size': BATCH_SIZE, 'crop_size': CROP_SIZE,
            'test_transform': 'Resize((224, 224)), ToTensor, Normalize(ImageNet mean/std)',
            'evaluator': 'BoxEvaluator', 'iou_threshold_list': IOU_THRESHOLDS,
            'cam_curve_interval': CAM_CURVE_INTERVAL,
            'max_box_acc': 'CAMComputer(...).compute_and_evaluate_cams() per IoU threshold (%), '
                           'multi_contour_eval True and False',
            'max_box_acc_v2': 'mean of max_box_acc.multi_contour over the IoU thresholds',
            'top1': '% of images whose argmax of model(images)["logits"] is the label',
            'scoremap0': 'uint16 round(65535 * score map of the first image), large_feature_map False only',
        },
        'images': [{'image_id': image_id, 'label': label, 'box': list(box), 'source': f'skimage.data.{func}()'}
                   for func, image_id, label, box in PHOTOS],
        'variants': infos,
    }
    atomic_write_bytes(out / 'outputs.json', (json.dumps(doc, indent=1) + '\n').encode())

    header = ('variant', 'cams', 'cam range', 'logits range', 'max|act|', 'MaxBoxAccV2')
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print('  '.join(str(c).ljust(w) for c, w in zip(r, widths)))


if __name__ == '__main__':
    main()

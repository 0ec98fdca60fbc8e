"Integration tests of the data layer: SYNTH through loader worker processes, concurrent first use, custom datasets."
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wsol.data import (DATASETS, DatasetInfo, DatasetNotFoundError, WSOLDataset, build_transforms,
                       check_images_present, dataset_info, make_loader)
from wsol.metadata import load_metadata
from wsol.synth import SYNTH_CLASSES, ensure_synth, render_sample, synth_mask_paths

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(train_per_class=6, val_per_class=2, test_per_class=2, proxy_per_class=2)


def _ensure(args):
    data_root, metadata_root = args
    return ensure_synth(data_root, metadata_root, **SMALL)['generated']


def _files(root):
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(Path(root).rglob('*')) if f.is_file()}


def test_concurrent_first_use_generates_once(tmp_path):
    "Several processes (e.g. DDP ranks) asking for SYNTH at once: one generates, the others wait and reuse it."
    args = [(str(tmp_path / 'data'), str(tmp_path / 'metadata'))] * 3
    with mp.get_context('spawn').Pool(3) as pool:
        generated = pool.map(_ensure, args)
    assert sorted(generated) == [False, False, True]
    assert _ensure((tmp_path / 'ref/data', tmp_path / 'ref/metadata'))
    assert _files(tmp_path / 'data/SYNTH') == _files(tmp_path / 'ref/data/SYNTH')
    assert _files(tmp_path / 'metadata/SYNTH') == _files(tmp_path / 'ref/metadata/SYNTH')
    assert not [p for p in (tmp_path / 'data').iterdir() if p.name.startswith('.SYNTH.tmp')]


def test_synth_through_worker_processes(tmp_path):
    "A full epoch of SYNTH train through two loader workers: every image once, labels and pixels as drawn."
    ds = WSOLDataset(tmp_path / 'data', tmp_path / 'metadata', 'SYNTH', 'train', build_transforms('val', 64, 64),
                     synth_params=SMALL)
    assert len(ds) == 12 * SMALL['train_per_class']
    seen = {}
    for x, y, ids in make_loader(ds, batch_size=16, shuffle=True, workers=2):
        assert x.shape[1:] == (3, 64, 64) and x.dtype == torch.float32 and y.dtype == torch.int64
        for xi, yi, image_id in zip(x, y.tolist(), ids): seen[image_id] = (xi, yi)
    assert sorted(seen) == sorted(ds.image_ids)
    image_id = 'train/07_green_ring/0004.png'
    x, y = seen[image_id]
    assert y == 7 == SYNTH_CLASSES.index('green_ring')
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    pixels = ((x * std + mean) * 255).round().permute(1, 2, 0).numpy().astype(np.uint8)
    np.testing.assert_array_equal(pixels, render_sample(7, 4, 'train').image)


def test_synth_ground_truth_files(tmp_path):
    "Boxes, head boxes and masks on disk describe the object: box = tight box of mask, head box inside it."
    ensure_synth(tmp_path / 'data', tmp_path / 'metadata', **SMALL)
    md = load_metadata(tmp_path / 'metadata', 'SYNTH', 'test')
    paths = synth_mask_paths(tmp_path / 'data', tmp_path / 'metadata')
    mmd = load_metadata(paths['metadata_root'], 'SYNTH', 'test')
    heads = {l.split(',')[0]: tuple(map(int, l.split(',')[1:]))
             for l in (md.folder / 'part_boxes.txt').read_text().splitlines()}
    for image_id in md.image_ids:
        mask = np.array(Image.open(paths['mask_root'] / 'SYNTH' / mmd.masks[image_id][0])) > 0
        ys, xs = np.nonzero(mask)
        assert md.boxes[image_id] == [(xs.min(), ys.min(), xs.max(), ys.max())]
        x0, y0, x1, y1 = heads[image_id]
        assert mask[y0:y1 + 1, x0:x1 + 1].mean() > 0.5  # the head box is mostly object
        assert xs.min() <= x0 <= x1 <= xs.max() and ys.min() <= y0 <= y1 <= ys.max()


def test_custom_mask_dataset(tmp_path):
    "A custom dataset with OpenImages-style masks is recognised as such and loads without code changes."
    for split in ('train', 'val'):
        folder = tmp_path / 'metadata' / 'SHAPES' / split
        folder.mkdir(parents=True)
        ids = [f'{split}/{k}.png' for k in range(4)]
        for k, image_id in enumerate(ids):
            (tmp_path / 'data/SHAPES' / image_id).parent.mkdir(parents=True, exist_ok=True)
            Image.new('RGB', (20 + k, 16), (k * 60, 0, 0)).save(tmp_path / 'data/SHAPES' / image_id)
        (folder / 'image_ids.txt').write_text(''.join(i + '\n' for i in ids))
        (folder / 'class_labels.txt').write_text(''.join(f'{i},{k % 2}\n' for k, i in enumerate(ids)))
        (folder / 'image_sizes.txt').write_text(''.join(f'{i},{20 + k},16\n' for k, i in enumerate(ids)))
        if split == 'val':
            (folder / 'localization.txt').write_text(''.join(f'{i},{i[:-4]}_mask.png,\n' for i in ids))
    assert dataset_info('SHAPES', tmp_path / 'metadata') == DatasetInfo('SHAPES', 2, 'masks', 'max')
    ds = WSOLDataset(tmp_path / 'data', tmp_path / 'metadata', 'SHAPES', 'val', build_transforms('val', 16, 16))
    x, y, ids = next(iter(make_loader(ds, 4, shuffle=False, workers=0)))
    assert x.shape == (4, 3, 16, 16) and y.tolist() == [0, 1, 0, 1] and ids[3] == 'val/3.png'


@pytest.mark.parametrize('dataset', ['CUB', 'ILSVRC', 'OpenImages'])
def test_builtin_datasets_without_images(tmp_path, dataset):
    "The shipped metadata loads; with no images the error names the folder and how to get the data."
    with pytest.raises(DatasetNotFoundError, match=f"{dataset} images not found: the folder .*{dataset} does not exist"):
        check_images_present(tmp_path, dataset, ROOT / 'metadata', 'test')
    with pytest.raises(DatasetNotFoundError, match='wsolevaluation|cub_200_2011'):
        WSOLDataset(tmp_path, ROOT / 'metadata', dataset, 'val')
    assert DATASETS[dataset].num_classes == load_metadata(ROOT / 'metadata', dataset, 'test').num_classes

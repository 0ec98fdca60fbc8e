"""Checkpoints saved by wsolevaluation's code (Choe et al., CVPR 2020) give its outputs exactly through our evaluation.

`tests/wsolevaluation_refs/` holds what wsolevaluation's own code computed (`tools/wsolevaluation_refs.py`, see its
README): for each of its architectures (vgg16, resnet50, inception_v3) and test-time paths (cam, acol, spg, adl), at
both feature-map sizes, with weights that `weights.seeded_state_dict` builds from the state-dict manifest alone, on
four photos in the CUB layout: logits, raw CAMs, the first image's score map and the MaxBoxAcc of its evaluator.
Here the same weights are saved as wsolevaluation saves checkpoints (`{'state_dict': ...}` with its key names) and
evaluated by `wsol` with `architecture` / `method` given, as `nbs/evaluate.ipynb` does.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wsol.config import make_config
from wsol.data import dataset_for
from wsol.evaluation import evaluate_model
from wsol.metadata import load_metadata
from wsol.metrics import BoxEvaluator
from wsol.methods import model_for
from wsol.weights import load_checkpoint_weights, read_checkpoint

REFS = Path(__file__).parent / 'wsolevaluation_refs'
sys.path.insert(0, str(REFS))
from weights import seeded_state_dict  # noqa: E402  (the reference weights: a function of the manifest and a seed)

OUTPUTS = json.loads((REFS / 'outputs.json').read_text())
ARRAYS = np.load(REFS / 'outputs.npz')
MANIFESTS = json.loads((REFS / 'manifests.json').read_text())
ARCHITECTURE = {'vgg16': 'vgg16', 'resnet50': 'resnet50', 'inception_v3': 'inceptionv3'}  # theirs -> ours


def manifest(variant: dict) -> list:
    section, arch, kind = variant['manifest'].split('/')
    return MANIFESTS[section][arch][kind]


def checkpoint(tmp_path: Path, name: str, variant: dict) -> Path:
    "The variant's weights saved the way wsolevaluation's trainer saves them."
    path = tmp_path / f'{name}_last_checkpoint.pth.tar'
    torch.save({'architecture': variant['architecture'], 'epoch': 0,
                'state_dict': seeded_state_dict(manifest(variant), OUTPUTS['settings']['seed'])}, path)
    return path


def settings(variant: dict, **extra) -> dict:
    "Our evaluation settings for a variant: its architecture, method, map size and ACoL threshold; the test photos."
    return dict(dataset='CUB', architecture=ARCHITECTURE[variant['architecture']], method=variant['architecture_type'],
                large_feature_map=variant['large_feature_map'], acol_threshold=variant['acol_drop_threshold'],
                data_root=str(REFS / 'data'), metadata_root=str(REFS / 'metadata'), batch_size=4, workers=0,
                cam_curve_interval=OUTPUTS['settings']['cam_curve_interval'], **extra)


@pytest.fixture(autouse=True)
def one_thread():
    "The references were computed with one torch thread; the same here gives bit-equal results (see ACoL below)."
    old = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def single_contour_maxboxacc(cfg, scoremap_dir: Path) -> dict:
    "MaxBoxAcc with the largest contour only (the original MaxBoxAcc), from the saved score maps."
    metadata = load_metadata(cfg.metadata_root, 'CUB', 'test')
    box = BoxEvaluator(metadata, cam_curve_interval=cfg.cam_curve_interval, iou_threshold_list=(30, 50, 70),
                       multi_contour_eval=False, image_size=cfg.crop_size)
    for image_id in metadata.image_ids: box.accumulate(np.load(scoremap_dir / f'{image_id}.npy'), image_id)
    return {str(k): float(v) for k, v in box.compute()['maxboxacc'].items()}


@pytest.mark.parametrize('name', list(OUTPUTS['variants']))
def test_wsolevaluation_checkpoint(tmp_path, name):
    """Every architecture x test-time path x map size (and ACoL at two thresholds): logits and raw CAMs; with the
    14 x 14 maps also the score maps and MaxBoxAcc of our evaluation (`evaluate_model`, what `evaluate_checkpoint`
    and nbs/evaluate.ipynb run after loading). ACoL erases where a normalised map reaches `acol_threshold`, so a value
    within float noise of it decides a whole position of branch B: with two threads instead of one, the
    resnet50 ACoL map at threshold 0.5 (28 x 28) has one such position (6e-7 away) and differs there."""
    variant = OUTPUTS['variants'][name]
    ckpt = read_checkpoint(checkpoint(tmp_path, name, variant))
    cfg = make_config(**settings(variant), pretrained=False, output_dir=str(tmp_path))
    model = model_for(cfg, ckpt.num_classes, pretrained=False)
    load_checkpoint_weights(model, ckpt)
    images, labels, ids = zip(*(dataset_for(cfg, 'test')[i] for i in range(4)))
    assert list(ids) == [im['image_id'] for im in OUTPUTS['images']]
    with torch.no_grad():
        out = model.eval()(torch.stack(images))
        cams = model.cams(out, torch.tensor(labels))
    ref_logits, ref_cams = ARRAYS[f'{name}/logits'], ARRAYS[f'{name}/cams']
    np.testing.assert_allclose(out['logits'].numpy(), ref_logits, rtol=1e-5, atol=1e-5 * np.abs(ref_logits).max())
    np.testing.assert_allclose(cams.numpy(), ref_cams, rtol=1e-5, atol=1e-5 * np.abs(ref_cams).max())
    if variant['large_feature_map']: return  # metrics and score maps: the 14 x 14 variants
    m = evaluate_model(model, cfg, 'test', scoremap_dir=tmp_path / 'scoremaps', progress=False)
    assert m['maxboxacc'] == variant['max_box_acc']['multi_contour'], m['maxboxacc']
    assert m['maxboxacc_v2'] == pytest.approx(variant['max_box_acc_v2'], abs=1e-9)
    assert m['top1_cls'] == pytest.approx(variant['top1'])
    assert single_contour_maxboxacc(cfg, tmp_path / 'scoremaps') == variant['max_box_acc']['single_contour']
    ours = np.load(tmp_path / 'scoremaps' / f"{OUTPUTS['images'][0]['image_id']}.npy")
    ref = ARRAYS[f'{name}/scoremap0'].astype(np.float64) / 65535  # stored as uint16: +-7.7e-6
    assert ours.shape == ref.shape == (224, 224)
    assert np.abs(ours - ref).max() < 1e-4


def test_evaluate_notebook_on_a_wsolevaluation_checkpoint(tmp_path):
    "papermill nbs/evaluate.ipynb -p checkpoint <wsolevaluation's VGG16 ACoL checkpoint> -p architecture vgg16 -p method acol -p acol_threshold 0.5."
    papermill = pytest.importorskip('papermill')
    name = 'vgg16_acol_thr0.5'
    variant = OUTPUTS['variants'][name]
    path = checkpoint(tmp_path, name, variant)
    s = settings(variant)
    params = dict(checkpoint=str(path), split='test', output_dir=str(tmp_path / 'eval'), save_cam=True,
                  large_feature_map=str(variant['large_feature_map']),
                  **{k: s[k] for k in ('dataset', 'architecture', 'method', 'acol_threshold', 'data_root',
                                       'metadata_root', 'cam_curve_interval')})
    root = Path(__file__).resolve().parents[1]
    papermill.execute_notebook(str(root / 'nbs' / 'evaluate.ipynb'), str(tmp_path / 'out.ipynb'), parameters=params,
                               cwd=str(root / 'nbs'), progress_bar=False, kernel_name='python3')
    m = json.loads((tmp_path / 'eval' / 'results.json').read_text())
    assert m['maxboxacc'] == variant['max_box_acc']['multi_contour']
    assert m['maxboxacc_v2'] == pytest.approx(variant['max_box_acc_v2'], abs=1e-9)
    ours = np.load(tmp_path / 'eval' / 'scoremaps' / 'test' / f"{OUTPUTS['images'][0]['image_id']}.npy")
    assert np.abs(ours - ARRAYS[f'{name}/scoremap0'].astype(np.float64) / 65535).max() < 1e-4

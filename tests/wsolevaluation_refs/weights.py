"""Deterministic weights for the wsolevaluation reference outputs, built from a state-dict manifest alone.

`seeded_state_dict(manifest, seed)` turns a manifest -- an ordered list of `(key, shape, dtype)` as stored in
`manifests.json` next to this file -- into a state dict. It uses no model code, so the wsolevaluation models (in
`tools/wsolevaluation_refs.py`) and any reimplementation with the same parameter names and shapes get the same tensors.

Every tensor is drawn from its own generator, `numpy.random.Generator(numpy.random.PCG64([seed, zlib.crc32(key)]))`
(key UTF-8 encoded), so a value depends only on (key, shape, seed) and on whether the key belongs to a BatchNorm layer:

- BatchNorm: a key `<prefix>.<name>` whose `<prefix>.running_mean` is also in the manifest.
  weight ~ U(0.5, 1.5), bias ~ N(0, 0.1), running_mean ~ N(0, 0.1), running_var ~ U(0.5, 1.5),
  num_batches_tracked = 0 (int64).
  Exception: when the BatchNorm module's own name is `bn3` (the last BatchNorm of a ResNet bottleneck's residual
  branch), its weight is the U(0.5, 1.5) draw times 0.2. With weight ~ U(0.5, 1.5) there as well, the residual
  branches of ResNet50 (whose BatchNorms, in eval mode with these running statistics, do not renormalise) roughly
  double the activations' variance at every block: max |layer4 output| was about 7e4 and logits about 5e4 on the four
  test photos. With the 0.2 factor, max |layer4 output| is about 45 and the logits about 28.
- any other tensor with two or more dimensions (conv / linear weights): N(0, sqrt(2 / fan_in)),
  fan_in = prod(shape[1:]) (He normal).
- any other tensor (biases): N(0, 0.01).

Floating tensors are drawn in float64 and cast to float32; integer dtypes give int64 zeros.
"""
import zlib

import numpy as np
import torch

BN3_WEIGHT_SCALE = 0.2  # see the module docstring


def _generator(seed: int, key: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, zlib.crc32(key.encode('utf-8'))]))


def _batchnorm_tensor(rng, prefix, name, shape):
    if name == 'weight':
        w = rng.uniform(0.5, 1.5, shape)
        return w * BN3_WEIGHT_SCALE if prefix.rpartition('.')[2] == 'bn3' else w
    if name == 'bias':
        return rng.normal(0.0, 0.1, shape)
    if name == 'running_mean':
        return rng.normal(0.0, 0.1, shape)
    if name == 'running_var':
        return rng.uniform(0.5, 1.5, shape)
    raise ValueError(f"manifest: unknown BatchNorm entry {prefix}.{name}")


def seeded_state_dict(manifest, seed: int) -> dict:
    """State dict for `manifest` (ordered `(key, shape, dtype)`; dtype a string such as 'torch.float32'), seed `seed`."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    keys = {entry[0] for entry in manifest}
    if len(keys) != len(manifest):
        raise ValueError("manifest: duplicate keys")
    state = {}
    for key, shape, dtype in manifest:
        shape = tuple(int(s) for s in shape)
        prefix, _, name = key.rpartition('.')
        if 'int' in str(dtype):
            state[key] = torch.zeros(shape, dtype=torch.int64)
            continue
        rng = _generator(seed, key)
        if prefix and prefix + '.running_mean' in keys:
            values = _batchnorm_tensor(rng, prefix, name, shape)
        elif len(shape) >= 2:
            values = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        else:
            values = rng.normal(0.0, 0.01, shape)
        state[key] = torch.from_numpy(np.asarray(values, dtype=np.float32))
    return state

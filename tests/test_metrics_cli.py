"""`wsol-evaluate` end to end: golden score maps written as .npy files must give the reference's numbers; broken input
must give one line on stderr naming the file (and line), a non-zero status, and no traceback."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
GOLDEN = Path(os.environ.get('WSOL_GOLDEN_EVAL', HERE / 'golden' / 'eval'))
if not GOLDEN.is_dir(): GOLDEN = HERE.parents[1] / 'shared' / 'golden' / 'eval'  # CI: shared/ beside the repo
REF = json.loads((GOLDEN / 'golden.json').read_text())


def _command() -> str:
    exe = Path(sys.executable).with_name('wsol-evaluate')
    found = str(exe) if exe.exists() else shutil.which('wsol-evaluate')
    if not found: pytest.fail("the wsol-evaluate command is not installed (pip install -e .)")
    return found


def run(*args, cwd=None):
    return subprocess.run([_command(), *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)


def write_maps(root: Path, name: str) -> list[str]:
    d = np.load(GOLDEN / f'{name}_scoremaps_u16.npz')
    ids = [str(i) for i in d['ids']]
    for i, m in zip(ids, d['maps']):
        (root / i).parent.mkdir(parents=True, exist_ok=True)
        np.save(root / (i + '.npy'), (m.astype(np.float32) / np.float32(65535)).astype(np.float64))
    return ids


@pytest.fixture(scope='module')
def maps(tmp_path_factory):
    root = tmp_path_factory.mktemp('scoremaps')
    return root, write_maps(root / 'cub', 'cub'), write_maps(root / 'oi', 'openimages')


def assert_one_line_error(p, *fragments):
    assert p.returncode != 0, p.stdout
    assert 'Traceback' not in p.stderr and 'Traceback' not in p.stdout, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    for f in fragments: assert f in lines[0], (f, lines[0])


@pytest.mark.parametrize('interval', ['0.01', '0.001'])
@pytest.mark.parametrize('multi', [True, False])
def test_boxes_match_reference(maps, tmp_path, interval, multi):
    root, _, _ = maps
    out = tmp_path / 'res' / 'box.json'
    p = run('--scoremap_root', root / 'cub', '--metadata_root', GOLDEN / 'metadata', '--dataset_name', 'CUB', '--split', 'test',
            '--cam_curve_interval', interval, '--multi_contour_eval', str(multi).lower(), '--multi_iou_eval',
            '--iou_threshold_list', 30, 50, 70, '--json', out)
    assert p.returncode == 0, p.stderr
    res, ref = json.loads(out.read_text()), REF[f'box_interval{interval}_multi{multi}']
    assert res['num_images'] == ref['n'] == 30
    assert [res['maxboxacc'][d] for d in ('30', '50', '70')] == pytest.approx(ref['maxboxacc'], abs=1e-9)
    assert res['maxboxacc_v2'] == pytest.approx(ref['mean'], abs=1e-9)
    assert res['localization'] == pytest.approx(ref['mean'], abs=1e-9)  # --multi_iou_eval: the mean
    assert 'MaxBoxAcc@50' in p.stdout
    assert [f.name for f in out.parent.iterdir()] == ['box.json']  # written atomically, no temporary file left


def test_boxes_headline_is_iou50_without_multi_iou(maps, tmp_path):
    root, _, _ = maps
    p = run('--scoremap_root', root / 'cub', '--metadata_root', GOLDEN / 'metadata', '--dataset_name', 'CUB',
            '--workers', 0, '--json', tmp_path / 'r.json')
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / 'r.json').read_text())
    assert res['localization'] == pytest.approx(REF['box_interval0.01_multiFalse']['maxboxacc'][1], abs=1e-9)
    assert res['multi_contour_eval'] is False  # the reference's default


@pytest.mark.parametrize('interval', ['0.01', '0.001'])
def test_masks_match_reference(maps, tmp_path, interval):
    root, _, _ = maps
    p = run('--scoremap_root', root / 'oi', '--metadata_root', GOLDEN / 'metadata', '--mask_root', GOLDEN / 'masks',
            '--dataset_name', 'OpenImages', '--split', 'test', '--cam_curve_interval', interval, '--json', tmp_path / 'm.json')
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / 'm.json').read_text())
    assert res['pxap'] == pytest.approx(REF[f'mask_interval{interval}']['pxap'], abs=1e-9)
    assert 0 < res['piou'] <= 100 and res['num_images'] == 12
    assert 'PxAP' in p.stdout and 'PIoU' in p.stdout


def test_missing_scoremap(maps, tmp_path):
    _, ids, _ = maps
    root = tmp_path / 'maps'
    write_maps(root, 'cub')
    (root / (ids[7] + '.npy')).unlink()
    p = run('--scoremap_root', root, '--metadata_root', GOLDEN / 'metadata', '--dataset_name', 'CUB', '--json', tmp_path / 'r.json')
    assert_one_line_error(p, f"{root / ids[7]}.npy", 'score map not found')
    assert not (tmp_path / 'r.json').exists()


def test_invalid_scoremap(maps, tmp_path):
    _, ids, _ = maps
    root = tmp_path / 'maps'
    write_maps(root, 'cub')
    np.save(root / (ids[2] + '.npy'), np.full((224, 224), 1.5))
    p = run('--scoremap_root', root, '--metadata_root', GOLDEN / 'metadata', '--dataset_name', 'CUB')
    assert_one_line_error(p, f"{root / ids[2]}.npy", f"score map of image {ids[2]!r} must lie in [0, 1]")
    np.save(root / (ids[2] + '.npy'), np.zeros((224, 224, 3)))
    p = run('--scoremap_root', root, '--metadata_root', GOLDEN / 'metadata', '--dataset_name', 'CUB')
    assert_one_line_error(p, f"{root / ids[2]}.npy", 'must be 2-D')


def test_bad_metadata_line(maps, tmp_path):
    root, _, _ = maps
    meta = tmp_path / 'metadata'
    shutil.copytree(GOLDEN / 'metadata' / 'CUB', meta / 'CUB')
    loc = meta / 'CUB' / 'test' / 'localization.txt'
    lines = loc.read_text().splitlines()
    image_id, x0, y0, x1, y1 = lines[4].split(',')
    lines[4] = ','.join([image_id, x1, y0, x0, y1])  # x1 < x0 on line 5
    loc.write_text('\n'.join(lines) + '\n')
    p = run('--scoremap_root', root / 'cub', '--metadata_root', meta, '--dataset_name', 'CUB')
    assert_one_line_error(p, f"{loc}:5:", 'x1 < x0')
    lines[4] = f'{image_id},{x0},{y0},{x1}'  # a missing field
    loc.write_text('\n'.join(lines) + '\n')
    p = run('--scoremap_root', root / 'cub', '--metadata_root', meta, '--dataset_name', 'CUB')
    assert_one_line_error(p, f"{loc}:5:", 'expected 5 comma-separated fields')


def test_missing_metadata_and_masks(maps, tmp_path):
    root, _, _ = maps
    p = run('--scoremap_root', root / 'cub', '--metadata_root', tmp_path, '--dataset_name', 'CUB')
    assert_one_line_error(p, f"{tmp_path / 'CUB' / 'test'}", 'metadata folder not found')
    p = run('--scoremap_root', root / 'oi', '--metadata_root', GOLDEN / 'metadata', '--mask_root', tmp_path,
            '--dataset_name', 'OpenImages')
    assert_one_line_error(p, f"{tmp_path / 'OpenImages' / 'test'}", 'mask file missing or unreadable')


def test_bad_boolean_flag_is_an_argparse_error(maps):
    root, _, _ = maps
    p = run('--scoremap_root', root / 'cub', '--metadata_root', GOLDEN / 'metadata', '--dataset_name', 'CUB',
            '--multi_contour_eval', 'maybe')
    assert p.returncode == 2 and 'Traceback' not in p.stderr, p.stderr  # argparse's usage error, not a crash
    assert "argument --multi_contour_eval:" in p.stderr and 'maybe' in p.stderr, p.stderr
    for value in ('yes', 'off', '1'):
        p = run('--scoremap_root', root / 'cub', '--metadata_root', GOLDEN / 'metadata', '--dataset_name', 'CUB',
                '--multi_iou_eval', value, '--workers', 0)
        assert p.returncode == 0, (value, p.stderr)


def test_mask_without_foreground(tmp_path):
    "An all-zero GT mask leaves nothing to evaluate: the reference raises RuntimeError; here one line on stderr."
    image_id = 'val/0by6g/490365f63135f3e0.jpg'  # wsolevaluation's all-zero test mask (tests/wsolevaluation_data)
    meta = tmp_path / 'metadata' / 'OpenImages' / 'test'
    meta.mkdir(parents=True)
    (meta / 'image_ids.txt').write_text(image_id + '\n')
    (meta / 'class_labels.txt').write_text(image_id + ',0\n')
    (meta / 'localization.txt').write_text(f"{image_id},val/0by6g/490365f63135f3e0_m0by6g_4f9ded4f.png,"
                                           f"val/0by6g/490365f63135f3e0_ignore.png\n")
    (tmp_path / 'maps' / 'val' / '0by6g').mkdir(parents=True)
    np.save(tmp_path / 'maps' / (image_id + '.npy'), np.full((224, 224), 0.5))
    p = run('--scoremap_root', tmp_path / 'maps', '--metadata_root', tmp_path / 'metadata', '--dataset_name', 'OpenImages',
            '--mask_root', HERE / 'wsolevaluation_data')
    assert_one_line_error(p, 'no foreground pixel')

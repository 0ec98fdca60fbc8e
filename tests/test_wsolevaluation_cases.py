"""The 26 test cases of clovaai/wsolevaluation's `evaluation_test.py`, ported to `wsol.metrics` and `wsol.metadata`.

Each reference case has one test here, named after it (the nine constant-map PxAP cases are one parametrized test whose
ids are the reference names). The reference's API maps to ours as follows:

    calculate_multiple_iou(a, b)                  box_iou(a, b)
    resize_bbox(box, image_size, resize_size)     resize_box(box, image_size, resize_size)   (sizes are (width, height))
    compute_bboxes_from_scoremaps(s, thr)[0]      reference_boxes(s, thr, multi_contour=False), and box_hits (the fast path)
    configure_metadata / BoxEvaluator boxes       load_metadata(...).boxes / .sizes, BoxEvaluator.gt_boxes
    get_mask(mask_root, mask_paths, ignore_path)  MaskEvaluator.gt_mask(image_id)
    MaskEvaluator(...).compute() -> auc           MaskEvaluator(...).compute()['pxap']

Differences on purpose (the case still checks the behaviour; only the exception class differs):

- `test_calculate_multiple_iou_box_convention`: a reversed box is refused with a `ValueError` naming the box, where the
  reference raises `RuntimeError`. A reversed box is a bad argument, and `ValueError` is what the rest of `wsol.metrics`
  raises for bad arguments (and what callers already catch, e.g. `wsol-evaluate`).
- Invalid score maps (NaN) raise `wsol.metrics.ScoreMapError`, a `ValueError` subclass, so the reference's
  `assertRaises(ValueError, ...)` holds unchanged.
- Masks without any foreground pixel raise `wsol.metrics.MaskEvaluationError`, a `RuntimeError` as in the reference, and
  also a `ValueError` (what `wsol.metrics` raised before, so existing callers catching ValueError keep working). Same
  outcome as the reference; not a difference.

The masks are wsolevaluation's `test_data/test_masks` (CC-BY-4.0, see tests/wsolevaluation_data/README.md); the metadata
is the repository's `metadata/` (wsolevaluation's files, byte for byte).
"""
from pathlib import Path

import numpy as np
import pytest

from wsol.metadata import load_metadata
from wsol.metrics import (BoxEvaluator, MaskEvaluator, ScoreMapError, box_hits, box_iou, quantize_scoremap,
                          reference_boxes, resize_box)

HERE = Path(__file__).resolve().parent
METADATA = HERE.parent / 'metadata'
MASK_ROOT = HERE / 'wsolevaluation_data'  # masks under <MASK_ROOT>/OpenImages/val/...
THRESHOLDS = np.arange(0, 1, 0.2)  # the reference tests' scoremap_threshold_list


# ---------------------------------------------------------------- box IoU and box resizing (EvalUtilTest, 6 cases)

def test_calculate_multiple_iou_shape_type_degenerate_zero():
    ious = box_iou(np.zeros((3, 4), dtype=int), np.zeros((5, 4), dtype=int))
    assert isinstance(ious, np.ndarray)
    assert ious.dtype == np.float64 and ious.shape == (3, 5)
    assert (ious == 1.0).all()  # (0, 0, 0, 0) is one pixel: boxes are inclusive


def test_calculate_multiple_iou_box_convention():
    # Differs on purpose: ValueError (naming the box) where the reference raises RuntimeError; see the module docstring.
    with pytest.raises(ValueError, match=r"box \(1, 1, 0, 0\) is reversed"):
        box_iou(np.array([[1, 1, 0, 0]]), np.array([[1, 1, 2, 2]]))
    with pytest.raises(ValueError, match=r"box \(1, 1, 0, 0\) is reversed"):  # on either side
        box_iou(np.array([[1, 1, 2, 2]]), np.array([[1, 1, 0, 0]]))


def test_calculate_multiple_iou_eye_boxes():
    boxes = np.array([[1, 1, 3, 3], [4, 4, 5, 5]])
    np.testing.assert_array_equal(box_iou(boxes, boxes), np.eye(2))


def test_calculate_multiple_iou_realistic_values():
    # x 1..5 by y 2..6 (25 pixels) and x 3..4 by y 1..5 (10 pixels) share x 3..4 by y 2..5 (8 pixels): 8 / 27
    assert box_iou(np.array([[1, 2, 5, 6]]), np.array([[3, 1, 4, 5]]))[0, 0] == pytest.approx(8 / 27, abs=1e-6)


def test_resize_bbox_case():
    # 10 x 20 (width x height) image resized to 35 x 10: x * 3.5 and y * 0.5, truncated
    assert resize_box((1, 2, 4, 3), (10, 20), (35, 10)) == (3, 1, 14, 1)


def test_resize_bbox_degenerate():
    assert resize_box((1, 2, 1, 2), (3, 3), (3, 3)) == (1, 2, 1, 2)
    assert resize_box((1, 2, 1, 2), (3, 3), 3) == (1, 2, 1, 2)  # the square form used by the evaluators


# ---------------------------------------------------------------- boxes from score maps (EvalUtilTest, 4 cases)

def largest_boxes(scoremap):
    "The reference's `compute_bboxes_from_scoremaps(scoremap, THRESHOLDS)[0]`, first box of each: largest contour only."
    boxes = reference_boxes(scoremap, THRESHOLDS, multi_contour=False)
    assert all(b.shape == (1, 4) for b in boxes)
    return [b[0].tolist() for b in boxes]


def assert_fast_path_finds(scoremap, expected, multi_contour=False):
    "`box_hits` (what BoxEvaluator uses) sees each expected box at its threshold: IoU 1 with a GT box equal to it."
    u = quantize_scoremap(scoremap)
    for j, box in enumerate(expected):
        hits = box_hits(u, [box], THRESHOLDS, iou_thresholds=(100,), multi_contour=multi_contour)
        assert hits[0, j], (j, box)


def test_compute_bboxes_from_scoremaps_degenerate():
    scoremap = np.zeros((3, 3))
    expected = [[0, 0, 0, 0]] * 5  # no contour at any threshold: the box (0, 0, 0, 0)
    assert largest_boxes(scoremap) == expected
    assert_fast_path_finds(scoremap, expected)


def test_compute_bboxes_from_scoremaps_unimodal():
    scoremap = np.array([[0.0, 0.0, 0.0, 0.0, 0.0],  # rows are y, columns x
                         [0.0, 0.4, 0.4, 0.4, 0.6],
                         [0.0, 0.4, 1.0, 0.8, 0.6],
                         [0.0, 0.4, 0.4, 0.4, 0.6]])
    expected = [[1, 1, 4, 3], [1, 1, 4, 3], [2, 1, 4, 3], [2, 2, 4, 3], [2, 2, 3, 3]]
    assert largest_boxes(scoremap) == expected
    assert_fast_path_finds(scoremap, expected)
    assert_fast_path_finds(scoremap, expected, multi_contour=True)  # one component at every threshold


def test_compute_bboxes_from_scoremaps_multimodal():
    scoremap = np.array([[0.4, 0.0, 0.2, 0.2, 0.2],
                         [0.4, 0.4, 0.0, 0.4, 0.0],
                         [0.0, 0.0, 0.0, 0.4, 0.0],
                         [1.0, 0.6, 0.8, 0.2, 0.2]])
    expected = [[0, 0, 4, 3], [0, 0, 2, 2], [0, 3, 3, 3], [2, 3, 3, 3], [0, 3, 1, 3]]
    assert largest_boxes(scoremap) == expected
    assert_fast_path_finds(scoremap, expected)
    # multi-contour evaluation (MaxBoxAccV2): the largest contour's box is one of all the contours' boxes
    for largest, boxes in zip(expected, reference_boxes(scoremap, THRESHOLDS, multi_contour=True)):
        assert largest in boxes.tolist()
    assert_fast_path_finds(scoremap, expected, multi_contour=True)


def test_compute_bboxes_from_scoremaps_nan():
    scoremap = np.full((3, 3), np.nan)
    with pytest.raises(ValueError, match="contains NaN"):  # ScoreMapError is a ValueError
        reference_boxes(scoremap, THRESHOLDS)
    md = load_metadata(METADATA, 'CUB', 'val')
    with pytest.raises(ScoreMapError, match="contains NaN"):  # and the evaluator refuses it too
        BoxEvaluator(md, image_size=3).accumulate(scoremap, md.image_ids[0])


# ---------------------------------------------------------------- metadata boxes and sizes (BoxEvaluatorTest, 1 case)

BOXES = {
    ('CUB', 'val'): [[(176, 136, 459, 291)], [(44, 183, 426, 254)], [(437, 42, 834, 422)]],
    ('CUB', 'test'): [[(60, 27, 385, 331)], [(14, 112, 402, 298)], [(33, 53, 284, 448)]],
    ('ILSVRC', 'val'): [[(156, 163, 318, 230)], [(143, 142, 394, 248)], [(28, 94, 485, 303)]],
    ('ILSVRC', 'test'): [[(111, 108, 441, 193)], [(45, 49, 499, 162), (2, 69, 437, 207)], [(38, 19, 385, 373)]],
}
SIZES = {
    ('CUB', 'val'): [(560, 419), (576, 432), (999, 587)],
    ('CUB', 'test'): [(500, 335), (500, 347), (500, 470)],
    ('ILSVRC', 'val'): [(500, 375)] * 3,
    ('ILSVRC', 'test'): [(500, 375)] * 3,
}


def test_box_evaluator_boxes_and_sizes():
    for (dataset, split), expected_boxes in BOXES.items():
        md = load_metadata(METADATA, dataset, split)
        first = md.image_ids[:3]
        assert [md.boxes[i] for i in first] == expected_boxes, (dataset, split)
        assert [md.sizes[i] for i in first] == SIZES[dataset, split], (dataset, split)
        for image_id in md.image_ids:  # every box lies inside its image, x0 <= x1 and y0 <= y1
            width, height = md.sizes[image_id]
            for x0, y0, x1, y1 in md.boxes[image_id]:
                assert 0 <= x0 <= x1 <= width - 1 and 0 <= y0 <= y1 <= height - 1, (dataset, split, image_id)
        ev = BoxEvaluator(md)  # and so do the boxes rescaled to the 224 x 224 score maps
        gt = np.concatenate([ev.gt_boxes(i) for i in md.image_ids[:200]])
        assert gt.min() >= 0 and gt[:, 2:].max() <= 223 and (gt[:, 2:] >= gt[:, :2]).all()


# ---------------------------------------------------------------- PxAP on small masks (MaskEvaluatorTest, 15 cases)

MASK_IDS = ('val/0bt_c3/1cd9ac0169ec7df0.jpg', 'val/0bt_c3/3a29f0b33894d4a6.jpg', 'val/0bt_c3/3b3b9931325d65c9.jpg')
NO_FOREGROUND_ID = 'val/0by6g/490365f63135f3e0.jpg'  # an all-zero mask
ALL_FOREGROUND_ID = 'val/0by6g/b4d953e7105da1d8.jpg'  # an all-255 mask
# PxAP of a constant map = the foreground share of the (non-ignored) pixels: every threshold gives the same point
FOREGROUND_SHARE = {MASK_IDS[0]: 43031 / (43031 + 7145), MASK_IDS[1]: 833 / (833 + 49342), MASK_IDS[2]: 347 / (347 + 13909)}


@pytest.fixture(scope='module')
def openimages_val():
    return load_metadata(METADATA, 'OpenImages', 'val')


def mask_evaluator(md):
    return MaskEvaluator(md, MASK_ROOT, cam_curve_interval=0.01)  # multi_contour_eval is irrelevant to masks


def pxap_of_constant_map(md, image_id, value):
    ev = mask_evaluator(md)
    ev.accumulate(np.ones((224, 224)) * value, image_id)
    return ev.compute()['pxap']


def test_mask_evaluator_masks_perfect_scoremap(openimages_val):
    for image_id in MASK_IDS:
        for ignore_score in (0.0, 1.0):  # whatever the map says on ignored pixels does not count
            ev = mask_evaluator(openimages_val)
            mask = ev.gt_mask(image_id)
            scoremap = mask.astype(np.float64)
            scoremap[mask == 255] = ignore_score
            ev.accumulate(scoremap, image_id)
            assert ev.compute()['pxap'] == 100.0, (image_id, ignore_score)


CONSTANT_CASES = {f'test_mask_evaluator_masks_{name}_scoremap_mask{k}': (k, value)
                  for k in range(3) for name, value in (('zero', 0.0), ('half', 0.5), ('one', 1.0))}


@pytest.mark.parametrize('case', list(CONSTANT_CASES))
def test_mask_evaluator_masks_constant_scoremap(openimages_val, case):
    k, value = CONSTANT_CASES[case]
    image_id = MASK_IDS[k]
    assert pxap_of_constant_map(openimages_val, image_id, value) == pytest.approx(100 * FOREGROUND_SHARE[image_id], abs=0.1)


def test_mask_evaluator_masks_zero_scoremap_zero_gt(openimages_val):
    with pytest.raises(RuntimeError, match="no foreground pixel"):  # raised by compute(), as in the reference
        pxap_of_constant_map(openimages_val, NO_FOREGROUND_ID, 0.0)


def test_mask_evaluator_masks_one_scoremap_zero_gt(openimages_val):
    with pytest.raises(RuntimeError, match="no foreground pixel"):
        pxap_of_constant_map(openimages_val, NO_FOREGROUND_ID, 1.0)


def test_mask_evaluator_masks_zero_scoremap_one_gt(openimages_val):
    assert pxap_of_constant_map(openimages_val, ALL_FOREGROUND_ID, 0.0) == pytest.approx(100.0, abs=0.1)


def test_mask_evaluator_masks_one_scoremap_one_gt(openimages_val):
    assert pxap_of_constant_map(openimages_val, ALL_FOREGROUND_ID, 1.0) == pytest.approx(100.0, abs=0.1)


def test_mask_evaluator_masks_nan_scoremap(openimages_val):
    with pytest.raises(ValueError, match="contains NaN"):  # ScoreMapError is a ValueError, as the reference expects
        pxap_of_constant_map(openimages_val, ALL_FOREGROUND_ID, np.full(1, np.nan))


def test_all_26_reference_cases_are_ported():
    names = {n for n in globals() if n.startswith('test_') and n not in ('test_all_26_reference_cases_are_ported',
                                                                          'test_mask_evaluator_masks_constant_scoremap')}
    assert len(names) + len(CONSTANT_CASES) == 26

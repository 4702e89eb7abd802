# Copyright (c) mmhand2p contributors. All rights reserved.
"""HandednessFlip: mmdet's horizontal RandomFlip plus right/left swap."""
import copy

import numpy as np
import pytest

from mmhand2p.datasets.transforms import HandednessFlip


def _results():
    from mmdet.structures.bbox import HorizontalBoxes
    rng = np.random.default_rng(0)
    return dict(
        img=rng.integers(0, 255, (40, 60, 3), dtype=np.uint8),
        gt_bboxes=HorizontalBoxes(
            np.array([[2, 3, 20, 30], [30, 5, 58, 39], [10, 10, 12, 12]],
                     np.float32)),
        gt_bboxes_labels=np.array([0, 1, 0], np.int64),
        gt_ignore_flags=np.zeros(3, bool),
        homography_matrix=np.array([[2, 0, 1], [0, 2, 0], [0, 0, 1]],
                                   np.float32))


def test_matches_mmdet_random_flip_and_swaps_hands():
    from mmdet.datasets.transforms import RandomFlip
    ours = HandednessFlip(prob=1.0)(_results())
    ref = RandomFlip(prob=1.0, direction='horizontal')(_results())
    np.testing.assert_array_equal(ours['img'], ref['img'])
    np.testing.assert_allclose(ours['gt_bboxes'].numpy(),
                               ref['gt_bboxes'].numpy())
    np.testing.assert_allclose(ours['homography_matrix'],
                               ref['homography_matrix'])
    assert ours['flip'] and ours['flip_direction'] == 'horizontal'
    # mmdet keeps the labels; the mirror image of a right hand is a left one
    assert ref['gt_bboxes_labels'].tolist() == [0, 1, 0]
    assert ours['gt_bboxes_labels'].tolist() == [1, 0, 1]
    # the first box: x in [2, 20] of a 60-wide image -> [40, 58]
    np.testing.assert_allclose(ours['gt_bboxes'].numpy()[0], [40, 3, 58, 30])


def test_twice_is_identity_and_prob_zero_is_a_no_op():
    r0 = _results()
    r = HandednessFlip(prob=1.0)(HandednessFlip(prob=1.0)(copy.deepcopy(r0)))
    np.testing.assert_array_equal(r['img'], r0['img'])
    np.testing.assert_allclose(r['gt_bboxes'].numpy(),
                               r0['gt_bboxes'].numpy())
    assert r['gt_bboxes_labels'].tolist() == [0, 1, 0]
    r = HandednessFlip(prob=0.0)(copy.deepcopy(r0))
    assert r['flip'] is False and r['flip_direction'] is None
    np.testing.assert_array_equal(r['img'], r0['img'])
    assert r['gt_bboxes_labels'].tolist() == [0, 1, 0]


def test_numpy_boxes_other_labels_and_rate():
    r = dict(
        img=np.zeros((10, 100, 3), np.uint8),
        gt_bboxes=np.array([[0, 0, 10, 5]], np.float32),
        gt_bboxes_labels=np.array([2, 3, 4]))
    r = HandednessFlip(prob=1.0, label_swaps=[(2, 3)])(r)
    np.testing.assert_allclose(r['gt_bboxes'], [[90, 0, 100, 5]])
    assert r['gt_bboxes_labels'].tolist() == [3, 2, 4]
    np.random.seed(0)
    t = HandednessFlip(prob=0.3)
    rate = np.mean([
        t(dict(img=np.zeros((2, 2, 3), np.uint8)))['flip']
        for _ in range(2000)
    ])
    assert abs(rate - 0.3) < 0.04


@pytest.mark.parametrize('kwargs', [
    dict(prob=1.5),
    dict(label_swaps=[(0, 1), (1, 2)]),
    dict(label_swaps=[(0, 0)]),
    dict(label_swaps=[(0, 1, 2)])
])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match='HandednessFlip'):
        HandednessFlip(**kwargs)


def test_built_from_an_mmdet_scoped_pipeline():
    from mmdet.registry import TRANSFORMS as MMDET_TRANSFORMS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        t = MMDET_TRANSFORMS.build(dict(type='mmhand2p.HandednessFlip'))
    assert isinstance(t, HandednessFlip)

# Copyright (c) mmhand2p contributors. All rights reserved.
"""Pairing of right / left hand boxes, on hand-worked examples."""
import numpy as np
import pytest
import torch

from mmhand2p.models.reconstructors.pairing import (box_iou_matrix,
                                                    normalized_center_distance,
                                                    pair_hands, pair_scores,
                                                    suppress_duplicates)

R, L = 0, 1


def _box(x, y, size=10.0):
    return [x, y, x + size, y + size]


def test_no_hands():
    assert pair_hands(np.zeros((0, 4)), [], []) == []
    assert pair_hands(
        torch.zeros(0, 4), torch.zeros(0),
        torch.zeros(0, dtype=torch.long)) == []


def test_one_hand_is_a_single_pair():
    assert pair_hands([_box(0, 0)], [0.9], [R]) == [(0, -1)]
    assert pair_hands([_box(0, 0)], [0.9], [L]) == [(-1, 0)]


def test_two_hands_side_by_side_pair_whatever_the_input_order():
    # centres 12 px apart, boxes of size 10: distance 1.2 < 1.5
    boxes = [_box(12, 0), _box(0, 0)]
    assert pair_hands(boxes, [0.8, 0.9], [L, R]) == [(1, 0)]
    assert pair_hands(boxes[::-1], [0.9, 0.8], [R, L]) == [(0, 1)]


def test_normalized_distance_by_hand():
    # centres (5, 5) and (25, 10): sqrt(20^2 + 5^2) = 20.6155; sizes 10 and
    # (10 + 20) / 2 = 15, mean 12.5
    d = normalized_center_distance([[0, 0, 10, 10]], [[20, 0, 30, 20]])
    assert d.shape == (1, 1)
    assert d[0, 0] == pytest.approx(np.hypot(20, 5) / 12.5)
    iou = box_iou_matrix([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 0, 30, 5]])
    np.testing.assert_allclose(iou, [[50 / 150, 0.0]])


def test_two_people_pair_by_proximity():
    # person A at x = 0, person B at x = 100; B's left hand scores highest
    boxes = [_box(0, 0), _box(112, 0), _box(100, 0), _box(12, 0)]
    scores = [0.9, 0.95, 0.7, 0.8]
    labels = [R, L, R, L]
    pairs = pair_hands(boxes, scores, labels)
    # A: 0.9 + 0.8 = 1.7 first, then B: 0.7 + 0.95 = 1.65
    assert pairs == [(0, 3), (2, 1)]
    np.testing.assert_allclose(pair_scores(pairs, scores), [1.7, 1.65])


def test_far_left_hand_stays_single():
    # centres 40 px apart for size 10: distance 4 > 1.5
    pairs = pair_hands([_box(0, 0), _box(40, 0)], [0.9, 0.8], [R, L])
    assert pairs == [(0, -1), (-1, 1)]
    # a larger threshold pairs them
    assert pair_hands([_box(0, 0), _box(40, 0)], [0.9, 0.8], [R, L],
                      dist_thr=5.0) == [(0, 1)]


def test_priority_score_or_distance():
    # left 1 is nearer (distance 1.1) but weaker than left 2 (distance 1.3)
    boxes = [_box(0, 0), _box(11, 0), _box(-13, 0)]
    scores, labels = [0.9, 0.4, 0.8], [R, L, L]
    assert pair_hands(boxes, scores, labels) == [(0, 2), (-1, 1)]
    assert pair_hands(
        boxes, scores, labels, priority='distance') == [(0, 1), (-1, 2)]


def test_same_class_duplicates_keep_the_higher_score():
    # two right boxes with IoU 81 / 119 = 0.68 and one left hand
    boxes = [_box(0, 0), _box(1, 1), _box(11, 0)]
    scores, labels = [0.6, 0.9, 0.8], [R, R, L]
    np.testing.assert_array_equal(
        suppress_duplicates(boxes, scores, labels, 0.5), [1, 2])
    assert pair_hands(boxes, scores, labels) == [(1, 2)]
    # without the removal the weaker right box is a single
    assert pair_hands(
        boxes, scores, labels, dup_iou_thr=None) == [(1, 2), (0, -1)]
    # a right and a left box overlapping (interacting hands) are both kept
    assert pair_hands([_box(0, 0), _box(1, 1)], [0.9, 0.8], [R, L]) == [(0, 1)]


def test_max_pairs_and_bad_input():
    boxes = [_box(0, 0), _box(100, 0), _box(200, 0)]
    assert pair_hands(
        boxes, [0.5, 0.9, 0.7], [R, R, L], max_pairs=2) == [(1, -1), (-1, 2)]
    with pytest.raises(ValueError, match='right hand.*left hand'):
        pair_hands([_box(0, 0)], [0.9], [2])
    with pytest.raises(ValueError, match=r'\(N, 4\)'):
        pair_hands([[0, 0, 1]], [0.9], [R])
    with pytest.raises(ValueError, match='scores must have shape'):
        pair_hands([_box(0, 0)], [0.9, 0.1], [R])
    with pytest.raises(ValueError, match='priority'):
        pair_hands([_box(0, 0)], [0.9], [R], priority='iou')

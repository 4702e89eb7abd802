# Copyright (c) mmhand2p contributors. All rights reserved.
"""Aggregation rules on a hand-made (samples, hands, joints) example."""
import math

import numpy as np
import pytest

from mmhand2p.evaluation.functional import (AGGREGATIONS, aggregate,
                                            hand_average,
                                            mean_of_per_joint_means,
                                            per_joint_means, pooled_mean)

# 2 samples x 2 hands x 2 joints; sample 1 has an invalid right joint and
# no left hand
ERR = np.array([[[1.0, 3.0], [5.0, 7.0]], [[2.0, 99.0], [99.0, 99.0]]])
MASK = np.array([[[True, True], [True, True]], [[True, False], [False,
                                                                False]]])


def test_pooled_mean():
    # valid: 1, 3, 5, 7, 2
    assert pooled_mean(ERR, MASK) == pytest.approx(18 / 5)


def test_per_joint_means_then_mean():
    # right j0: (1 + 2) / 2, right j1: 3, left j0: 5, left j1: 7
    assert per_joint_means(ERR, MASK).tolist() == pytest.approx(
        [1.5, 3.0, 5.0, 7.0])
    assert aggregate(ERR, MASK, 'per_joint') == pytest.approx(16.5 / 4)
    # never-valid joints are skipped (InterWild would print nan)
    assert mean_of_per_joint_means([[1.0, np.nan], [3.0, 5.0]]) == \
        pytest.approx(3.0)


def test_hand_average():
    # right: (1 + 3 + 2) / 3 = 2, left: (5 + 7) / 2 = 6
    assert hand_average(ERR, MASK) == pytest.approx(4.0)
    # a hand that is never valid does not count
    m = MASK.copy()
    m[:, 1] = False
    assert hand_average(ERR, m) == pytest.approx(2.0)


def test_empty_subsets():
    empty = np.zeros_like(MASK)
    for mode in AGGREGATIONS:
        assert math.isnan(aggregate(ERR, empty, mode))
        assert aggregate(ERR, empty, mode, empty=0.0) == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match=r'\(S, 2, K\)'):
        pooled_mean(ERR[:, :1], MASK)
    with pytest.raises(ValueError, match='pooled'):
        aggregate(ERR, MASK, 'median')

# Copyright (c) mmhand2p contributors. All rights reserved.
import pytest

from mmhand2p.evaluation.metrics import (PROTOCOLS, EvalProtocol,
                                         TwoHandMetric, get_protocol)
from mmhand2p.registry import METRICS

NAMES = ['a2p', 'dir', 'intaghand', 'interwild', 'mmpose']


def test_named_protocols_and_their_key_choices():
    assert sorted(PROTOCOLS) == NAMES
    iw, ig, dr, mp = (
        PROTOCOLS[n] for n in ('interwild', 'intaghand', 'dir', 'mmpose'))
    assert (iw.root_joint, iw.bone_scaling, iw.joint_aggregation) == \
        (0, False, 'per_joint')
    assert iw.mrrpe_frames == 'both_valid' and iw.sh_vertices_own_hand_only
    assert (ig.root_joint, ig.bone_scaling, ig.joints_source) == \
        (9, True, 'mesh')
    assert (dr.root_joint, dr.bone_scaling) == (0, True)
    assert mp.joint_aggregation == 'pooled' and mp.empty_value == 0.0
    assert mp.mrrpe_frames == 'interacting'
    assert PROTOCOLS['a2p'].root_joint == 0


def test_overrides_with_a_dict():
    p = get_protocol(dict(type='dir', root_joint=9))
    assert p.name == 'dir' and p.root_joint == 9 and p.bone_scaling
    assert PROTOCOLS['dir'].root_joint == 0  # the named one is unchanged
    assert get_protocol(p) is p


def test_unknown_protocol_lists_the_valid_names():
    with pytest.raises(
            ValueError,
            match=r"'foo'.*\['a2p', 'dir', "
            r"'intaghand', 'interwild', 'mmpose'\]"):
        get_protocol('foo')
    with pytest.raises(ValueError, match='interwild'):
        TwoHandMetric(protocol='interhand')
    with pytest.raises(ValueError, match='interwild'):
        METRICS.build(dict(type='TwoHandMetric', protocol='IntagHand'))


def test_bad_fields_are_named():
    with pytest.raises(
            ValueError, match="unknown protocol field.*'root'.*"
            'root_joint'):
        get_protocol(dict(type='dir', root=9))
    with pytest.raises(
            ValueError, match="joint_aggregation='median'.*"
            'pooled'):
        EvalProtocol(name='x', joint_aggregation='median')
    with pytest.raises(ValueError, match=r'root_joint.*\[0, 21\)'):
        get_protocol(dict(type='mmpose', root_joint=21))
    with pytest.raises(ValueError, match='needs a `type`'):
        get_protocol(dict(root_joint=9))

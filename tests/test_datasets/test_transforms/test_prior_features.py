# Copyright (c) mmhand2p contributors. All rights reserved.
"""LoadPriorFeatures: the teachers' cached features travel in the packed
data sample, and the neck's distillation target from them equals the one
the neck computed when it read the cache itself (deprecated prior_cache).
"""
import pickle

import numpy as np
import pytest
import torch

from mmhand2p.datasets.transforms import LoadPriorFeatures
from mmhand2p.registry import MODELS
from mmhand2p.structures import HandDataSample
from mmhand2p.utils.feature_cache import (PriorFeatureCacheWriter,
                                          teacher_config_hash)

PRIORS = ('keypoint', 'depth')
#: never built: the transform and the neck only hash their configs
TEACHERS = {p: dict(type='_UnbuiltTeacher', prior=p) for p in PRIORS}
IDS = [11, 12, 13]
PATHS = [f'images/train/cap/img{i}.jpg' for i in IDS]


def _affine(cx, cy, side=70.0, size=64, flip_cx=None):
    """Original image -> a ``size`` crop of a ``side`` square at (cx, cy)."""
    s = size / side
    a = np.array([[s, 0, size / 2 - 0.5 - s * cx],
                  [0, s, size / 2 - 0.5 - s * cy], [0, 0, 1.0]])
    if flip_cx is not None:
        a = a @ np.array([[-1.0, 0, 2 * flip_cx], [0, 1, 0], [0, 0, 1]])
    return a[:2]


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('prior') / 'cache')
    rng = np.random.default_rng(0)
    feats = {
        p: rng.normal(size=(3, 2, 8, 4, 4)).astype(np.float32)
        for p in PRIORS
    }
    aff = np.stack([
        np.stack([
            _affine(100 + 5 * i, 80),
            _affine(100 + 5 * i, 80, flip_cx=100.0)
        ]) for i in range(3)
    ])
    shapes = {p: f.shape[2:] for p, f in feats.items()}
    with PriorFeatureCacheWriter(root, 3, list(PRIORS), shapes, 2) as w:
        for v in range(2):
            w.write(
                range(3), v, {p: f[:, v]
                              for p, f in feats.items()}, aff[:, v], IDS,
                PATHS)
        w.commit(
            dict(
                input_size=[64, 64],
                feature_shapes={p: list(s)
                                for p, s in shapes.items()},
                teacher_cfg_hashes={
                    p: teacher_config_hash(TEACHERS[p])
                    for p in PRIORS
                },
                teacher_checkpoints={
                    p: dict(path=None, sha256=None)
                    for p in PRIORS
                },
                dataset=dict(split='train')))
    return root, feats, aff


def _packed(n, flip=False, crop_affine=None):
    meta = dict(
        img_id=IDS[n],
        img_path='/data/ih26m/' + PATHS[n],
        crop_affine=crop_affine,
        input_size=(64, 64),
        flip=flip)
    return dict(
        inputs=torch.zeros(3, 64, 64), data_samples=HandDataSample(
            metainfo=meta))


def test_features_of_the_sample_and_its_variant(cache):
    root, feats, aff = cache
    t = LoadPriorFeatures(root=root, priors=PRIORS, teachers=TEACHERS)
    for n, flip in ((1, False), (2, True)):
        v = int(flip)
        out = t(_packed(n, flip, aff[n, v]))['data_samples'].prior_features
        for p in PRIORS:
            got = out.get(p)
            assert got.dtype == torch.float16 and got.shape == (8, 4, 4)
            np.testing.assert_array_equal(
                got.numpy(), feats[p][n, v].astype(np.float16))
        np.testing.assert_array_equal(out.crop_affine.numpy(), aff[n, v])
        assert out.metainfo['priors'] == PRIORS
        assert tuple(out.metainfo['input_size']) == (64, 64)
        assert out.metainfo['warp'] == 'affine'
    # a subset of the cached priors
    t = LoadPriorFeatures(root=root, priors=('depth', ), teachers=TEACHERS)
    out = t(_packed(0, False, aff[0, 0]))['data_samples'].prior_features
    assert 'keypoint' not in out and 'depth' in out
    # the data preprocessor's device move keeps the field
    sample = t(_packed(0, False, aff[0, 0]))['data_samples'].to('cpu')
    assert torch.equal(sample.prior_features.depth,
                       torch.from_numpy(feats['depth'][0, 0]).half())
    # workers get a pickled copy
    again = pickle.loads(pickle.dumps(t))
    assert torch.equal(
        again(_packed(0, False,
                      aff[0, 0]))['data_samples'].prior_features.depth,
        sample.prior_features.depth)


def test_refusals_name_the_problem(cache):
    root, _, aff = cache
    with pytest.raises(ValueError, match='index.json.*stale.*depth'):
        LoadPriorFeatures(
            root=root,
            priors=PRIORS,
            teachers=dict(TEACHERS, depth=dict(TEACHERS['depth'], size=2)))
    with pytest.raises(ValueError, match='missing'):
        LoadPriorFeatures(
            root=root, priors=('segmentation', ), teachers=TEACHERS)
    with pytest.raises(ValueError, match='teacher_channels'):
        LoadPriorFeatures(
            root=root, priors=PRIORS, teachers=TEACHERS, teacher_channels=4)
    with pytest.raises(ValueError, match='warp'):
        LoadPriorFeatures(
            root=root, priors=PRIORS, teachers=TEACHERS, warp='nearest')
    with pytest.raises(FileNotFoundError, match='extract_prior_features'):
        LoadPriorFeatures(
            root=root + '_absent', priors=PRIORS, teachers=TEACHERS)
    t = LoadPriorFeatures(root=root, priors=PRIORS, teachers=TEACHERS)
    with pytest.raises(KeyError, match='after PackTwoHandInputs'):
        t(dict(img=np.zeros((4, 4, 3), np.uint8), img_id=11))
    unknown = _packed(0, False, aff[0, 0])
    unknown['data_samples'].set_metainfo(dict(img_id=99))
    with pytest.raises(KeyError, match='index.json.*img_id=99'):
        t(unknown)
    other = _packed(0, False, aff[0, 0])
    other['data_samples'].set_metainfo(dict(img_path='/x/other.jpg'))
    with pytest.raises(ValueError, match='stale cache or another dataset'):
        t(other)


def _neck(**kw):
    return MODELS.build(
        dict(
            type='FusionAlignmentNeck',
            in_channels=8,
            embed_dims=16,
            priors=PRIORS,
            teachers=TEACHERS,
            teacher_channels=8,
            num_layers=1,
            num_heads=2,
            ffn_dims=16,
            **kw))


@pytest.mark.parametrize(
    'cache_kw', [dict(), dict(warp='none'),
                 dict(mask_outside=False)])
def test_neck_target_equals_the_deprecated_neck_cache(cache, cache_kw):
    """The same samples (plain, flipped, a shifted crop): the loss from the
    transform's features is bit-identical to the neck's own cache read,
    and no teacher runs (there is no RGB to run them on)."""
    root, feats, aff = cache
    torch.manual_seed(0)
    neck = _neck()
    with pytest.warns(DeprecationWarning, match='LoadPriorFeatures'):
        old = _neck(prior_cache=dict(root=root, **cache_kw))
    old.load_state_dict(neck.state_dict())
    shifted = _affine(100 + 35, 80)
    samples = [
        _packed(1, False, aff[1, 0]),
        _packed(0, True, aff[0, 1]),
        _packed(2, False, shifted)
    ]
    t = LoadPriorFeatures(
        root=root, priors=PRIORS, teachers=TEACHERS, **cache_kw)
    loaded = [t(dict(s))['data_samples'] for s in samples]
    plain = [s['data_samples'] for s in _fresh(samples)]
    neck.eval()
    old.eval()
    _, aux = neck(torch.randn(3, 8, 4, 4))
    new_loss = neck.loss(aux, loaded)['loss_distill']
    old_loss = old.loss(aux, plain)['loss_distill']
    assert torch.equal(new_loss, old_loss)
    target, weight = neck.sample_prior(loaded, (4, 4))
    ref, ref_weight = old.cached_prior(plain, (4, 4))
    assert torch.equal(target, ref)
    if ref_weight is None:
        assert weight is None
    else:
        assert torch.equal(weight, ref_weight)
        assert (weight[2] == 0).any() and (weight[:2] == 1).all()
    # the unshifted samples' target is the mean of their cached features
    half = {p: torch.from_numpy(f).half().float() for p, f in feats.items()}
    mean = (half['keypoint'][1, 0] + half['depth'][1, 0]) / 2
    torch.testing.assert_close(target[0], mean, rtol=0, atol=1e-6)
    assert not neck.has_teachers and not old.has_teachers


def _fresh(samples):
    return [
        dict(
            inputs=s['inputs'],
            data_samples=HandDataSample(
                metainfo=dict(s['data_samples'].metainfo))) for s in samples
    ]


def test_neck_refuses_features_of_other_priors(cache):
    root, _, aff = cache
    t = LoadPriorFeatures(root=root, priors=('depth', ), teachers=TEACHERS)
    sample = t(_packed(0, False, aff[0, 0]))['data_samples']
    neck = _neck()
    _, aux = neck(torch.randn(1, 8, 4, 4))
    with pytest.raises(KeyError, match="missing \\['keypoint'\\]"):
        neck.loss(aux, [sample])

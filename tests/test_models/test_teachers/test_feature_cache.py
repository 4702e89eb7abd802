# Copyright (c) mmhand2p contributors. All rights reserved.
"""The on-disk teacher-feature cache: geometry, atomic writing, validation
and the neck's cached distillation target (no dataset needed; the
end-to-end extraction is tests/test_tools/test_extract_prior_features.py).
"""
import json
import math
import os
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmhand2p.datasets.transforms import crop_camera
from mmhand2p.models.teachers import (BasePriorTeacher, PriorFeatureCache,
                                      PriorFeatureCacheWriter,
                                      relative_crop_theta, teacher_config_hash,
                                      warp_feature_maps)
from mmhand2p.registry import MODELS
from mmhand2p.utils.fileio import file_sha256


@MODELS.register_module(force=True)
class _NeverRunTeacher(BasePriorTeacher):
    """Fails when run: the cached path must not call teachers."""

    def __init__(self, prior, checkpoint=None, channels=4):
        super().__init__(prior, (32, 32), out_channels=channels)

    def extract(self, images):
        raise AssertionError('a teacher ran although the cache was given')


def _crop_affine(center, size, rot, input_size=(64, 64), flip_cx=None):
    k = np.array([[300.0, 0, 100.0], [0, 300.0, 80.0], [0, 0, 1]])
    _, _, affine = crop_camera(k, center, size, rot, input_size)
    if flip_cx is not None:
        flip = np.array([[-1.0, 0, 2 * flip_cx], [0, 1.0, 0], [0, 0, 1]])
        affine = (np.vstack([affine, [0, 0, 1]]) @ flip)[:2]
    return affine


def _cell_centres_original(affine, input_size, grid_hw):
    """Original-image coordinates ``(h, w, 2)`` of the centres of a feature
    grid laid over a crop (``align_corners=False`` convention)."""
    w_in, h_in = input_size
    h, w = grid_hw
    u = (np.arange(w) + 0.5) * w_in / w - 0.5
    v = (np.arange(h) + 0.5) * h_in / h - 0.5
    uu, vv = np.meshgrid(u, v)
    q = np.stack([uu, vv, np.ones_like(uu)], -1)
    back = np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2]
    return q @ back.T


# ----------------------------------------------------------------------------
# geometry
# ----------------------------------------------------------------------------
def test_theta_is_identity_for_the_same_crop():
    a = _crop_affine((120, 90), (80, 80), 0.3)
    theta = relative_crop_theta(a[None], (64, 64), a[None], (64, 64))
    np.testing.assert_allclose(theta[0].numpy(), np.eye(2, 3), atol=1e-12)
    # the same region at another input size is still the identity
    b = _crop_affine((120, 90), (80, 80), 0.3, input_size=(128, 128))
    theta = relative_crop_theta(a[None], (64, 64), b[None], (128, 128))
    np.testing.assert_allclose(theta[0].numpy(), np.eye(2, 3), atol=1e-12)


@pytest.mark.parametrize('flip', [False, True])
def test_warp_reproduces_a_linear_field_exactly(flip):
    """Features that are the original-image coordinates of their cells,
    warped onto a shifted, scaled, rotated (and flipped) crop, are that
    crop's cells' original coordinates wherever bilinear interpolation is
    exact (between the outer cached cell centres)."""
    cx = 100.0 if flip else None
    cache_aff = _crop_affine((120, 90), (90, 90), 0.0, flip_cx=cx)
    aug_aff = _crop_affine((126, 84), (100, 100),
                           math.radians(17),
                           input_size=(96, 96),
                           flip_cx=cx)
    grid_c, grid_t = (16, 16), (12, 12)
    field = _cell_centres_original(cache_aff, (64, 64), grid_c)
    feats = torch.from_numpy(field.transpose(2, 0, 1)[None]).double()
    theta = relative_crop_theta(cache_aff[None], (64, 64), aug_aff[None],
                                (96, 96))
    out, inside = warp_feature_maps(feats, theta, grid_t)
    expected = _cell_centres_original(aug_aff, (96, 96), grid_t)
    got = out[0].numpy().transpose(1, 2, 0)
    # where each output cell samples the cache, normalised coordinates
    grid = F.affine_grid(theta, (1, 1) + grid_t, align_corners=False)[0]
    interior = (grid.abs() <= 1 - 1 / 16).all(-1).numpy()
    assert 40 < interior.sum() < 144  # the crops overlap only partly
    np.testing.assert_allclose(got[interior], expected[interior], atol=1e-9)
    # the mask is the cached crop's extent; cells outside it are clamped
    np.testing.assert_array_equal(inside[0, 0].numpy() > 0,
                                  (grid.abs() <= 1 + 1e-6).all(-1).numpy())
    assert (inside == 0).any()


@pytest.mark.parametrize('size', [(4, 4), (8, 6), (2, 3)])
def test_identity_warp_is_the_neck_resize(size):
    """With the same crop, the cached path resamples exactly like the live
    path's ``F.interpolate(bilinear, align_corners=False)``."""
    feats = torch.randn(2, 5, 4, 4)
    theta = torch.eye(2, 3, dtype=torch.float64).expand(2, 2, 3)
    out, inside = warp_feature_maps(feats, theta, size)
    ref = F.interpolate(feats, size=size, mode='bilinear', align_corners=False)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    assert bool((inside == 1).all())


# ----------------------------------------------------------------------------
# writing and reading
# ----------------------------------------------------------------------------
TEACHERS = {
    p: dict(type='_NeverRunTeacher', prior=p, channels=8)
    for p in ('keypoint', 'depth')
}


def _write(root,
           feats,
           affines,
           ids,
           paths,
           teachers=TEACHERS,
           overwrite=False,
           input_size=(64, 64)):
    """feats: {prior: (N, V, C, h, w)}; affines (N, V, 2, 3)."""
    n, v = affines.shape[:2]
    shapes = {p: f.shape[2:] for p, f in feats.items()}
    with PriorFeatureCacheWriter(
            root, n, list(feats), shapes, v, overwrite=overwrite) as w:
        for var in range(v):
            w.write(
                range(n), var, {
                    p: f[:, var]
                    for p, f in feats.items()
                }, affines[:, var], ids, paths)
        return w.commit(
            dict(
                input_size=list(input_size),
                feature_shapes={
                    p: list(s)
                    for p, s in shapes.items()
                },
                teacher_cfg_hashes={
                    p: teacher_config_hash(teachers[p])
                    for p in feats
                },
                teacher_checkpoints={
                    p: dict(path=None, sha256=None)
                    for p in feats
                },
                dataset=dict(split='train')))


@pytest.fixture
def toy_cache(tmp_path):
    rng = np.random.default_rng(0)
    n = 3
    feats = {
        p: rng.normal(size=(n, 2, 8, 4, 4)).astype(np.float32)
        for p in TEACHERS
    }
    aff = np.stack([
        np.stack([
            _crop_affine((100 + 5 * i, 80), (70, 70), 0.0),
            _crop_affine((100 + 5 * i, 80), (70, 70), 0.0, flip_cx=100.0)
        ]) for i in range(n)
    ])
    ids = [11, 12, 13]
    paths = [f'images/train/cap/img{i}.jpg' for i in ids]
    root = _write(str(tmp_path / 'cache'), feats, aff, ids, paths)
    return root, feats, aff, ids, paths


def test_roundtrip_and_lookup(toy_cache):
    root, feats, aff, ids, paths = toy_cache
    assert sorted(os.listdir(osp.dirname(root))) == ['cache']  # no tmp left
    cache = PriorFeatureCache(root)
    rows = cache.rows([13, 11], ['/data/x/' + paths[2], None])
    np.testing.assert_array_equal(rows, [2, 0])
    got, got_aff = cache.load(rows, [1, 0])
    np.testing.assert_array_equal(
        got['depth'].numpy(),
        np.stack([feats['depth'][2, 1],
                  feats['depth'][0, 0]]).astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(got_aff.numpy(),
                               np.stack([aff[2, 1], aff[0, 0]]))
    cache.validate(('keypoint', 'depth'), TEACHERS, 8)
    cache.validate(('depth', ), TEACHERS, 8)  # a subset of the priors


def test_stale_or_foreign_caches_are_rejected(toy_cache, tmp_path):
    root, _, _, _, paths = toy_cache
    cache = PriorFeatureCache(root)
    index = osp.join(root, 'index.json')
    other = dict(TEACHERS, depth=dict(TEACHERS['depth'], channels=5))
    with pytest.raises(ValueError, match='index.json.*stale.*depth'):
        cache.validate(('keypoint', 'depth'), other)
    with pytest.raises(ValueError, match='missing'):
        cache.validate(('segmentation', ), TEACHERS)
    with pytest.raises(ValueError, match='teacher_channels'):
        cache.validate(('depth', ), TEACHERS, teacher_channels=16)
    with pytest.raises(KeyError, match='img_id=99 .*index.json|index.json'):
        cache.rows([99], ['a.jpg'])
    with pytest.raises(ValueError, match='stale cache or another dataset'):
        cache.rows([11], ['/data/images/val/other.jpg'])
    # a checkpoint that changed since the extraction
    ckpt = tmp_path / 'teacher.pth'
    ckpt.write_bytes(b'weights v1')
    with_ckpt = {
        p: dict(cfg, checkpoint=str(ckpt))
        for p, cfg in TEACHERS.items()
    }
    with open(index) as f:
        meta = json.load(f)
    meta['teacher_checkpoints'] = {
        p: dict(path=str(ckpt), sha256=file_sha256(str(ckpt)))
        for p in TEACHERS
    }
    with open(index, 'w') as f:
        json.dump(meta, f)
    # the checkpoint path is not part of the config hash
    PriorFeatureCache(root).validate(('depth', ), with_ckpt)
    ckpt.write_bytes(b'weights v2')
    with pytest.raises(
            ValueError,
            match='index.json: stale cache: the depth teacher '
            'checkpoint'):
        PriorFeatureCache(root).validate(('depth', ), with_ckpt)
    PriorFeatureCache(root).validate(('depth', ),
                                     with_ckpt,
                                     check_checkpoints=False)
    # a cache without the flipped variant refuses flipped samples
    one = _write(
        str(tmp_path / 'plain'), {'depth': np.zeros((1, 1, 4, 2, 2))},
        np.zeros((1, 1, 2, 3)), [1], ['a.jpg'])
    with pytest.raises(ValueError, match='no flipped variant'):
        PriorFeatureCache(one).variant_of(True)
    with pytest.raises(FileNotFoundError, match='extract_prior_features'):
        PriorFeatureCache(str(tmp_path / 'nothing'))


def test_writer_is_all_or_nothing(tmp_path):
    root = str(tmp_path / 'cache')
    feats = {'depth': np.zeros((2, 1, 4, 2, 2))}
    aff = np.zeros((2, 1, 2, 3))
    # an exception (here Ctrl-C) half-way: nothing is left behind
    with pytest.raises(KeyboardInterrupt):
        with PriorFeatureCacheWriter(root, 2, ['depth'], {'depth': (4, 2, 2)},
                                     1) as w:
            w.write([0], 0, {'depth': feats['depth'][:1, 0]}, aff[:1, 0], [1],
                    ['a'])
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []
    # committing an incomplete cache fails and leaves nothing
    with pytest.raises(RuntimeError, match='never written'):
        with PriorFeatureCacheWriter(root, 2, ['depth'], {'depth': (4, 2, 2)},
                                     1) as w:
            w.write([0], 0, {'depth': feats['depth'][:1, 0]}, aff[:1, 0], [1],
                    ['a'])
            w.commit({})
    assert os.listdir(tmp_path) == []
    # float16 overflow is an error, not inf in the cache
    with pytest.raises(ValueError, match='float16'):
        with PriorFeatureCacheWriter(root, 1, ['depth'], {'depth': (4, 2, 2)},
                                     1) as w:
            w.write([0], 0, {'depth': np.full((1, 4, 2, 2), 1e6)}, aff[:1, 0],
                    [1], ['a'])
    # the temporary folder of a killed writer is removed by the next one
    dead = tmp_path / '.cache.tmp-999999999'
    dead.mkdir()
    _write(root, feats, aff, [1, 2], ['a', 'b'], teachers={'depth': {}})
    assert sorted(os.listdir(tmp_path)) == ['cache']
    # an existing cache is kept unless overwrite, and replaced atomically
    with pytest.raises(FileExistsError, match='overwrite'):
        PriorFeatureCacheWriter(root, 1, ['depth'], {'depth': (4, 2, 2)}, 1)
    with pytest.raises(KeyboardInterrupt):
        with PriorFeatureCacheWriter(
                root, 1, ['depth'], {'depth': (4, 2, 2)}, 1, overwrite=True):
            raise KeyboardInterrupt
    assert PriorFeatureCache(root).num_samples == 2
    _write(
        root, {'depth': np.ones((1, 1, 4, 2, 2))},
        aff[:1], [5], ['c'],
        teachers={'depth': {}},
        overwrite=True)
    assert PriorFeatureCache(root).num_samples == 1
    assert sorted(os.listdir(tmp_path)) == ['cache']


# ----------------------------------------------------------------------------
# the neck
# ----------------------------------------------------------------------------
class _Meta:

    def __init__(self, **meta):
        self.metainfo = meta


def _neck(root, **cache_kw):
    return MODELS.build(
        dict(
            type='FusionAlignmentNeck',
            in_channels=8,
            embed_dims=16,
            priors=('keypoint', 'depth'),
            teachers=TEACHERS,
            teacher_channels=8,
            num_layers=1,
            num_heads=2,
            ffn_dims=16,
            prior_cache=dict(root=root, **cache_kw)))


def test_neck_reads_the_cache_without_teachers(toy_cache):
    root, feats, aff, ids, paths = toy_cache
    neck = _neck(root)
    _, aux = neck(torch.randn(2, 8, 4, 4))
    samples = [
        _Meta(
            img_id=12,
            img_path=paths[1],
            crop_affine=aff[1, 0],
            input_size=(64, 64),
            flip=False),
        _Meta(
            img_id=11,
            img_path=paths[0],
            crop_affine=aff[0, 1],
            input_size=(64, 64),
            flip=True),
    ]
    loss = neck.loss(aux, samples)['loss_distill']
    half = {
        p: f.astype(np.float16).astype(np.float32)
        for p, f in feats.items()
    }
    target = torch.from_numpy(
        (np.stack([half['keypoint'][1, 0], half['keypoint'][0, 1]]) +
         np.stack([half['depth'][1, 0], half['depth'][0, 1]])) / 2)
    expected = F.mse_loss(aux['fae_prior'], target)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert not neck.has_teachers
    loss.backward()
    assert neck.fae_head[0].weight.grad is not None
    with pytest.raises(ValueError, match='data samples'):
        neck.loss(aux, None)


def test_neck_masks_cells_outside_the_cached_crop(toy_cache):
    root, feats, aff, ids, paths = toy_cache
    # the sample's crop is the cached one shifted right by half its width
    shifted = _crop_affine((100 + 35, 80), (70, 70), 0.0)
    meta = [
        _Meta(
            img_id=11,
            img_path=paths[0],
            crop_affine=shifted,
            input_size=(64, 64),
            flip=False)
    ]
    neck = _neck(root)
    target, weight = neck.cached_prior(meta, (4, 4))
    # the right half of the grid lies outside the cached crop
    np.testing.assert_array_equal(weight[0, 0].numpy(),
                                  np.array([[1, 1, 0, 0]] * 4))
    # its left half is the cached right half
    half = {
        p: f.astype(np.float16).astype(np.float32)
        for p, f in feats.items()
    }
    mean = (half['keypoint'][0, 0] + half['depth'][0, 0]) / 2
    np.testing.assert_allclose(
        target[0, :, :, :2].numpy(), mean[:, :, 2:], atol=1e-6)
    _, aux = neck(torch.randn(1, 8, 4, 4))
    loss = neck.loss(aux, meta)['loss_distill']
    expected = ((aux['fae_prior'] - target)[..., :2]**2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # no mask: every cell counts (clamped border features outside)
    neck = _neck(root, mask_outside=False)
    assert neck.cached_prior(meta, (4, 4))[1] is None
    # warp='none': the cached crop's features as they are, every cell counts
    neck = _neck(root, warp='none')
    target, weight = neck.cached_prior(meta, (4, 4))
    assert weight is None
    np.testing.assert_allclose(target[0].numpy(), mean, atol=1e-6)
    # warp='refuse' (or False) refuses an augmented crop, accepts the cached
    for warp in ('refuse', False):
        neck = _neck(root, warp=warp)
        with pytest.raises(ValueError, match="warp='refuse'.*img_id=\\[11\\]"):
            neck.cached_prior(meta, (4, 4))
    same = [
        _Meta(
            img_id=11,
            img_path=paths[0],
            crop_affine=aff[0, 0],
            input_size=(64, 64),
            flip=False)
    ]
    neck.cached_prior(same, (4, 4))


def test_neck_prior_cache_config_errors(toy_cache):
    root = toy_cache[0]
    with pytest.raises(ValueError, match='unknown keys'):
        _neck(root, wrap=True)
    with pytest.raises(ValueError, match="'affine', 'none' or 'refuse'"):
        _neck(root, warp='nearest')
    with pytest.raises(ValueError, match="prior_source='fae'"):
        MODELS.build(
            dict(
                type='FusionAlignmentNeck',
                in_channels=8,
                embed_dims=16,
                teachers={
                    p: dict(type='_NeverRunTeacher', prior=p)
                    for p in ('keypoint', 'segmentation', 'depth')
                },
                teacher_channels=8,
                num_heads=2,
                prior_source='teacher',
                prior_cache=dict(root=root)))
    neck = _neck(root)
    with pytest.raises(KeyError, match='crop_affine'):
        neck.cached_prior([_Meta(img_id=11, input_size=(64, 64))], (4, 4))


def test_model_copies_share_the_cache(toy_cache):
    import copy
    import pickle
    root = toy_cache[0]
    neck = _neck(root)
    cache = neck.open_prior_cache()
    cache.features('depth')  # a memory map is open
    assert copy.deepcopy(neck).open_prior_cache() is cache
    again = pickle.loads(pickle.dumps(cache))
    assert again._features == {}
    np.testing.assert_array_equal(
        again.features('depth'), cache.features('depth'))

# Copyright (c) mmhand2p contributors. All rights reserved.
"""DetectThenReconstruct: detector + pairing + training crops +
reconstructor on whole images (random weights; the detector's output is
forced where a value must be known)."""
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from mmengine.runner import load_checkpoint

from mmhand2p.datasets import InterHand26MDataset
from mmhand2p.datasets.transforms import (PackFullImageInputs,
                                          TwoHandCropAffine, apply_affine,
                                          invert_affine)
from mmhand2p.models.reconstructors import merge_part_checkpoints
from mmhand2p.registry import MODELS
from mmhand2p.utils.geometry import project_points

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(osp.dirname(HERE)))
sys.path.insert(0, osp.join(REPO, 'tests'))
from test_registry import TINY_RTMDET  # noqa: E402

CONFIG = osp.join(REPO, 'configs', 'detect_reconstruct',
                  'rtmdet-nano_a2p-res18_synthetic-full-image.py')
CROP = (64, 64)
RECONSTRUCTOR = dict(
    type='TopDownTwoHandReconstructor',
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(type='mmpose.ResNet', depth=18, out_indices=(3, )),
    head=dict(
        type='TwoHandMANOHead',
        in_channels=512,
        num_layers=1,
        num_heads=4,
        ffn_dims=64))


def _model(**kwargs):
    cfg = dict(
        type='DetectThenReconstruct',
        detector=TINY_RTMDET,
        reconstructor=RECONSTRUCTOR,
        det_input_size=(128, 128),
        crop_input_size=CROP)
    cfg.update(kwargs)
    return MODELS.build(cfg).eval()


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    m = _model()
    m.detector.init_weights()  # RTMDet's prior: scores of about 0.01
    return m


def _dataset(root, pipeline):
    return InterHand26MDataset(
        data_root=root,
        split='test',
        require_mano=True,
        index_cache_dir=None,
        test_mode=True,
        pipeline=pipeline)


@pytest.fixture(scope='module')
def full_batch(syn_root):
    ds = _dataset(
        syn_root,
        [dict(type='LoadTwoHandImage'),
         dict(type='PackFullImageInputs')])
    return pseudo_collate([ds[i] for i in range(len(ds))])


@pytest.fixture(scope='module')
def crop_batch(syn_root):
    ds = _dataset(syn_root, [
        dict(type='LoadTwoHandImage'),
        dict(type='TwoHandCropAffine', input_size=CROP, test_mode=True),
        dict(type='PackTwoHandInputs')
    ])
    return pseudo_collate([ds[i] for i in range(len(ds))])


def _copy(batch):
    """A fresh copy (predict writes into the data samples)."""
    return pickle.loads(pickle.dumps(batch))


def _run(model, batch):
    data = model.data_preprocessor(_copy(batch), False)
    return model(**data, mode='predict')


def _force(model, monkeypatch, dets):
    """Make the detector return ``dets`` (per image: boxes, scores, labels
    in image pixels)."""

    def detect(images):
        assert len(images) == len(dets)
        return [
            dict(
                bboxes=np.asarray(b, np.float64).reshape(-1, 4),
                scores=np.asarray(s, np.float64),
                labels=np.asarray(lab, np.int64)) for b, s, lab in dets
        ]

    monkeypatch.setattr(model, 'detect', detect)


# ----------------------------------------------------------------------------
def test_random_detector_finds_nothing(model):
    imgs = [
        torch.randint(0, 256, (3, 128, 128), dtype=torch.uint8),
        torch.randint(0, 256, (3, 96, 160), dtype=torch.uint8)
    ]
    dets = model.detect(imgs)
    assert [len(d['bboxes']) for d in dets] == [0, 0]
    out = model(imgs, None, mode='predict')
    for o, (h, w) in zip(out, ((128, 128), (96, 160))):
        inst = o.pred_instances
        assert len(inst) == 0
        assert inst.joints_3d.shape == (0, 21, 3)
        assert inst.vertices.shape == (0, 778, 3)
        assert inst.joints_2d.shape == (0, 21, 2)
        assert inst.mano_pose.shape == (0, 16, 3)
        assert inst.mano_betas.shape == (0, 10)
        assert inst.bboxes.shape == (0, 4) and inst.labels.shape == (0, )
        assert o.metainfo['pairs'] == []
        hands = o.pred_hands
        assert hands.joints_3d.shape == (2, 21, 3)
        assert hands.vertices.shape == (2, 778, 3)
        assert torch.equal(hands.hand_valid, torch.zeros(2))
        assert not hands.joints_3d.any()
        assert o.metainfo['img_shape'] == (h, w)
        # a photo without intrinsics: f = max(H, W), centred
        k = o.metainfo['cam_intrinsics']
        assert o.metainfo['cam_intrinsics_assumed']
        np.testing.assert_allclose(k, [[max(h, w), 0, (w - 1) / 2],
                                       [0, max(h, w), (h - 1) / 2], [0, 0, 1]])


def test_detect_resizes_pads_and_maps_boxes_back(model, monkeypatch):
    from mmengine.structures import InstanceData
    seen = {}

    def predict(inputs, samples, rescale=True):
        seen.update(inputs=inputs, meta=samples[0].metainfo, rescale=rescale)
        samples[0].pred_instances = InstanceData(
            bboxes=torch.tensor([[8.0, 8.0, 40.0, 40.0], [0, 0, 4, 4]]),
            scores=torch.tensor([0.9, 0.1]),
            labels=torch.tensor([1, 0]))
        return samples

    monkeypatch.setattr(model.detector, 'predict', predict)
    img = torch.full((3, 96, 160), 200, dtype=torch.uint8)
    det = model.detect([img])[0]
    # 160 x 96 fits 128 x 128 at 0.8: 128 x 77 (int(76.8 + 0.5)), padded
    assert seen['inputs'].shape == (1, 3, 128, 128)
    assert seen['meta']['img_shape'] == (77, 128) and not seen['rescale']
    dp = model.detector.data_preprocessor
    x = seen['inputs'][0] * dp.std + dp.mean  # back to 0-255
    torch.testing.assert_close(
        x[:, :77], torch.full((3, 77, 128), 200.), atol=1e-3, rtol=0)
    torch.testing.assert_close(
        x[:, 77:], torch.full((3, 51, 128), 114.), atol=1e-3, rtol=0)
    # below det_score_thr dropped; COCO pixels -> integer pixel centres
    sx, sy = 128 / 160, 77 / 96
    np.testing.assert_allclose(
        det['bboxes'],
        [[8 / sx - 0.5, 8 / sy - 0.5, 40 / sx - 0.5, 40 / sy - 0.5]])
    np.testing.assert_allclose(det['scores'], [0.9], rtol=1e-6)
    assert det['labels'].tolist() == [1]


def test_gt_boxes_equal_the_test_pipeline(model, full_batch, crop_batch):
    """Oracle boxes give exactly what the reconstructor gives on the test
    pipeline's crops, mapped back to the image."""
    model.box_source = 'gt'
    try:
        out = _run(model, full_batch)
    finally:
        model.box_source = 'detector'
    rec = model.reconstructor
    ref = rec(
        **rec.data_preprocessor(_copy(crop_batch), False), mode='predict')
    for o, r, full_ds in zip(out, ref, full_batch['data_samples']):
        gt_valid = full_ds.gt_hands.hand_valid.float()
        hands, r_hands = o.pred_hands, r.pred_hands
        assert torch.equal(hands.hand_valid, gt_valid)
        v = gt_valid.bool()
        for name in ('joints_3d', 'vertices', 'mano_pose', 'mano_betas',
                     'mano_transl'):
            torch.testing.assert_close(
                hands.get(name)[v],
                r_hands.get(name)[v])
            assert not hands.get(name)[~v].any()
        # image px: the projection with the image's K ...
        k = torch.as_tensor(o.metainfo['cam_intrinsics'])
        torch.testing.assert_close(hands.joints_2d[v],
                                   project_points(hands.joints_3d[v], k))
        # ... which is the crop's 2D joints mapped back through the crop
        back = apply_affine(r_hands.joints_2d[v].numpy(),
                            invert_affine(r.metainfo['crop_affine']))
        np.testing.assert_allclose(hands.joints_2d[v].numpy(), back, atol=2e-3)
        torch.testing.assert_close(hands.bboxes[v], full_ds.gt_hands.bboxes[v])
        assert len(o.pred_instances) == int(v.sum())
        pair = o.metainfo['pairs'][0]
        if v.all():
            rel = hands.joints_3d[1, 0] - hands.joints_3d[0, 0]
            np.testing.assert_allclose(
                pair['rel_transl'], rel.numpy(), atol=1e-6)
        else:
            assert pair['rel_transl'] is None


def test_detector_boxes_make_the_training_crop(model, full_batch, crop_batch,
                                               monkeypatch):
    """Forced detections at the annotated boxes: the reconstructor gets
    TwoHandCropAffine(test_mode=True)'s crop, pixel for pixel, and its
    virtual camera."""
    dets = []
    for ds in full_batch['data_samples']:
        v = ds.gt_hands.hand_valid.numpy()
        idx = np.flatnonzero(v)
        dets.append((ds.gt_hands.bboxes.numpy()[idx], 0.9 - 0.1 * idx, idx))
    _force(model, monkeypatch, dets)
    crops = []
    crop_pair = model.crop_pair

    def spy(*args):
        out = crop_pair(*args)
        crops.append(out)
        return out

    monkeypatch.setattr(model, 'crop_pair', spy)
    out = _run(model, full_batch)
    assert len(crops) == len(crop_batch['inputs'])
    for (crop, sample), ref, ref_ds, o in zip(crops, crop_batch['inputs'],
                                              crop_batch['data_samples'], out):
        assert crop.shape == (3, ) + CROP[::-1]
        assert torch.equal(crop, ref)
        np.testing.assert_allclose(sample.metainfo['cam_intrinsics'],
                                   ref_ds.metainfo['cam_intrinsics'])
        np.testing.assert_allclose(sample.metainfo['crop_affine'],
                                   ref_ds.metainfo['crop_affine'])
        assert sample.metainfo['input_size'] == CROP
        # the annotated hands of one image are one pair
        assert len(o.metainfo['pairs']) == 1


def test_pair_layouts(model, full_batch, monkeypatch):
    img = full_batch['inputs'][0]
    k = full_batch['data_samples'][0].metainfo['cam_intrinsics']
    big = torch.zeros(3, 256, 256, dtype=torch.uint8)
    big[:, :128, :128] = img
    big[:, 128:, 128:] = img
    cases = [
        # (image, boxes, scores, labels, expected pairs)
        (img, [], [], [], []),
        (img, [[60, 60, 90, 90]], [0.8], [1], [(-1, 0)]),
        (img, [[60, 60, 90, 90], [30, 60, 60, 90]], [0.8, 0.9], [1,
                                                                 0], [(1, 0)]),
        # two people, a pair each, and a left hand far from both
        (big, [[10, 10, 40, 40], [150, 150, 180, 180], [40, 10, 70, 40],
               [180, 150, 210, 180],
               [10, 200, 30, 220]], [0.9, 0.7, 0.8, 0.95,
                                     0.5], [0, 0, 1, 1, 1], [(0, 2), (1, 3),
                                                             (-1, 4)]),
    ]
    for image, boxes, scores, labels, expected in cases:
        _force(model, monkeypatch, [(boxes, scores, labels)])
        from mmhand2p.structures import HandDataSample
        ds = HandDataSample(metainfo=dict(cam_intrinsics=k))
        o = model([image], [ds], mode='predict')[0]
        inst, pairs = o.pred_instances, o.metainfo['pairs']
        n = sum((r >= 0) + (lft >= 0) for r, lft in expected)
        assert len(inst) == n
        assert len(pairs) == len(expected)
        rows_labels, rows_pairs, rows_boxes = [], [], []
        for j, ((r, lft), entry) in enumerate(zip(expected, pairs)):
            for side, det_idx in (('right', r), ('left', lft)):
                assert (entry[side] >= 0) == (det_idx >= 0)
                if det_idx >= 0:
                    assert entry[side] == len(rows_labels)
                    rows_labels.append(0 if side == 'right' else 1)
                    rows_pairs.append(j)
                    rows_boxes.append(boxes[det_idx])
            if r >= 0 and lft >= 0:
                rel = (
                    inst.joints_3d[entry['left'], 0] -
                    inst.joints_3d[entry['right'], 0])
                np.testing.assert_allclose(
                    entry['rel_transl'], rel.numpy(), atol=1e-6)
                assert entry['score'] == pytest.approx(scores[r] + scores[lft])
            else:
                assert entry['rel_transl'] is None
        assert inst.labels.tolist() == rows_labels
        assert inst.pair_ids.tolist() == rows_pairs
        if n:
            np.testing.assert_allclose(inst.bboxes.numpy(),
                                       np.asarray(rows_boxes, np.float32))
            torch.testing.assert_close(
                inst.joints_2d,
                project_points(inst.joints_3d, torch.as_tensor(k)))
            assert not inst.refined.any()
        # pred_hands: the best pair, zeros where it has no hand
        valid = torch.zeros(2)
        if expected:
            for h, side in enumerate(('right', 'left')):
                row = pairs[0][side]
                if row >= 0:
                    valid[h] = 1
                    torch.testing.assert_close(o.pred_hands.joints_3d[h],
                                               inst.joints_3d[row])
                    torch.testing.assert_close(o.pred_hands.bboxes[h],
                                               inst.bboxes[row])
                else:
                    assert not o.pred_hands.vertices[h].any()
        assert torch.equal(o.pred_hands.hand_valid, valid)


class _StubRefiner:
    """Records what it is given and moves every hand by 1 cm in x."""

    def __init__(self):
        self.calls = []

    def refine(self, preds, samples):
        self.calls.append([s.metainfo['cam_intrinsics'] for s in samples])
        for p in preds:
            p.joints_3d = p.joints_3d + torch.tensor([0.01, 0, 0])
            p.vertices = p.vertices + torch.tensor([0.01, 0, 0])
            p.set_metainfo(dict(refined=True))
        return preds


def test_refiner_sees_complete_pairs_with_their_crop_camera(
        model, full_batch, monkeypatch):
    img = full_batch['inputs'][0]
    k = full_batch['data_samples'][0].metainfo['cam_intrinsics']
    boxes = [[30, 60, 60, 90], [60, 60, 90, 90], [100, 5, 120, 25]]
    scores, labels = [0.9, 0.8, 0.7], [0, 1, 0]
    _force(model, monkeypatch, [(boxes, scores, labels)])
    stub = _StubRefiner()
    monkeypatch.setattr(model.reconstructor, 'refiner', stub)
    from mmhand2p.structures import HandDataSample
    o = model([img], [HandDataSample(metainfo=dict(cam_intrinsics=k))],
              mode='predict')[0]
    assert len(stub.calls) == 1 and len(stub.calls[0]) == 1
    det = dict(
        bboxes=np.asarray(boxes, np.float64),
        scores=np.asarray(scores),
        labels=np.asarray(labels))
    _, sample = model.crop_pair(img, np.asarray(k, np.float64), det, (0, 1))
    np.testing.assert_allclose(stub.calls[0][0],
                               sample.metainfo['cam_intrinsics'])
    assert o.pred_instances.refined.tolist() == [True, True, False]
    hands = o.pred_hands
    assert hands.refined.tolist() == [True, True]
    torch.testing.assert_close(hands.joints_3d - hands.unrefined_joints_3d,
                               torch.tensor([0.01, 0, 0]).expand(2, 21, 3))
    # refine=False: the refiner is not called
    model.refine = False
    try:
        o = model([img], [HandDataSample(metainfo=dict(cam_intrinsics=k))],
                  mode='predict')[0]
    finally:
        model.refine = True
    assert len(stub.calls) == 1
    assert 'unrefined_joints_3d' not in o.pred_hands


def test_training_modes_raise(model):
    img = [torch.zeros(3, 32, 32, dtype=torch.uint8)]
    for mode in ('loss', 'tensor'):
        with pytest.raises(NotImplementedError, match='train the detector'):
            model(img, None, mode=mode)
    with pytest.raises(ValueError, match='box_source'):
        _model(box_source='oracle')
    with pytest.raises(ValueError, match='2 classes'):
        _model(
            detector=dict(
                TINY_RTMDET,
                bbox_head=dict(TINY_RTMDET['bbox_head'], num_classes=3)))
    with pytest.raises(FileNotFoundError, match='not_there.py'):
        _model(detector='configs/not_there.py')


def test_part_checkpoints_load(model, tmp_path):
    det = tmp_path / 'det.pth'
    rec = tmp_path / 'rec.pth'
    torch.save({'state_dict': model.detector.state_dict()}, det)
    torch.save(
        {
            'state_dict': {
                f'module.{k}': v
                for k, v in model.reconstructor.state_dict().items()
            }
        }, rec)
    expected = model.state_dict()

    def same(m):
        state = m.state_dict()
        assert state.keys() == expected.keys()
        return all(torch.equal(state[k], expected[k]) for k in expected)

    torch.manual_seed(1)
    loaded = _model(
        detector_checkpoint=str(det), reconstructor_checkpoint=str(rec))
    assert same(loaded)
    # one merged checkpoint, loaded the mmengine way (tools/test.py)
    merged = merge_part_checkpoints(
        str(det), str(rec), str(tmp_path / 'both.pth'))
    for p in loaded.parameters():
        p.data.normal_()
    assert not same(loaded)
    load_checkpoint(loaded, merged, map_location='cpu', strict=True)
    assert same(loaded)
    # a checkpoint of another model is refused with the missing keys (the
    # detector's is loaded before the reconstructor is built)
    torch.save({'state_dict': {
        'backbone.stem.0.conv.weight': torch.zeros(1)
    }}, tmp_path / 'bad.pth')
    with pytest.raises(RuntimeError, match='does not match'):
        _model(detector_checkpoint=str(tmp_path / 'bad.pth'))
    torch.save({'state_dict': {}}, tmp_path / 'empty.pth')
    with pytest.raises(RuntimeError, match='lacks'):
        _model(detector_checkpoint=str(tmp_path / 'empty.pth'))


def test_pack_full_image_inputs_refuses_crops(syn_root):
    ds = _dataset(syn_root, [])
    info = ds.get_data_info(0)
    from mmhand2p.datasets.transforms import LoadTwoHandImage
    results = LoadTwoHandImage()(dict(info))
    packed = PackFullImageInputs()(dict(results))
    assert packed['inputs'].shape == (3, 128, 128)
    meta = packed['data_samples'].metainfo
    np.testing.assert_allclose(meta['cam_intrinsics'], info['cam_intrinsics'])
    np.testing.assert_allclose(meta['crop_affine'], np.eye(2, 3))
    gt = packed['data_samples'].gt_hands
    np.testing.assert_allclose(gt.joints_2d.numpy(), info['joints_2d'])
    assert 'joints_25d' not in gt
    cropped = TwoHandCropAffine(input_size=CROP, test_mode=True)(dict(results))
    with pytest.raises(ValueError, match='remove TwoHandCropAffine'):
        PackFullImageInputs()(cropped)


def test_tools_test_on_full_images(syn_root, tmp_path):
    """tools/test.py with the config, oracle boxes and TwoHandMetric."""
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = tmp_path / 'det_rec.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    report = tmp_path / 'report.json'
    preds = tmp_path / 'preds.pkl'
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO, env.get('PYTHONPATH')) if p)
    res = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'test.py'), CONFIG,
        str(ckpt), '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(preds), '--cfg-options', 'model.box_source=gt',
        f'test_dataloader.dataset.data_root={syn_root}',
        'test_dataloader.dataset.index_cache_dir=None',
        'test_dataloader.batch_size=2', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        f'test_evaluator.out_file={report}'
    ],
                         cwd=REPO,
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    metrics = json.loads(report.read_text())['metrics']
    assert metrics['num_all'] == 4 and metrics['num_IH'] == 2
    for key, value in metrics.items():
        subset = key.rsplit('_', 1)[-1]
        if key.startswith('num_') or subset not in ('all', 'SH', 'IH'):
            continue
        if metrics[f'num_{subset}'] > 0:
            assert value is not None and np.isfinite(value), key
    assert np.isfinite(metrics['MRRPE'])
    with open(preds, 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == 4
    assert all(len(d['pred_instances']['labels']) >= 1 for d in dumped)


@pytest.mark.parametrize('shape,size', [((600, 800), (120, 160)),
                                        ((100, 90), (160, 144)),
                                        ((7, 5), (3, 2)), ((1, 1), (4, 4)),
                                        ((33, 1000), (5, 160))])
def test_resize_bilinear_matches_interpolate(shape, size):
    """The gather-then-blend resize of detect() (no float copy of the whole
    photo) samples where F.interpolate does, down- and upscaling."""
    from mmhand2p.models.reconstructors.detect_reconstruct import \
        resize_bilinear
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (3, ) + shape, dtype=torch.uint8, generator=g)
    ref = F.interpolate(
        img[None].float(), size=size, mode='bilinear',
        align_corners=False)[0]
    out = resize_bilinear(img, size)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)


def test_stage_times_are_recorded_by_the_model(model, full_batch,
                                               monkeypatch):
    """predict() writes the batch's per-stage wall times into every sample.
    The clock is faked: the detector takes 1 s, the refiner 5 s and
    everything else no time, so each stage must get exactly its own."""
    from mmhand2p.structures import HandDataSample
    from mmhand2p.utils import timing
    img = full_batch['inputs'][0]
    k = full_batch['data_samples'][0].metainfo['cam_intrinsics']
    now = [100.0]
    monkeypatch.setattr(timing.time, 'perf_counter', lambda: now[0])

    class SlowRefiner(_StubRefiner):

        def refine(self, preds, samples):
            now[0] += 5.0
            return super().refine(preds, samples)

    monkeypatch.setattr(model.reconstructor, 'refiner', SlowRefiner())

    def run(boxes, labels):
        _force(model, monkeypatch, [(boxes, [0.9] * len(boxes), labels)] * 2)
        forced = model.detect

        def slow_detect(images):
            now[0] += 1.0
            return forced(images)

        monkeypatch.setattr(model, 'detect', slow_detect)
        out = model([img, img], [
            HandDataSample(metainfo=dict(cam_intrinsics=k)) for _ in range(2)
        ],
                    mode='predict')
        times = out[0].metainfo['stage_times_ms']
        assert out[1].metainfo['stage_times_ms'] == times
        return times

    pair = ([[30, 60, 60, 90], [60, 60, 90, 90]], [0, 1])
    assert run(*pair) == dict(
        detector=1000.0, reconstruction=0.0, refinement=5000.0)
    # one hand only: the refiner has no complete pair to work on
    assert run([[30, 60, 60, 90]], [0]) == dict(
        detector=1000.0, reconstruction=0.0, refinement=0.0)
    model.refine = False
    try:
        assert run(*pair) == dict(
            detector=1000.0, reconstruction=0.0, refinement=None)
    finally:
        model.refine = True

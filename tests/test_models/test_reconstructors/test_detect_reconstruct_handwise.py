# Copyright (c) mmhand2p contributors. All rights reserved.
"""DetectThenReconstruct with the hand-wise reconstructor (issue 19 item 1):
the crop / pack steps come from the reconstructor's test pipeline by type
(``HandwiseCropAffine`` + ``PackHandwiseInputs``), outputs are in the
image's camera frame and absent hands are not reported."""
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmhand2p.datasets import InterHand26MDataset
from mmhand2p.registry import MODELS
from mmhand2p.utils.geometry import project_points

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
DETECTOR = osp.join(REPO, 'configs', 'rtmdet_hand',
                    'rtmdet_nano_1xb8-25min-cpu_synthetic-hands-160.py')
HANDWISE = osp.join(
    REPO, 'configs', 'a2p', 'synthetic',
    'a2p_res18w32-handwise_1xb16-cpu_synthetic-128x128.py')
FIELDS = ('joints_3d', 'vertices', 'joints_2d', 'mano_pose', 'mano_betas',
          'mano_transl')


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='DetectThenReconstruct',
            detector=DETECTOR,
            reconstructor=HANDWISE,
            det_input_size=(128, 128),
            box_source='gt')).eval()


def _samples(root, pipeline):
    ds = InterHand26MDataset(
        data_root=root,
        split='test',
        require_mano=True,
        index_cache_dir=None,
        test_mode=True,
        pipeline=pipeline)
    samples = [ds[i] for i in range(len(ds))]
    valid = [s['data_samples'].gt_hands.hand_valid.numpy() for s in samples]
    both = [i for i, v in enumerate(valid) if v.all()][0]
    left = [i for i, v in enumerate(valid) if v.tolist() == [0, 1]][0]
    return [samples[both], samples[left]]


def test_crop_and_pack_steps_from_the_test_pipeline(model):
    assert type(model.crop_transform).__name__ == 'HandwiseCropAffine'
    assert type(model.pack_transform).__name__ == 'PackHandwiseInputs'
    assert model.crop_transform.test_mode
    assert model.crop_input_size == (128, 128)


def test_handwise_detect_then_reconstruct(model, syn_root):
    full = pseudo_collate(
        _samples(syn_root, [
            dict(type='LoadTwoHandImage'),
            dict(type='PackFullImageInputs')
        ]))
    data = model.data_preprocessor(pickle.loads(pickle.dumps(full)), False)
    out = model(**data, mode='predict')

    # the hand-wise reconstructor directly on the same samples through its
    # own test pipeline
    rec = model.reconstructor
    crops = pseudo_collate(
        _samples(syn_root, [
            dict(type='LoadTwoHandImage'),
            dict(type='HandwiseCropAffine', input_size=(128, 128)),
            dict(type='PackHandwiseInputs')
        ]))
    with torch.no_grad():
        direct = rec.predict(**rec.data_preprocessor(crops, False))

    for n, (o, d) in enumerate(zip(out, direct)):
        valid = full['data_samples'][n].gt_hands.hand_valid.numpy() > 0
        k = torch.as_tensor(o.metainfo['cam_intrinsics'], dtype=torch.float32)
        inst, hands = o.pred_instances, o.pred_hands
        # absent hands are not reported
        assert inst.labels.tolist() == np.flatnonzero(valid).tolist()
        assert hands.hand_valid.tolist() == valid.astype(float).tolist()
        pair = o.metainfo['pairs'][0]
        for h, name in enumerate(('right', 'left')):
            if not valid[h]:
                assert pair[name] == -1
                assert not hands.joints_3d[h].any()
                continue
            row = pair[name]
            assert inst.labels[row] == h
            # joints_2d: the full-image projection of joints_3d
            torch.testing.assert_close(
                inst.joints_2d[row],
                project_points(inst.joints_3d[row], k),
                rtol=0,
                atol=1e-6)
            # the hand equals the hand-wise reconstructor's own prediction
            for f in FIELDS:
                torch.testing.assert_close(
                    inst.get(f)[row],
                    d.pred_hands.get(f)[h].float(),
                    rtol=0,
                    atol=1e-6,
                    msg=f'image {n} hand {h} {f}')
                torch.testing.assert_close(
                    hands.get(f)[h], inst.get(f)[row], rtol=0, atol=0)
            assert torch.isfinite(inst.joints_2d[row]).all()
        if valid.all():
            j = inst.joints_3d
            rel = (j[pair['left'], 0] - j[pair['right'], 0]).tolist()
            np.testing.assert_allclose(pair['rel_transl'], rel, atol=1e-7)
        else:
            assert pair['rel_transl'] is None


def test_test_transform_finds_the_first_of_several_types():
    from mmengine.config import Config

    from mmhand2p.utils.config_parts import test_transform as first
    full = Config(
        dict(test_pipeline=[
            dict(type='LoadTwoHandImage'),
            dict(type='mmhand2p.HandwiseCropAffine', input_size=(8, 8)),
            dict(type='TwoHandCropAffine', input_size=(9, 9))
        ]))
    both = ('TwoHandCropAffine', 'HandwiseCropAffine')
    assert first(full, both)['input_size'] == (8, 8)
    assert first(full, 'TwoHandCropAffine')['input_size'] == (9, 9)
    assert first(full, ('Pad', 'Resize')) is None

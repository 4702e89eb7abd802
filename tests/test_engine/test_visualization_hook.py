# Copyright (c) mmhand2p contributors. All rights reserved.
"""TwoHandVisualizationHook with a fake runner."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmhand2p.conventions import load_mano_file, resolve_mano_path
from mmhand2p.engine.hooks import TwoHandVisualizationHook
from mmhand2p.registry import HOOKS
from mmhand2p.structures import HandDataSample
from mmhand2p.visualization import TwoHandLocalVisualizer

SIZE = 64
K = np.array([[80.0, 0, 31.5], [0, 80.0, 31.5], [0, 0, 1]])
BGR = (200, 30, 0)  # the input's colour, BGR as PackTwoHandInputs packs


def _batch(n=2, img_path='img_{}.jpg', meta=None):
    template = np.stack([
        load_mano_file(resolve_mano_path(None, side))['v_template']
        for side in (True, False)
    ])
    verts = template + np.array([[[-0.07, 0, 0.6]], [[0.07, 0, 0.6]]])
    inputs, samples = [], []
    for i in range(n):
        img = np.empty((SIZE, SIZE, 3), np.uint8)
        img[:] = BGR
        inputs.append(torch.from_numpy(img.transpose(2, 0, 1).copy()))
        s = HandDataSample(
            metainfo=dict(
                img_path=img_path.format(i),
                cam_intrinsics=K,
                input_size=(SIZE, SIZE),
                **(meta or {})))
        s.gt_hands = InstanceData(
            joints_2d=torch.full((2, 21, 2), 20.0),
            joints_2d_valid=torch.ones(2, 21),
            hand_valid=torch.ones(2, dtype=torch.bool))
        s.pred_hands = InstanceData(
            vertices=torch.as_tensor(verts, dtype=torch.float32),
            joints_3d=torch.as_tensor(verts[:, :21], dtype=torch.float32))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples), samples


@pytest.fixture
def visualizer(tmp_path, request):
    # the most recently created instance is the "runner's" visualizer
    return TwoHandLocalVisualizer.get_instance(
        f'hook_test_{request.node.name}',
        vis_backends=[dict(type='LocalVisBackend')],
        save_dir=str(tmp_path / 'backend'))


def test_hook_saves_files_and_backend_images(tmp_path, visualizer):
    hook = HOOKS.build(dict(type='TwoHandVisualizationHook', interval=2))
    runner = SimpleNamespace(work_dir=str(tmp_path), iter=7)
    data_batch, outputs = _batch()
    for batch_idx in range(3):
        hook.after_val_iter(runner, batch_idx, data_batch, outputs)
    hook.after_test_iter(runner, 0, data_batch, outputs)

    val_dir = tmp_path / 'vis' / 'val' / 'iter_7'
    # batches 0 and 2 (interval 2), first sample of the batch
    assert sorted(p.name for p in val_dir.iterdir()) == [
        '000000_img_0.png', '000002_img_0.png'
    ]
    assert (tmp_path / 'vis' / '000000_img_0.png').is_file()
    saved = cv2.imread(str(val_dir / '000000_img_0.png'))  # BGR
    # the input image with the side view next to it
    assert saved.shape == (SIZE, 2 * SIZE, 3)
    # the corner is the input's colour: channels were converted correctly
    assert tuple(saved[0, 0]) == BGR
    # the meshes were drawn over the input
    assert (np.any(saved[:, :SIZE] != BGR, axis=-1)).sum() > 50
    # the same pictures went to the backend (LocalVisBackend)
    backend = tmp_path / 'backend' / 'vis_data' / 'vis_image'
    names = sorted(p.name for p in backend.iterdir())
    assert names == ['test_0.png', 'val_000000_7.png', 'val_000002_7.png']
    np.testing.assert_array_equal(
        cv2.imread(str(backend / 'val_000000_7.png')), saved)


def test_hook_disabled_absolute_out_dir_and_original_image(
        tmp_path, visualizer):
    runner = SimpleNamespace(work_dir=str(tmp_path / 'work'), iter=0)
    data_batch, outputs = _batch()
    TwoHandVisualizationHook(
        enable=False).after_test_iter(runner, 0, data_batch, outputs)
    assert not (tmp_path / 'work').exists()

    # the original image: 80 x 100, identity crop
    ori = np.zeros((80, 100, 3), np.uint8)
    ori[:] = (10, 20, 30)
    cv2.imwrite(str(tmp_path / 'ori_0.png'), ori)
    meta = dict(
        ori_cam_intrinsics=K,
        ori_shape=(80, 100),
        rot_z=np.eye(3),
        crop_affine=np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    data_batch, outputs = _batch(
        1, img_path=str(tmp_path / 'ori_{}.png'), meta=meta)
    out_dir = tmp_path / 'show'
    hook = TwoHandVisualizationHook(
        interval=1,
        out_dir=str(out_dir),
        image_source='original',
        save_to_backends=False)
    hook.after_test_iter(runner, 3, data_batch, outputs)
    saved = cv2.imread(str(out_dir / '000003_ori_0.png'))
    assert saved.shape == (80, 200, 3)
    assert tuple(saved[-1, 0]) == (10, 20, 30)
    assert not (tmp_path / 'backend').exists()

    # an unreadable original falls back to the network input
    data_batch, outputs = _batch(
        1, img_path=str(tmp_path / 'missing_{}.png'), meta=meta)
    hook.after_test_iter(runner, 4, data_batch, outputs)
    saved = cv2.imread(str(out_dir / '000004_missing_0.png'))
    assert saved.shape == (SIZE, 2 * SIZE, 3)


def test_hook_rejects_bad_arguments():
    with pytest.raises(ValueError, match='interval'):
        TwoHandVisualizationHook(interval=0)
    with pytest.raises(ValueError, match='image_source'):
        TwoHandVisualizationHook(image_source='disk')


def test_a_drawing_error_does_not_end_the_run(tmp_path, visualizer):
    runner = SimpleNamespace(work_dir=str(tmp_path), iter=0)
    data_batch, outputs = _batch(1)
    # vertices that the hand model's faces do not fit
    outputs[0].pred_hands = InstanceData(vertices=torch.ones(2, 10, 3))
    hook = TwoHandVisualizationHook(interval=1)
    hook.after_val_iter(runner, 0, data_batch, outputs)
    assert hook.enable is False
    assert not (tmp_path / 'vis').exists()

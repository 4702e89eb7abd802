# Copyright (c) mmhand2p contributors. All rights reserved.
"""A tiny two-hand model, dataset and metric for the tools' tests.

Imported by the toy configs through ``custom_imports`` (the tests put this
folder on ``PYTHONPATH``). The model predicts one translation per hand from a
32 x 32 image; its "meshes" are the bundled hand model's rest meshes moved
by that translation, so the visualizer has real MANO-topology meshes to draw.
"""
import os

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from torch import nn
from torch.utils.data import Dataset

from mmhand2p.registry import DATASETS, METRICS, MODELS
from mmhand2p.structures import HandDataSample

SIZE = 32
K = np.array([[40.0, 0.0, 15.5], [0.0, 40.0, 15.5], [0.0, 0.0, 1.0]])
# both hands' wrists in front of the camera, left of the right hand's mirror
BASE_TRANSL = np.array([[-0.06, 0.0, 0.6], [0.06, 0.0, 0.6]])


def _template() -> np.ndarray:
    """``(2, 778, 3)`` rest meshes of the bundled right / left models."""
    from mmhand2p.conventions import load_mano_file, resolve_mano_path
    return np.stack([
        np.asarray(
            load_mano_file(resolve_mano_path(None, side))['v_template'])
        for side in (True, False)
    ]).astype(np.float32)


@MODELS.register_module(force=True)
class ToyTwoHandModel(BaseModel):
    """backbone -> head -> translation of each hand (B, 2, 3).

    ``teachers`` is a frozen, training-only submodule (as prior teachers
    are): count_params must leave it out of the deployed count.
    Parameters: backbone 3 * 4 * 9 + 4 = 112, head 4 * 6 + 6 = 30, teachers
    3 * 5 + 5 = 20 (frozen), plus 2 * 3 + 3 = 9 outside the module tree.
    """

    def __init__(self, data_preprocessor=None, teachers=None):
        super().__init__(data_preprocessor=data_preprocessor)
        # like FusionAlignmentNeck: configured teachers need their weights
        ckpt = (teachers or {}).get('checkpoint')
        if ckpt is not None and not os.path.isfile(ckpt):
            raise FileNotFoundError(f'teacher checkpoint {ckpt} not found')
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, 6)
        self.teachers = nn.ModuleList([nn.Linear(3, 5)])
        self.teachers.requires_grad_(False)
        # built outside the module tree (like FusionAlignmentNeck's
        # on-demand teachers): not a parameter of the model
        self._on_demand = [nn.Linear(2, 3)]
        self.register_buffer(
            'template', torch.as_tensor(_template()), persistent=False)
        self.register_buffer(
            'base',
            torch.as_tensor(BASE_TRANSL, dtype=torch.float32),
            persistent=False)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, (list, tuple)) \
            else inputs
        x = x.float() / 255.0
        feats = self.head(self.backbone(x))
        transl = feats.float().view(-1, 2, 3) * 0.01 + self.base
        if mode == 'tensor':
            return transl
        if mode == 'loss':
            target = torch.stack([s.gt_hands.transl
                                  for s in data_samples]).to(transl)
            # logged, not a loss: 1 when the forward ran under bf16 autocast
            is_bf16 = float(feats.dtype == torch.bfloat16)
            return dict(
                loss=((transl - target)**2).sum(-1).mean() * 100,
                bf16=transl.new_tensor(is_bf16))
        verts = self.template[None] + transl[:, :, None]
        for i, sample in enumerate(data_samples):
            sample.pred_hands = InstanceData(
                transl=transl[i].detach(),
                vertices=verts[i].detach(),
                joints_3d=verts[i, :, :21].detach())
        return data_samples


@DATASETS.register_module(force=True)
class ToyTwoHandDataset(Dataset):
    """``num_samples`` 32 x 32 images (uint8 BGR ``(3, H, W)``) with a
    known translation per hand."""

    metainfo = dict(dataset_name='toy_two_hand')

    def __init__(self, num_samples: int = 8):
        self.num_samples = num_samples

    def __len__(self):
        return self.num_samples

    def __getitem__(self, i):
        rng = np.random.default_rng(i)
        img = rng.integers(0, 255, (3, SIZE, SIZE), dtype=np.uint8)
        transl = BASE_TRANSL + 0.01 * (img.mean() / 255.0 - 0.5)
        j2d = np.tile(np.linspace(4.0, 27.0, 21)[None, :, None], (2, 1, 2))
        sample = HandDataSample(
            metainfo=dict(
                img_path=f'toy_{i:03d}.png',
                cam_intrinsics=K.copy(),
                input_size=(SIZE, SIZE),
                ori_shape=(SIZE, SIZE)))
        sample.gt_hands = InstanceData(
            transl=torch.as_tensor(transl, dtype=torch.float32),
            joints_2d=torch.as_tensor(j2d, dtype=torch.float32),
            joints_2d_valid=torch.ones(2, 21),
            hand_valid=torch.ones(2, dtype=torch.bool))
        return dict(inputs=torch.from_numpy(img), data_samples=sample)


@METRICS.register_module(force=True)
class ToyTranslError(BaseMetric):
    """Mean translation error in millimetres; ``fail=True`` raises in
    ``compute_metrics`` (to test that a failed run writes no ``--out``)."""

    default_prefix = 'toy'

    def __init__(self, fail: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.fail = fail

    def process(self, data_batch, data_samples):
        for s in data_samples:
            err = (s['pred_hands']['transl'] -
                   s['gt_hands']['transl']).norm(dim=-1).mean()
            self.results.append(float(err) * 1000)

    def compute_metrics(self, results):
        if self.fail:
            raise RuntimeError('ToyTranslError: failing on purpose')
        return dict(transl_err=float(np.mean(results)))

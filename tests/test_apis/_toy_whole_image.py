# Copyright (c) mmhand2p contributors. All rights reserved.
"""A toy one-stage whole-image model (what ACR will be) and a toy
visualizer, for the tests that run them through ``Hand2PInferencer`` and
``demo/image_demo.py`` with no change there.

Imported by the toy configs through ``custom_imports`` (``conftest.py`` puts
this folder on ``sys.path``).
"""
import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.structures import InstanceData

from mmhand2p.registry import METRICS, MODELS, VISUALIZERS
from mmhand2p.structures import HandDataSample
from mmhand2p.visualization import TwoHandLocalVisualizer

#: camera-frame translation of the right / left toy hand, metres
TRANSL = np.array([[-0.1, 0.0, 0.6], [0.1, 0.0, 0.6]], np.float32)
#: colour of every pixel of the toy visualizer's overlay (RGB)
TOY_OVERLAY_RGB = (10, 200, 30)


def template() -> np.ndarray:
    """``(2, 778, 3)`` rest meshes of the bundled right / left models."""
    from mmhand2p.conventions import load_mano_file, resolve_mano_path
    return np.stack([
        np.asarray(load_mano_file(resolve_mano_path(None, side))['v_template'])
        for side in (True, False)
    ]).astype(np.float32)


@MODELS.register_module(force=True)
class ToyWholeImageModel(BaseModel):
    """One-stage, whole image in, ``pred_hands`` out (no detector, no
    crops, no ``pred_instances``, no ``stage_times_ms``).

    The right hand is "found" when the left half of the image is bright
    (mean > 127), the left hand when the right half is; found hands are
    the bundled rest meshes moved by :data:`TRANSL`. The camera is the
    metainfo ``cam_intrinsics``, else ``f = max(H, W)`` at the image centre
    (written back with ``cam_intrinsics_assumed``).
    """

    def __init__(self, data_preprocessor=None, score=0.75):
        super().__init__(data_preprocessor=data_preprocessor)
        self.score = float(score)
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.register_buffer(
            'template', torch.from_numpy(template()), persistent=False)

    def forward(self, inputs, data_samples=None, mode='predict'):
        if mode != 'predict':
            raise NotImplementedError('a toy model for inference only')
        out = []
        for img, ds in zip(inputs, data_samples):
            h, w = img.shape[-2:]
            k = ds.metainfo.get('cam_intrinsics')
            if k is None:
                f = float(max(h, w))
                k = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2],
                              [0, 0, 1]], np.float32)
                ds.set_metainfo(
                    dict(cam_intrinsics=k, cam_intrinsics_assumed=True))
            k = torch.as_tensor(np.asarray(k), dtype=torch.float32)
            gray = img.float().mean(0)
            found = torch.stack([
                gray[:, :w // 2].mean() > 127, gray[:, w // 2:].mean() > 127
            ])
            transl = torch.from_numpy(TRANSL) * self.scale
            verts = self.template + transl[:, None]
            joints = verts[:, :21]
            uvw = joints @ k.T
            hands = InstanceData(
                hand_valid=found.float(),
                vertices=verts.detach(),
                joints_3d=joints.detach(),
                joints_2d=(uvw[..., :2] / uvw[..., 2:]).detach(),
                mano_pose=torch.zeros(2, 16, 3),
                mano_betas=torch.zeros(2, 10),
                mano_transl=transl.detach(),
                scores=torch.full((2, ), self.score))
            sample = ds if ds is not None else HandDataSample()
            sample.pred_hands = hands
            out.append(sample)
        return out


@VISUALIZERS.register_module(force=True)
class ToyPanelVisualizer(TwoHandLocalVisualizer):
    """Draws every whole-image panel as one flat colour (to see that the
    inferencer draws through the config's visualizer)."""

    def draw_image_panels(self, image, data_sample, panels=('overlay', ),
                          draw_pred=True, max_side=None):
        drawn = super().draw_image_panels(image, data_sample, panels,
                                          draw_pred, max_side)
        drawn['overlay'][:] = TOY_OVERLAY_RGB
        return drawn


@METRICS.register_module(force=True)
class ToyHandCount(BaseMetric):
    """The number of hands found (``pred_hands.hand_valid``) in the test
    set (to run the toy model through ``tools/test.py``)."""

    default_prefix = 'toy_whole'

    def process(self, data_batch, data_samples):
        for s in data_samples:
            self.results.append(float(s['pred_hands']['hand_valid'].sum()))

    def compute_metrics(self, results):
        return dict(hands=float(sum(results)))

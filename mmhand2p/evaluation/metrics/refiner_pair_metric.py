# Copyright (c) mmhand2p contributors. All rights reserved.
"""How the diffusion refiner changes held-out pairs
(:class:`mmhand2p.datasets.PenetrationPairsDataset`)."""
from typing import Optional

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from mmhand2p.geometry import closed_hand_faces
from mmhand2p.registry import METRICS
from ..functional.penetration import penetration_volume
from ._utils import mano_layer

__all__ = ['RefinerPairMetric']


@METRICS.register_module()
class RefinerPairMetric(BaseMetric):
    """How the refiner changes held-out pairs: errors against ``X0`` and
    penetration, of the condition (input) and of the refined hands.

    Reported (``cond`` = the penetrating input, ``refined`` = the output):
    ``MPJPE_*`` (mm, 21 joints of both hands, each relative to its wrist),
    ``MRRPE_*`` (mm, error of the left-minus-right wrist offset),
    ``PenVol_*`` (cm^3, mean exact intersection volume, capped meshes,
    manifold3d; also ``PenVol_gt``) and ``PenRatio_*`` (fraction of pairs
    with PenVol above ``volume_threshold``). The hands are kept per batch and
    measured in :meth:`compute_metrics`, so the test loop's iteration time is
    the refiner's.

    Args:
        mano_model_path (str, optional): MANO folder (the refiner's); None
            for the bundled model.
        volume_threshold (float): cm^3. Defaults to 1e-3.
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str, optional): default ``'refiner'``.
    """
    default_prefix = 'refiner'

    def __init__(self,
                 mano_model_path: Optional[str] = None,
                 volume_threshold: float = 1e-3,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.mano_model_path = mano_model_path
        self.volume_threshold = volume_threshold
        self._layer = None

    def process(self, data_batch, data_samples) -> None:
        inputs = data_batch['inputs']
        for i, pred in enumerate(data_samples):
            self.results.append(
                dict(
                    # InstanceData, or the dict the Evaluator makes of it
                    refined=(torch.as_tensor(pred['mano_pose']).cpu(),
                             torch.as_tensor(pred['mano_betas']).cpu(),
                             torch.as_tensor(pred['joints_3d'])[:, 0].cpu()),
                    cond=tuple(inputs[f'c_{k}'][i].detach().cpu()
                               for k in ('pose', 'betas', 'root')),
                    gt=tuple(inputs[f'x0_{k}'][i].detach().cpu()
                             for k in ('pose', 'betas', 'root'))))

    def _hands(self, params):
        if self._layer is None:
            self._layer = mano_layer(self.mano_model_path)
        pose, betas, root = (
            torch.stack([p[k] for p in params]).float() for k in range(3))
        with torch.no_grad():
            out = self._layer(pose=pose, betas=betas[..., :10])
        shift = root - out.joints[:, :, 0]
        return out.vertices + shift[:, :, None], out.joints + shift[:, :, None]

    def compute_metrics(self, results: list) -> dict:
        hands = {
            k: self._hands([r[k] for r in results])
            for k in ('cond', 'refined', 'gt')
        }
        faces = self._layer.faces.cpu().numpy()
        closed = [closed_hand_faces(faces[h]) for h in range(2)]

        def penvol(v):
            v = v.double().numpy()
            caps = [
                np.concatenate([v[:, h]] + [
                    v[:, h][:, loop].mean(1, keepdims=True)
                    for loop in closed[h][1]
                ], 1) for h in range(2)
            ]
            return penetration_volume(caps[0], closed[0][0], caps[1],
                                      closed[1][0])[0] * 1e6

        gt_j = hands['gt'][1]
        gt_rel = gt_j - gt_j[:, :, :1]
        metrics = dict(PenVol_gt=float(penvol(hands['gt'][0]).mean()))
        for k in ('cond', 'refined'):
            v, j = hands[k]
            metrics[f'MPJPE_{k}'] = float(
                ((j - j[:, :, :1]) - gt_rel).norm(dim=-1).mean() * 1000)
            rel = j[:, 1, 0] - j[:, 0, 0]
            metrics[f'MRRPE_{k}'] = float(
                (rel -
                 (gt_j[:, 1, 0] - gt_j[:, 0, 0])).norm(dim=-1).mean() * 1000)
            vol = penvol(v)
            metrics[f'PenVol_{k}'] = float(vol.mean())
            metrics[f'PenRatio_{k}'] = float((vol
                                              > self.volume_threshold).mean())
        return metrics

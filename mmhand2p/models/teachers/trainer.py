# Copyright (c) mmhand2p contributors. All rights reserved.
"""Training the synthetic-world prior teachers (then frozen for A2P)."""
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmhand2p.registry import MODELS
from mmhand2p.structures import stack_field
from mmhand2p.utils.typing import OptConfigType, SampleList
from .teachers import PriorNet, SyntheticWorldTeacher

__all__ = ['PriorTeacherTrainer', 'joint_heatmaps']


def joint_heatmaps(joints_2d: Tensor, valid: Tensor, size: Sequence[int],
                   stride: int, sigma: float) -> Tensor:
    """Gaussian heatmaps of both hands' 21 joints.

    Args:
        joints_2d (Tensor): ``(B, 2, 21, 2)`` input pixels.
        valid (Tensor): ``(B, 2, 21)``.
        size (Sequence[int]): heatmap (h, w).
        stride (int): input pixels per heatmap pixel.
        sigma (float): in heatmap pixels.

    Returns:
        Tensor: ``(B, 42, h, w)``, right hand's joints first, zero for
        invalid joints.
    """
    b = joints_2d.shape[0]
    h, w = size
    centres = (joints_2d.reshape(b, 42, 2) + 0.5) / stride - 0.5
    ys = torch.arange(h, device=joints_2d.device, dtype=joints_2d.dtype)
    xs = torch.arange(w, device=joints_2d.device, dtype=joints_2d.dtype)
    gy = torch.exp(-(ys[None, None] - centres[..., 1:2])**2 / (2 * sigma**2))
    gx = torch.exp(-(xs[None, None] - centres[..., 0:1])**2 / (2 * sigma**2))
    maps = gy[..., :, None] * gx[..., None, :]
    return maps * valid.reshape(b, 42, 1, 1).to(maps.dtype)


class _Holder(nn.Module):
    """Keeps the checkpoint keys ``teacher.net.*`` that
    :class:`SyntheticWorldTeacher` loads."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net


@MODELS.register_module()
class PriorTeacherTrainer(BaseModel):
    """Fits a :class:`PriorNet` to one dense prior of the synthetic set:
    both hands' joint heatmaps, hand segmentation (background / right /
    left) or hand depth relative to the hands' median depth. The trained
    checkpoint is then loaded, frozen, by ``SyntheticWorldTeacher``.

    Args:
        prior (str): ``'keypoint'``, ``'segmentation'`` or ``'depth'``.
        widths (Sequence[int]): PriorNet encoder widths.
        heatmap_sigma (float): Gaussian sigma in heatmap pixels.
        depth_scale (float): relative depth (metres) is multiplied by this
            before the L1 loss.
        data_preprocessor (dict, optional): image normalisation; must match
            the teacher's (ImageNet mean/std, RGB).
    """

    STRIDE = 4

    def __init__(self,
                 prior: str,
                 widths: Sequence[int] = (24, 32, 64, 96, 128),
                 heatmap_sigma: float = 2.0,
                 depth_scale: float = 10.0,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if prior not in SyntheticWorldTeacher.OUT_CHANNELS:
            raise ValueError(f'unknown prior {prior!r}')
        self.prior = prior
        self.heatmap_sigma = heatmap_sigma
        self.depth_scale = depth_scale
        self.teacher = _Holder(
            PriorNet(SyntheticWorldTeacher.OUT_CHANNELS[prior], widths))

    def _targets(self, data_samples: SampleList, size, device) -> Dict:
        if self.prior == 'keypoint':
            j2d = stack_field(data_samples, 'joints_2d')
            valid = stack_field(data_samples, 'joints_2d_valid')
            if j2d is None or valid is None:
                raise KeyError('keypoint teacher needs gt_hands.joints_2d')
            return dict(
                heatmaps=joint_heatmaps(j2d.to(device).float(),
                                        valid.to(device).float(), size,
                                        self.STRIDE, self.heatmap_sigma))
        key = 'gt_seg' if self.prior == 'segmentation' else 'gt_depth'
        maps = []
        for ds in data_samples:
            if key not in ds:
                raise KeyError(f'{self.prior} teacher needs data_sample.{key}'
                               ' (add LoadPriorMaps to the pipeline)')
            maps.append(getattr(ds, key).data.float())
        full = torch.stack(maps).to(device)  # (B, 1, H, W)
        small = F.interpolate(full, size=size, mode='nearest')[:, 0]
        if self.prior == 'segmentation':
            return dict(seg=small.long())
        on = small > 0
        # relative to each image's median hand depth
        med = torch.stack([
            d[m].median() if m.any() else d.new_zeros(())
            for d, m in zip(small, on)
        ])
        return dict(depth=(small - med[:, None, None]) * self.depth_scale,
                    depth_valid=on.float())

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict:
        _, pred = self.teacher.net(inputs)
        t = self._targets(data_samples, pred.shape[-2:], pred.device)
        if self.prior == 'keypoint':
            return dict(loss_heatmap=F.mse_loss(pred, t['heatmaps']) * 1e3)
        if self.prior == 'segmentation':
            return dict(loss_seg=F.cross_entropy(pred, t['seg']))
        err = (pred[:, 0] - t['depth']).abs() * t['depth_valid']
        return dict(loss_depth=err.sum() / t['depth_valid'].sum().clamp(1))

    def predict(self, inputs: Tensor, data_samples: SampleList) -> SampleList:
        _, pred = self.teacher.net(inputs)
        t = self._targets(data_samples, pred.shape[-2:], pred.device)
        for i, ds in enumerate(data_samples):
            out = {}
            if self.prior == 'keypoint':
                hm = pred[i]
                w = hm.shape[-1]
                idx = hm.flatten(1).argmax(1)
                uv = torch.stack([idx % w, idx // w], 1).float()
                uv = (uv + 0.5) * self.STRIDE - 0.5
                gt = stack_field([ds], 'joints_2d')[0].reshape(42, 2)
                valid = stack_field([ds], 'joints_2d_valid')[0].reshape(42)
                out['kpt_err_px'] = ((uv.cpu() - gt).norm(dim=1) * valid,
                                     valid)
            elif self.prior == 'segmentation':
                lab = pred[i].argmax(0).cpu()
                gt = t['seg'][i].cpu()
                inter = [((lab == c) & (gt == c)).sum() for c in (1, 2)]
                union = [((lab == c) | (gt == c)).sum() for c in (1, 2)]
                out['seg_iou'] = (torch.stack(inter), torch.stack(union))
            else:
                m = t['depth_valid'][i] > 0
                err = (pred[i, 0] - t['depth'][i]).abs()[m] / self.depth_scale
                out['depth_err_m'] = (err.sum().cpu(), m.sum().cpu())
            ds.set_field(out, 'prior_eval')
        return data_samples

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[SampleList] = None,
                mode: str = 'tensor') -> Union[Dict, SampleList, Tensor]:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        return self.teacher.net(inputs)[1]

# Copyright (c) mmhand2p contributors. All rights reserved.
"""When to refine: the two hands' boxes overlap and the hands penetrate."""
import logging
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from mmengine.logging import print_log
from torch import Tensor

from mmhand2p.registry import MODELS
from mmhand2p.utils.typing import OptConfigType

__all__ = ['boxes_from_points', 'box_iou', 'TwoHandGate']


def boxes_from_points(points: Tensor) -> Tensor:
    """Axis-aligned boxes of point sets.

    Args:
        points (Tensor): ``(..., N, 2)`` pixels.

    Returns:
        Tensor: ``(..., 4)`` ``x1, y1, x2, y2``.
    """
    return torch.cat([points.amin(-2), points.amax(-2)], dim=-1)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of paired boxes.

    Args:
        a (Tensor): ``(..., 4)`` ``x1, y1, x2, y2``.
        b (Tensor): ``(..., 4)``.

    Returns:
        Tensor: ``(...)`` in [0, 1]; 0 for empty boxes.
    """
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12),
                       torch.zeros_like(union))


class TwoHandGate:
    """Which samples the refiner runs on (A2P: only when the two hands'
    boxes overlap, IoU > 0, and a penetration check fires).

    Args:
        iou_thr (float): refine only if the boxes' IoU exceeds it. Defaults
            to 0 (any overlap).
        check (str): the penetration check: ``'collision'`` (default, the
            ``collision`` loss finds at least ``min_pairs`` penetrating
            pairs), ``'volume'`` (exact PenVol of the capped meshes above
            ``min_volume`` cm^3, manifold3d) or ``'none'`` (boxes only).
        collision (dict, optional): the collision loss of the check;
            defaults to ``HybridCollisionLoss()``.
        min_pairs (int): see ``check``. Defaults to 1.
        min_volume (float): cm^3, see ``check``. Defaults to 1e-3 (1 mm^3).
    """

    def __init__(self,
                 iou_thr: float = 0.0,
                 check: str = 'collision',
                 collision: OptConfigType = None,
                 min_pairs: int = 1,
                 min_volume: float = 1e-3) -> None:
        if check not in ('collision', 'volume', 'none'):
            raise ValueError("gate check must be 'collision', 'volume' or "
                             f"'none', got {check!r}")
        self.iou_thr = float(iou_thr)
        self.check = check
        self.collision = MODELS.build(
            collision if collision is not None else dict(
                type='HybridCollisionLoss'))
        self.min_pairs = int(min_pairs)
        self.min_volume = float(min_volume)
        self._closed = None

    def _penvol(self, vertices: Tensor, faces: Tensor) -> np.ndarray:
        from mmhand2p.geometry import closed_hand_faces, intersection_volumes
        if self._closed is None:
            self._closed = [
                closed_hand_faces(faces[h].cpu().numpy()) for h in range(2)
            ]
        v = vertices.detach().cpu().double().numpy()
        caps = []
        for h, (_, loops) in enumerate(self._closed):
            centres = [
                v[:, h][:, loop].mean(1, keepdims=True) for loop in loops
            ]
            caps.append(np.concatenate([v[:, h]] + centres, axis=1))
        vol, _ = intersection_volumes(caps[0], self._closed[0][0], caps[1],
                                      self._closed[1][0])
        return vol * 1e6  # m^3 -> cm^3

    def _volumes(self, vertices: Tensor, faces: Tensor) -> np.ndarray:
        """PenVol (cm^3) of ``(N, 2, V, 3)`` hands; a sample whose PenVol
        fails (a degenerate prediction) gets ``inf`` (refine it) by itself:
        the batch is retried one sample at a time, so one bad sample does
        not open the gate for the others."""
        try:
            return np.asarray(self._penvol(vertices, faces), np.float64)
        except ValueError as e:
            if len(vertices) == 1:
                print_log(
                    f'TwoHandGate: PenVol failed ({e}); refining this sample',
                    logger='current',
                    level=logging.WARNING)
                return np.full(1, np.inf)
        return np.concatenate([
            self._volumes(vertices[i:i + 1], faces)
            for i in range(len(vertices))
        ])

    def __call__(self, vertices: Tensor, faces: Tensor,
                 boxes: Optional[Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        """Decide per sample.

        Args:
            vertices (Tensor): ``(B, 2, V, 3)`` predicted hands, metres.
            faces (Tensor): ``(2, F, 3)``.
            boxes (Tensor, optional): ``(B, 2, 4)`` the hands' image boxes;
                None skips the box test.

        Returns:
            tuple: ``refine (B,)`` bool and a dict with ``iou (B,)`` and the
            check's ``num_pairs`` or ``volume`` (for the samples whose
            boxes overlap; 0 elsewhere).
        """
        bsz = vertices.shape[0]
        info: Dict[str, Tensor] = {}
        mask = torch.ones(bsz, dtype=torch.bool, device=vertices.device)
        if boxes is not None:
            iou = box_iou(boxes[:, 0], boxes[:, 1])
            info['iou'] = iou
            mask &= iou > self.iou_thr
        idx = mask.nonzero(as_tuple=True)[0]
        if self.check == 'none' or len(idx) == 0:
            return mask, info
        if self.check == 'collision':
            with torch.no_grad():
                res = self.collision.per_sample(vertices[idx], faces)
            pairs = torch.zeros(bsz, dtype=torch.long, device=mask.device)
            pairs[idx] = res.num_pairs
            info['num_pairs'] = pairs
            mask &= pairs >= self.min_pairs
        else:
            vol_sub = torch.as_tensor(
                self._volumes(vertices[idx], faces), dtype=torch.float32)
            vol = torch.zeros(bsz, device=mask.device)
            vol[idx] = vol_sub.to(mask.device)
            info['volume'] = vol
            mask &= vol > self.min_volume
        return mask, info

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(iou_thr={self.iou_thr}, check='
                f'{self.check!r}, min_pairs={self.min_pairs}, min_volume='
                f'{self.min_volume})')

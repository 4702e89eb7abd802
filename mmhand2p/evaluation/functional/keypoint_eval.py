# Copyright (c) mmhand2p contributors. All rights reserved.
"""Pure, batched keypoint / vertex error functions (torch).

Every function takes tensors (numpy arrays are converted) with any leading
batch dimensions and works in the unit of its inputs (the metrics pass
metres and multiply by 1000 to report millimetres). Shapes use ``N`` for the
points of one hand (21 joints or 778 vertices); two-hand tensors are
``(B, 2, N, 3)`` with hand axis 0 = right, 1 = left.

Alignment is a separate, explicit step:

* root alignment: ``p - p[root]`` for prediction and ground truth, each with
  its own root (:func:`root_aligned_errors`);
* bone-length scaling (IntagHand / DIR): the root-relative prediction is
  multiplied by ``|gt[b] - gt[a]| / |pred[b] - pred[a]|`` with ``a = 0``
  (wrist) and ``b = 9`` (middle MCP) (:func:`bone_length_scale`);
* Procrustes (PA-*): similarity transform fitted per hand by
  :func:`mmhand2p.utils.geometry.procrustes_align`
  (:func:`procrustes_aligned_errors`).
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from mmhand2p.utils.geometry import procrustes_align, project_points

__all__ = [
    'AXES', 'as_tensor', 'masked_mean', 'point_errors', 'bone_length_scale',
    'root_aligned_errors', 'mpjpe', 'procrustes_aligned_errors',
    'relative_root', 'mrrpe', 'pck', 'auc', 'pck_curve_auc',
    'projected_point_errors', 'regress_joints'
]

#: the error variants: full 3D distance, image-plane (camera x, y) distance,
#: and depth (camera z) absolute difference, as in A2P's ablation
AXES = ('xyz', 'xy', 'z')

ArrayLike = Union[Tensor, np.ndarray]


def as_tensor(x: ArrayLike, dtype: Optional[torch.dtype] = None) -> Tensor:
    """``torch.as_tensor`` that keeps tensors' devices and floats 64-bit."""
    t = torch.as_tensor(x)
    if dtype is not None:
        t = t.to(dtype)
    return t


def _check_same_shape(pred: Tensor, gt: Tensor, what: str) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f'{what}: prediction and ground truth must have the '
                         f'same shape, got {tuple(pred.shape)} and '
                         f'{tuple(gt.shape)}')
    if pred.dim() < 2 or pred.shape[-1] not in (2, 3):
        raise ValueError(f'{what}: expected points of shape (..., N, 3) or '
                         f'(..., N, 2), got {tuple(pred.shape)}')


def masked_mean(values: ArrayLike,
                mask: Optional[ArrayLike] = None,
                dim: Union[None, int, Sequence[int]] = None) -> Tensor:
    """Mean of ``values`` over the entries where ``mask`` is true.

    Args:
        values (Tensor): any shape.
        mask (Tensor, optional): broadcastable to ``values``; bool or 0/1.
        dim (int | sequence, optional): dims to reduce; all if None.

    Returns:
        Tensor: the mean, ``nan`` where no entry is valid.
    """
    values = as_tensor(values)
    if not values.is_floating_point():
        values = values.double()
    if mask is None:
        mask_t = torch.ones_like(values, dtype=torch.bool)
    else:
        mask_t = as_tensor(mask).to(values.device).bool().expand_as(values)
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    total = torch.where(mask_t, values, zero)
    count = mask_t.to(values.dtype)
    if dim is None:
        s, n = total.sum(), count.sum()
    else:
        s, n = total.sum(dim), count.sum(dim)
    return torch.where(n > 0, s / n.clamp(min=1), torch.full_like(s, np.nan))


def point_errors(pred: ArrayLike, gt: ArrayLike, axes: str = 'xyz') -> Tensor:
    """Per-point errors.

    Args:
        pred (Tensor): ``(..., N, 3)``.
        gt (Tensor): ``(..., N, 3)``.
        axes (str): ``'xyz'`` Euclidean distance, ``'xy'`` distance in the
            camera's image plane, ``'z'`` absolute depth difference.

    Returns:
        Tensor: ``(..., N)``.
    """
    pred, gt = as_tensor(pred), as_tensor(gt)
    _check_same_shape(pred, gt, 'point_errors')
    diff = pred - gt
    if axes == 'xyz':
        return diff.norm(dim=-1)
    if axes == 'xy':
        return diff[..., :2].norm(dim=-1)
    if axes == 'z':
        return diff[..., 2].abs()
    raise ValueError(f'axes must be one of {AXES}, got {axes!r}')


def bone_length_scale(pred_joints: ArrayLike,
                      gt_joints: ArrayLike,
                      joint_a: int = 0,
                      joint_b: int = 9,
                      eps: float = 1e-8) -> Tuple[Tensor, Tensor]:
    """Ratio of ground-truth to predicted length of one bone.

    IntagHand's and DIR's evaluation scale the root-relative prediction of
    each hand by ``|gt[9] - gt[0]| / |pred[9] - pred[0]|`` (wrist to middle
    MCP).

    Args:
        pred_joints (Tensor): ``(..., J, 3)``.
        gt_joints (Tensor): ``(..., J, 3)``.
        joint_a (int): first joint of the bone. Defaults to 0 (wrist).
        joint_b (int): second joint. Defaults to 9 (middle MCP).
        eps (float): predicted lengths below this are invalid.

    Returns:
        tuple: ``scale`` ``(...)`` (1 where invalid) and ``valid`` ``(...)``.
    """
    pred_joints, gt_joints = as_tensor(pred_joints), as_tensor(gt_joints)
    _check_same_shape(pred_joints, gt_joints, 'bone_length_scale')
    len_pred = (pred_joints[..., joint_b, :] -
                pred_joints[..., joint_a, :]).norm(dim=-1)
    len_gt = (gt_joints[..., joint_b, :] -
              gt_joints[..., joint_a, :]).norm(dim=-1)
    valid = len_pred > eps
    scale = torch.where(valid, len_gt / len_pred.clamp(min=eps),
                        torch.ones_like(len_pred))
    return scale, valid


def root_aligned_errors(pred: ArrayLike,
                        gt: ArrayLike,
                        pred_root: ArrayLike,
                        gt_root: ArrayLike,
                        scale: Optional[ArrayLike] = None,
                        axes: str = 'xyz') -> Tensor:
    """Errors after subtracting each set's own root (and optional scaling).

    ``err = | s * (pred - pred_root) - (gt - gt_root) |`` (per axes).

    Args:
        pred (Tensor): ``(..., N, 3)`` joints or vertices.
        gt (Tensor): ``(..., N, 3)``.
        pred_root (Tensor): ``(..., 3)`` root of the prediction.
        gt_root (Tensor): ``(..., 3)`` root of the ground truth.
        scale (Tensor, optional): ``(...)`` factor applied to the
            root-relative prediction (see :func:`bone_length_scale`).
        axes (str): see :func:`point_errors`.

    Returns:
        Tensor: ``(..., N)``.
    """
    pred, gt = as_tensor(pred), as_tensor(gt)
    _check_same_shape(pred, gt, 'root_aligned_errors')
    pred_rel = pred - as_tensor(pred_root)[..., None, :]
    if scale is not None:
        pred_rel = pred_rel * as_tensor(scale)[..., None, None]
    gt_rel = gt - as_tensor(gt_root)[..., None, :]
    return point_errors(pred_rel, gt_rel, axes)


def mpjpe(pred_joints: ArrayLike,
          gt_joints: ArrayLike,
          mask: Optional[ArrayLike] = None,
          root_index: Optional[int] = 0,
          bone_scaling: bool = False,
          axes: str = 'xyz',
          reduction: str = 'mean') -> Tensor:
    """Root-aligned mean per-joint position error.

    Args:
        pred_joints (Tensor): ``(..., J, 3)``.
        gt_joints (Tensor): ``(..., J, 3)``.
        mask (Tensor, optional): ``(..., J)`` validity of the ground truth.
        root_index (int, optional): the root joint (0 wrist, 9 middle MCP);
            None for no alignment (absolute error).
        bone_scaling (bool): scale the root-relative prediction by the
            wrist-to-middle-MCP length ratio (:func:`bone_length_scale`).
        axes (str): ``'xyz'``, ``'xy'`` or ``'z'``.
        reduction (str): ``'mean'`` (masked mean over everything) or
            ``'none'`` (``(..., J)`` errors).

    Returns:
        Tensor: the mean error or the per-joint errors.
    """
    pred_joints, gt_joints = as_tensor(pred_joints), as_tensor(gt_joints)
    _check_same_shape(pred_joints, gt_joints, 'mpjpe')
    if root_index is None:
        zero = torch.zeros_like(pred_joints[..., 0, :])
        pred_root, gt_root = zero, zero
    else:
        pred_root = pred_joints[..., root_index, :]
        gt_root = gt_joints[..., root_index, :]
    scale = None
    if bone_scaling:
        scale, _ = bone_length_scale(pred_joints, gt_joints)
    err = root_aligned_errors(pred_joints, gt_joints, pred_root, gt_root,
                              scale, axes)
    return _reduce(err, mask, reduction)


def _reduce(err: Tensor, mask: Optional[ArrayLike], reduction: str) -> Tensor:
    if reduction == 'none':
        return err
    if reduction == 'mean':
        return masked_mean(err, mask)
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def procrustes_aligned_errors(pred: ArrayLike,
                              gt: ArrayLike,
                              mask: Optional[ArrayLike] = None,
                              scale: bool = True,
                              axes: str = 'xyz',
                              reduction: str = 'none') -> Tensor:
    """Errors after a per-set similarity Procrustes fit (PA-MPJPE/PA-MPVPE).

    Each ``(N, 3)`` set of the batch is aligned on its own (per hand) with
    :func:`mmhand2p.utils.geometry.procrustes_align`; invalid points take no
    part in the fit. Translation and scale are fitted, so the result does not
    depend on any root alignment.

    Args:
        pred (Tensor): ``(..., N, 3)``.
        gt (Tensor): ``(..., N, 3)``.
        mask (Tensor, optional): ``(..., N)``.
        scale (bool): fit a scale. Defaults to True.
        axes (str): see :func:`point_errors`.
        reduction (str): ``'none'`` (default) or ``'mean'``.

    Returns:
        Tensor: ``(..., N)`` errors or their masked mean. Sets with fewer than
        3 valid points give ``nan``.
    """
    pred, gt = as_tensor(pred), as_tensor(gt)
    _check_same_shape(pred, gt, 'procrustes_aligned_errors')
    lead, n = pred.shape[:-2], pred.shape[-2]
    flat_p = pred.reshape(-1, n, 3)
    flat_g = gt.reshape(-1, n, 3)
    flat_m = None
    if mask is not None:
        flat_m = as_tensor(mask).to(pred.device).expand(
            pred.shape[:-1]).reshape(-1, n)
    if flat_p.shape[0] == 0:
        err = pred.new_zeros(pred.shape[:-1])
    else:
        aligned, _ = procrustes_align(flat_p, flat_g, flat_m, scale=scale)
        err = point_errors(aligned, flat_g, axes)
        if flat_m is not None:
            enough = flat_m.bool().sum(-1) >= 3
            err = torch.where(enough[:, None], err,
                              torch.full_like(err, np.nan))
        err = err.reshape(*lead, n)
    if reduction == 'mean' and mask is not None:
        mask = as_tensor(mask).bool() & ~torch.isnan(err)
    return _reduce(err, mask, reduction)


def relative_root(joints: ArrayLike, root_index: int = 0) -> Tensor:
    """Relative root position: left root minus right root.

    Args:
        joints (Tensor): ``(..., 2, J, 3)`` with hand axis 0 = right,
            1 = left.
        root_index (int): the root joint. Defaults to 0 (wrist).

    Returns:
        Tensor: ``(..., 3)`` = ``joints[..., 1, r] - joints[..., 0, r]``.
    """
    joints = as_tensor(joints)
    if joints.dim() < 3 or joints.shape[-3] != 2:
        raise ValueError(
            'relative_root expects (..., 2, J, 3) joints (hand '
            f'axis 0 = right, 1 = left), got {tuple(joints.shape)}')
    return joints[..., 1, root_index, :] - joints[..., 0, root_index, :]


def mrrpe(pred_joints: ArrayLike,
          gt_joints: ArrayLike,
          valid: Optional[ArrayLike] = None,
          root_index: int = 0,
          reduction: str = 'none') -> Tensor:
    """Mean relative-root position error.

    ``| (pred_L - pred_R) - (gt_L - gt_R) |`` at the root joint, with the
    relative translation defined as left root minus right root (camera
    frame). The norm does not depend on that sign convention as long as
    prediction and ground truth share it.

    Args:
        pred_joints (Tensor): ``(..., 2, J, 3)``.
        gt_joints (Tensor): ``(..., 2, J, 3)``.
        valid (Tensor, optional): ``(...)`` frames to average over.
        root_index (int): Defaults to 0 (wrist).
        reduction (str): ``'none'`` (default, ``(...)``) or ``'mean'``.

    Returns:
        Tensor: per-frame errors or their mean.
    """
    pred_joints, gt_joints = as_tensor(pred_joints), as_tensor(gt_joints)
    _check_same_shape(pred_joints, gt_joints, 'mrrpe')
    err = (relative_root(pred_joints, root_index) -
           relative_root(gt_joints, root_index)).norm(dim=-1)
    return _reduce(err, valid, reduction)


def pck(errors: ArrayLike,
        thresholds: Union[float, Sequence[float], ArrayLike],
        mask: Optional[ArrayLike] = None) -> Tensor:
    """Percentage of correct keypoints: fraction of errors ``<= thr``.

    Args:
        errors (Tensor): any shape.
        thresholds (float | sequence): in the unit of ``errors``.
        mask (Tensor, optional): broadcastable to ``errors``.

    Returns:
        Tensor: ``(T,)`` fractions in [0, 1] (``nan`` if nothing is valid).
    """
    errors = as_tensor(errors).double()
    thr = as_tensor(thresholds).double().reshape(-1).to(errors.device)
    if mask is None:
        valid = ~torch.isnan(errors)
    else:
        valid = as_tensor(mask).to(
            errors.device).bool().expand_as(errors) & ~torch.isnan(errors)
    e = errors[valid]
    if e.numel() == 0:
        return torch.full_like(thr, np.nan)
    return (e[None, :] <= thr[:, None]).double().mean(-1)


def auc(errors: ArrayLike,
        mask: Optional[ArrayLike] = None,
        min_threshold: float = 0.0,
        max_threshold: float = 50.0) -> Tensor:
    """Normalised area under the PCK curve between two thresholds, exactly.

    The PCK curve of a finite set of errors is a step function, so its
    integral has a closed form: each error ``e`` contributes
    ``clip((max - e) / (max - min), 0, 1)``; the AUC is the mean of those.
    This is the limit of the trapezoid rule on ever finer threshold grids
    (:func:`pck_curve_auc`) and does not depend on a grid.

    Args:
        errors (Tensor): any shape, same unit as the thresholds (mm for the
            usual 0-50 mm AUC).
        mask (Tensor, optional): broadcastable to ``errors``.
        min_threshold (float): Defaults to 0.
        max_threshold (float): Defaults to 50.

    Returns:
        Tensor: scalar in [0, 1] (``nan`` if nothing is valid).
    """
    if not max_threshold > min_threshold:
        raise ValueError('auc needs max_threshold > min_threshold, got '
                         f'{min_threshold} and {max_threshold}')
    errors = as_tensor(errors).double()
    contrib = ((max_threshold - errors) /
               (max_threshold - min_threshold)).clamp(0.0, 1.0)
    if mask is None:
        mask = ~torch.isnan(errors)
    else:
        mask = as_tensor(mask).to(
            errors.device).bool().expand_as(errors) & ~torch.isnan(errors)
    return masked_mean(contrib, mask)


def pck_curve_auc(thresholds: ArrayLike, pck_values: ArrayLike) -> Tensor:
    """Trapezoid-rule area under a sampled PCK curve, normalised by the
    threshold range (the usual hand-pose AUC of a discrete curve).

    Args:
        thresholds (Tensor): ``(T,)`` increasing.
        pck_values (Tensor): ``(T,)``.

    Returns:
        Tensor: scalar.
    """
    t = as_tensor(thresholds).double().reshape(-1)
    y = as_tensor(pck_values).double().reshape(-1)
    if t.numel() < 2 or t.shape != y.shape:
        raise ValueError('pck_curve_auc needs >= 2 thresholds and as many PCK '
                         f'values, got {tuple(t.shape)} and {tuple(y.shape)}')
    return torch.trapezoid(y, t) / (t[-1] - t[0])


def projected_point_errors(pred: ArrayLike, gt: ArrayLike,
                           intrinsics: ArrayLike) -> Tensor:
    """Distances in pixels between projected predicted and GT points.

    MIAA is their mean over the 778 vertices of a hand.

    Args:
        pred (Tensor): ``(..., N, 3)`` camera frame (OpenCV axes).
        gt (Tensor): ``(..., N, 3)``.
        intrinsics (Tensor): ``(..., 3, 3)`` pinhole matrices of the image
            the pixels refer to, broadcastable to the points' batch.

    Returns:
        Tensor: ``(..., N)`` pixels.
    """
    pred, gt = as_tensor(pred), as_tensor(gt)
    _check_same_shape(pred, gt, 'projected_point_errors')
    k = as_tensor(intrinsics).to(pred.dtype)
    return (project_points(pred, k) - project_points(gt, k)).norm(dim=-1)


def regress_joints(vertices: ArrayLike, regressor: ArrayLike) -> Tensor:
    """Joints as fixed linear combinations of mesh vertices.

    Args:
        vertices (Tensor): ``(..., V, 3)``.
        regressor (Tensor): ``(J, V)`` or, for both hands, ``(2, J, V)``
            matching ``vertices`` of shape ``(..., 2, V, 3)``.

    Returns:
        Tensor: ``(..., J, 3)``.
    """
    vertices = as_tensor(vertices)
    reg = as_tensor(regressor).to(vertices)
    if reg.shape[-1] != vertices.shape[-2]:
        raise ValueError(f'regressor of shape {tuple(reg.shape)} does not '
                         f'match vertices of shape {tuple(vertices.shape)}')
    return torch.matmul(reg, vertices)

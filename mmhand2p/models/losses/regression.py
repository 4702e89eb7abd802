# Copyright (c) mmhand2p contributors. All rights reserved.
"""Masked regression losses (A2P: L1 on MANO parameters, 3D and 2.5D joints
and relative translation; MSE for the prior distillation)."""
from typing import Optional

from torch import Tensor, nn

from mmhand2p.registry import MODELS

__all__ = ['MaskedL1Loss', 'MaskedMSELoss']


def _masked_mean(err: Tensor, weight: Optional[Tensor]) -> Tensor:
    """Mean of ``err`` over the entries whose weight is non-zero.

    Args:
        err (Tensor): ``(B, ...)`` element-wise errors.
        weight (Tensor, optional): broadcastable to the leading dims of
            ``err`` (e.g. ``(B, 2, 21)`` for ``(B, 2, 21, 3)``); None = all.

    Returns:
        Tensor: scalar; 0 (with a gradient path) when nothing is valid.
    """
    if weight is None:
        return err.mean()
    w = weight.to(err.dtype)
    while w.dim() < err.dim():
        w = w.unsqueeze(-1)
    w = w.expand_as(err)
    denom = w.sum()
    return (err * w).sum() / denom.clamp(min=1.0)


class _MaskedElementwiseLoss(nn.Module):
    """Base: an element-wise error averaged over valid entries, times
    ``loss_weight``. Subclasses define :meth:`error`."""

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    @staticmethod
    def error(pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None) -> Tensor:
        """``pred``/``target`` of the same shape, ``weight`` broadcastable to
        their leading dims (e.g. ``(B, 2, 21)`` for ``(B, 2, 21, 3)``)."""
        return self.loss_weight * _masked_mean(
            self.error(pred, target), weight)


@MODELS.register_module()
class MaskedL1Loss(_MaskedElementwiseLoss):
    """L1 loss averaged over valid entries.

    Args:
        loss_weight (float): multiplier. Defaults to 1.0.
    """

    @staticmethod
    def error(pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).abs()


@MODELS.register_module()
class MaskedMSELoss(_MaskedElementwiseLoss):
    """Mean squared error averaged over valid entries (A2P's distillation).

    Args:
        loss_weight (float): multiplier. Defaults to 1.0.
    """

    @staticmethod
    def error(pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target)**2

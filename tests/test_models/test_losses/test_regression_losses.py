# Copyright (c) mmhand2p contributors. All rights reserved.
import torch

from mmhand2p.registry import MODELS


def test_masked_losses_hand_computed():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.zeros(2, 2)
    w = torch.tensor([1.0, 0.0])  # the second row is invalid
    l1 = MODELS.build(dict(type='MaskedL1Loss', loss_weight=2.0))
    mse = MODELS.build(dict(type='MaskedMSELoss'))
    assert l1(pred, target, w).item() == 2.0 * (1 + 2) / 2
    assert mse(pred, target).item() == (1 + 4 + 9 + 16) / 4
    assert mse(pred, target, w).item() == (1 + 4) / 2
    # nothing valid: 0, and still differentiable
    p = pred.clone().requires_grad_(True)
    zero = l1(p, target, torch.zeros(2))
    zero.backward()
    assert zero.item() == 0.0 and torch.equal(p.grad, torch.zeros(2, 2))

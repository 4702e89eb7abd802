# Copyright (c) mmhand2p contributors. All rights reserved.
"""BF16AutocastOptimWrapper: bfloat16 autocast without a loss scaler."""
import pytest
import torch
from torch import nn

from mmhand2p.registry import OPTIM_WRAPPERS


def _wrapper(model, **kwargs):
    return OPTIM_WRAPPERS.build(
        dict(
            type='BF16AutocastOptimWrapper',
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            **kwargs))


def test_forward_runs_in_bfloat16_and_steps_in_float32():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    wrapper = _wrapper(model, device_type='cpu')
    before = model.weight.detach().clone()
    x = torch.randn(8, 4)
    with wrapper.optim_context(model):
        out = model(x)
    assert out.dtype == torch.bfloat16
    loss = out.float().pow(2).mean()
    wrapper.update_params(loss)
    # master weights stay float32 and moved along the (float32) gradient
    assert model.weight.dtype == torch.float32
    assert not torch.equal(model.weight, before)
    # no loss scaler: the state is the optimizer's
    assert 'loss_scaler' not in wrapper.state_dict()
    # outside the context, float32 again
    assert model(x).dtype == torch.float32


def test_float16_is_refused():
    with pytest.raises(ValueError, match='AmpOptimWrapper'):
        _wrapper(nn.Linear(2, 2), dtype='float16')
    with pytest.raises(ValueError, match='unknown dtype'):
        _wrapper(nn.Linear(2, 2), dtype='bf16')

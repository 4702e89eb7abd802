# Copyright (c) mmhand2p contributors. All rights reserved.
import torch
from torch import Tensor

__all__ = ['sine_position_encoding']


def sine_position_encoding(h: int, w: int, dims: int,
                           device=None) -> Tensor:
    """Fixed 2D sine-cosine position encoding, ``(h * w, dims)``."""
    if dims % 4:
        raise ValueError(f'embed dims must be divisible by 4, got {dims}')
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=device),
        torch.arange(w, dtype=torch.float32, device=device),
        indexing='ij')
    quarter = dims // 4
    freq = 1.0 / (10000**(torch.arange(quarter, device=device) / quarter))
    out = []
    for coord in (ys, xs):
        arg = coord.reshape(-1, 1) * freq[None]
        out += [arg.sin(), arg.cos()]
    return torch.cat(out, dim=1)

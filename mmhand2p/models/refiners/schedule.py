# Copyright (c) mmhand2p contributors. All rights reserved.
"""The cosine noise schedule (Nichol & Dhariwal, ICML 2021)."""
import math
from typing import Optional

import torch
from torch import Tensor, nn

from mmhand2p.registry import MODELS

__all__ = ['cosine_alpha_bar', 'CosineNoiseSchedule']


def cosine_alpha_bar(t: Tensor, s: float = 0.008) -> Tensor:
    """``alpha_bar(t) = f(t) / f(0)``, ``f(t) = cos^2((t + s) / (1 + s) *
    pi / 2)`` on continuous time ``t`` in [0, 1] (Improved DDPM, Eq. 17).

    Args:
        t (Tensor): times in [0, 1].
        s (float): offset that keeps ``beta`` from being tiny near 0.

    Returns:
        Tensor: same shape.
    """
    t = torch.as_tensor(t, dtype=torch.float64)

    def f(x):
        return torch.cos((x + s) / (1 + s) * math.pi / 2)**2

    return f(t) / f(torch.zeros_like(t))


@MODELS.register_module()
class CosineNoiseSchedule(nn.Module):
    """Discrete cosine schedule with ``num_timesteps`` noising steps.

    Step ``i`` (0-based, ``i = 0 .. T - 1``) has ``beta_i = min(1 -
    alpha_bar((i + 1) / T) / alpha_bar(i / T), max_beta)`` and
    ``alphas_cumprod[i] = prod_{j <= i} (1 - beta_j)``, which equals
    ``alpha_bar((i + 1) / T)`` wherever no beta was clipped (all but the
    last steps). The forward process is ``x_i = sqrt(alphas_cumprod[i]) x_0
    + sqrt(1 - alphas_cumprod[i]) eps``. Index ``-1`` means "clean"
    (``alpha_bar = 1``), the target of the last sampling step.

    Args:
        num_timesteps (int): T. Defaults to 1000 (A2P).
        s (float): the schedule's offset. Defaults to 0.008.
        max_beta (float): clip of beta near ``t = T``. Defaults to 0.999.
    """

    def __init__(self,
                 num_timesteps: int = 1000,
                 s: float = 0.008,
                 max_beta: float = 0.999) -> None:
        super().__init__()
        if num_timesteps < 1:
            raise ValueError(
                f'num_timesteps must be >= 1, got {num_timesteps}')
        self.num_timesteps = int(num_timesteps)
        self.s = s
        self.max_beta = max_beta
        grid = torch.arange(num_timesteps + 1, dtype=torch.float64)
        ab = cosine_alpha_bar(grid / num_timesteps, s)
        betas = (1 - ab[1:] / ab[:-1]).clamp(max=max_beta)
        # float64 buffers: alpha_bar spans 1 .. 1e-8; cast at use
        self.register_buffer('betas', betas, persistent=False)
        self.register_buffer(
            'alphas_cumprod', torch.cumprod(1 - betas, 0), persistent=False)

    def alpha_bar(self, t: Tensor) -> Tensor:
        """``alphas_cumprod[t]`` (float64), 1 where ``t < 0``.

        Args:
            t (Tensor): long timesteps of any shape, in ``[-1, T)``.
        """
        t = torch.as_tensor(t, device=self.alphas_cumprod.device).long()
        if (t >= self.num_timesteps).any():
            raise ValueError(f'timesteps must be < {self.num_timesteps}, got '
                             f'max {int(t.max())}')
        ab = self.alphas_cumprod[t.clamp(min=0)]
        return torch.where(t < 0, torch.ones_like(ab), ab)

    def q_sample(self,
                 x0: Tensor,
                 t: Tensor,
                 noise: Optional[Tensor] = None) -> Tensor:
        """Noise clean samples to step ``t``.

        Args:
            x0 (Tensor): ``(B, D)``.
            t (Tensor): ``(B,)`` long.
            noise (Tensor, optional): ``(B, D)``; standard normal if None.

        Returns:
            Tensor: ``(B, D)`` ``x_t``.
        """
        if noise is None:
            noise = torch.randn_like(x0)
        ab = self.alpha_bar(t).to(x0.dtype)[:, None]
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def sample_timesteps(self,
                         batch_size: int,
                         device=None,
                         generator: Optional[torch.Generator] = None
                         ) -> Tensor:
        """``(B,)`` uniform training timesteps in ``[0, T)``."""
        return torch.randint(
            0,
            self.num_timesteps, (batch_size, ),
            device=device,
            generator=generator)

    def ddim_timesteps(self,
                       num_steps: int,
                       start_t: Optional[int] = None) -> Tensor:
        """Descending, evenly spaced sampling timesteps from ``start_t``
        (default ``T - 1``) to 0, duplicates removed.

        Returns:
            Tensor: ``(S,)`` long, ``S <= num_steps``.
        """
        start = self.num_timesteps - 1 if start_t is None else int(start_t)
        if not 0 <= start < self.num_timesteps:
            raise ValueError(f'start_t must be in [0, {self.num_timesteps}), '
                             f'got {start}')
        if num_steps < 1:
            raise ValueError(f'num_steps must be >= 1, got {num_steps}')
        ts = torch.linspace(start, 0, num_steps, dtype=torch.float64).round()
        return torch.unique_consecutive(ts.long())

    def extra_repr(self) -> str:
        return (f'num_timesteps={self.num_timesteps}, s={self.s}, '
                f'max_beta={self.max_beta}')

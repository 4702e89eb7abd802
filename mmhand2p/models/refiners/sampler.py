# Copyright (c) mmhand2p contributors. All rights reserved.
"""DDIM sampling of an x0-predicting diffusion model, with gradient
guidance on the predicted clean sample (A2P stage 2)."""
from typing import Callable, List, Optional, Sequence, Union

import torch
from torch import Tensor

from .schedule import CosineNoiseSchedule

__all__ = ['ddim_step', 'standard_normal', 'GuidedDDIMSampler']

#: one generator for the whole batch, or one per sample
Generators = Union[torch.Generator, Sequence[torch.Generator]]

#: ``denoise_fn(x_t (B, D), t (B,) long, cond (B, D)) -> x0_hat (B, D)``
DenoiseFn = Callable[[Tensor, Tensor, Tensor], Tensor]
#: ``guidance_fn(x0_hat (B, D)) -> (B,)`` differentiable per-sample losses
GuidanceFn = Callable[[Tensor], Tensor]


def ddim_step(x_t: Tensor,
              x0_hat: Tensor,
              abar_t: Tensor,
              abar_prev: Tensor,
              eta: float = 0.0,
              noise: Optional[Tensor] = None) -> Tensor:
    """One DDIM update (Song et al., ICLR 2021, Eq. 12) from an x0 estimate.

    ``eps = (x_t - sqrt(a_t) x0) / sqrt(1 - a_t)``,
    ``sigma = eta sqrt((1 - a_p) / (1 - a_t)) sqrt(1 - a_t / a_p)``,
    ``x_p = sqrt(a_p) x0 + sqrt(1 - a_p - sigma^2) eps + sigma z``.

    Args:
        x_t (Tensor): ``(B, D)`` current sample.
        x0_hat (Tensor): ``(B, D)`` clean-sample estimate.
        abar_t (Tensor): scalar or ``(B, 1)`` alpha_bar of the current step.
        abar_prev (Tensor): alpha_bar of the next (less noisy) step, 1 for
            the final step.
        eta (float): 0 = deterministic DDIM, 1 = DDPM-like.
        noise (Tensor, optional): ``(B, D)`` ``z``; needed when ``eta > 0``.

    Returns:
        Tensor: ``(B, D)``.
    """
    abar_t = torch.as_tensor(abar_t, dtype=x_t.dtype, device=x_t.device)
    abar_prev = torch.as_tensor(abar_prev, dtype=x_t.dtype, device=x_t.device)
    eps = (x_t - abar_t.sqrt() * x0_hat) / (1 - abar_t).sqrt()
    out = abar_prev.sqrt() * x0_hat
    if eta > 0:
        if noise is None:
            raise ValueError('ddim_step: eta > 0 needs noise')
        sigma = eta * ((1 - abar_prev) /
                       (1 - abar_t)).sqrt() * (1 - abar_t / abar_prev).clamp(
                           min=0).sqrt()
        out = out + (1 - abar_prev -
                     sigma**2).clamp(min=0).sqrt() * eps + sigma * noise
    else:
        out = out + (1 - abar_prev).sqrt() * eps
    return out


def standard_normal(like: Tensor,
                    generator: Optional[Generators] = None) -> Tensor:
    """Standard normal noise shaped like ``like`` ``(B, D)``.

    With a sequence of B generators, row ``b`` is drawn from generator
    ``b`` alone (``(D,)`` float32 on that generator's device, then moved to
    ``like``'s device and dtype), so a sample's noise does not depend on the
    other rows of the batch. With one generator (or None: the global one)
    the ``(B, D)`` tensor is drawn at once.

    Args:
        like (Tensor): ``(B, D)`` shape, device and dtype to match.
        generator (torch.Generator | sequence, optional): see above.

    Returns:
        Tensor: ``(B, D)``.
    """
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(
            like.shape,
            generator=generator,
            device=like.device,
            dtype=like.dtype)
    gens = list(generator)
    if len(gens) != like.shape[0]:
        raise ValueError(f'standard_normal: {len(gens)} generators for '
                         f'{like.shape[0]} samples (one per sample)')
    if not gens:
        return like.new_empty(like.shape)
    rows = [
        torch.randn(
            like.shape[1:], generator=g, device=g.device,
            dtype=torch.float32).to(like.device) for g in gens
    ]
    return torch.stack(rows).to(like.dtype)


class GuidedDDIMSampler:
    """DDIM with collision-gradient guidance on the x0 estimate.

    From ``x_{t_0}`` (``t_0 = start_t``), every step ``t_k -> t_{k+1}``
    (``t_S = -1``: clean):

    1. ``x0_hat = D(x_{t_k}, t_k, c)``;
    2. guidance, on the guided steps: ``num_iters`` times
       ``x0_hat -= weight * grad_{x0_hat} sum_b L_b(x0_hat)`` (``L_b`` the
       per-sample collision loss of the decoded hands, so each sample's
       update is independent of the others in the batch; the ``max_update``
       clip is per sample too, and the early exit when no sample collides
       only skips zero updates);
    3. ``x_{t_{k+1}} = ddim_step(x_{t_k}, x0_hat, ...)``.

    Noise (the start and, with ``eta > 0``, every step's) comes from
    :func:`standard_normal`: with one generator per sample, each sample's
    result is independent of the batch it is in.

    The output is the last ``x0_hat`` (= ``x_{-1}``). With ``weight = 0`` or
    no guidance function it is plain DDIM, step for step.

    Start: ``init='condition'`` noises the condition to ``start_t``
    (``sqrt(a) c + sqrt(1 - a) z``, SDEdit-style: a smaller ``start_t``
    keeps the result closer to the input hands); ``init='noise'`` starts
    from pure noise (MDM), which at ``start_t = T - 1`` is the same up to
    ``sqrt(a) ~ 1e-4``.

    Args:
        num_steps (int): DDIM steps. Defaults to 50.
        start_t (int, optional): first timestep (noise level); default
            ``T - 1``.
        init (str): ``'condition'`` (default) or ``'noise'``.
        eta (float): DDIM stochasticity. Defaults to 0.
        guidance_weight (float): lambda. Defaults to 0 (off).
        guidance_iters (int): gradient steps per guided DDIM step.
        guidance_last_steps (int, optional): guide only the last N steps
            (None: every step, as in A2P).
        max_update (float, optional): clip of each sample's guidance update
            norm (normalised units), None for no clip.
    """

    def __init__(self,
                 num_steps: int = 50,
                 start_t: Optional[int] = None,
                 init: str = 'condition',
                 eta: float = 0.0,
                 guidance_weight: float = 0.0,
                 guidance_iters: int = 1,
                 guidance_last_steps: Optional[int] = None,
                 max_update: Optional[float] = None) -> None:
        if init not in ('condition', 'noise'):
            raise ValueError("init must be 'condition' or 'noise', got "
                             f'{init!r}')
        self.num_steps = int(num_steps)
        self.start_t = start_t
        self.init = init
        self.eta = float(eta)
        self.guidance_weight = float(guidance_weight)
        self.guidance_iters = int(guidance_iters)
        self.guidance_last_steps = guidance_last_steps
        self.max_update = max_update

    def guide(self, x0_hat: Tensor, guidance_fn: GuidanceFn) -> Tensor:
        """``x0_hat - weight * grad sum_b L_b`` (``guidance_iters`` times)."""
        x = x0_hat.detach()
        for _ in range(self.guidance_iters):
            with torch.enable_grad():
                xg = x.clone().requires_grad_(True)
                loss = guidance_fn(xg)
                if not loss.requires_grad or not bool(loss.detach().any()):
                    break  # nothing collides: no backward pass
                grad, = torch.autograd.grad(loss.sum(), xg)
            step = self.guidance_weight * grad
            if self.max_update is not None:
                norm = step.norm(dim=-1, keepdim=True)
                step = step * (self.max_update /
                               norm.clamp(min=self.max_update)).clamp(max=1.0)
            x = x - step
        return x

    @torch.no_grad()
    def sample(self,
               denoise_fn: DenoiseFn,
               cond: Tensor,
               schedule: CosineNoiseSchedule,
               guidance_fn: Optional[GuidanceFn] = None,
               generator: Optional[Generators] = None,
               x_init: Optional[Tensor] = None,
               trajectory: Optional[List[Tensor]] = None) -> Tensor:
        """Run the sampler.

        Args:
            denoise_fn: ``(x_t, t, cond) -> x0_hat``, all normalised.
            cond (Tensor): ``(B, D)`` normalised condition.
            schedule (CosineNoiseSchedule): the noise schedule.
            guidance_fn (callable, optional): ``x0_hat -> (B,)`` losses.
            generator (torch.Generator | sequence, optional): for the start
                noise and ``eta > 0``: one for the batch, or one per sample
                (:func:`standard_normal`).
            x_init (Tensor, optional): ``(B, D)`` ``x_{start_t}`` instead of
                the configured start.
            trajectory (list, optional): receives ``x0_hat`` of every step.

        Returns:
            Tensor: ``(B, D)`` the final clean sample (normalised).
        """
        ts = schedule.ddim_timesteps(self.num_steps,
                                     self.start_t).to(cond.device)
        bsz = cond.shape[0]

        def randn():
            return standard_normal(cond, generator)

        if x_init is None:
            z = randn()
            if self.init == 'condition':
                a = schedule.alpha_bar(ts[0]).to(cond.dtype)
                x = a.sqrt() * cond + (1 - a).sqrt() * z
            else:
                x = z
        else:
            x = x_init
        guided_from = 0
        if self.guidance_last_steps is not None:
            guided_from = max(0, len(ts) - int(self.guidance_last_steps))
        guide = guidance_fn is not None and self.guidance_weight != 0
        x0 = x
        for k, t in enumerate(ts.tolist()):
            t_prev = ts[k + 1].item() if k + 1 < len(ts) else -1
            tt = torch.full((bsz, ), t, dtype=torch.long, device=cond.device)
            x0 = denoise_fn(x, tt, cond)
            if guide and k >= guided_from:
                x0 = self.guide(x0, guidance_fn)
            if trajectory is not None:
                trajectory.append(x0)
            noise = randn() if self.eta > 0 and t_prev >= 0 else None
            x = ddim_step(x, x0, schedule.alpha_bar(torch.tensor(t)),
                          schedule.alpha_bar(torch.tensor(t_prev)),
                          self.eta if t_prev >= 0 else 0.0, noise)
        return x

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_steps={self.num_steps}, '
                f'start_t={self.start_t}, init={self.init!r}, eta={self.eta},'
                f' guidance_weight={self.guidance_weight}, guidance_iters='
                f'{self.guidance_iters}, guidance_last_steps='
                f'{self.guidance_last_steps}, max_update={self.max_update})')

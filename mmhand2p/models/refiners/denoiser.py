# Copyright (c) mmhand2p contributors. All rights reserved.
"""The transformer denoiser of the two-hand diffusion model (MDM-style:
predicts the clean sample)."""
import math

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmhand2p.registry import MODELS
from mmhand2p.utils.typing import OptConfigType

__all__ = ['timestep_encoding', 'TimestepEmbedder', 'TwoHandDenoiser']


def timestep_encoding(t: Tensor,
                      dims: int,
                      max_period: float = 10000.0) -> Tensor:
    """Sinusoidal encoding of (integer or real) timesteps.

    Args:
        t (Tensor): ``(B,)``.
        dims (int): even number of channels.
        max_period (float): longest wavelength.

    Returns:
        Tensor: ``(B, dims)`` ``[cos(t w_k), sin(t w_k)]`` with ``w_k =
        max_period^(-k / (dims / 2))``.
    """
    half = dims // 2
    freqs = torch.exp(
        -math.log(max_period) *
        torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    enc = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dims % 2:
        enc = torch.cat([enc, torch.zeros_like(enc[:, :1])], dim=-1)
    return enc


class TimestepEmbedder(nn.Module):
    """MLP timestep embedding (MDM): sinusoid -> Linear -> SiLU -> Linear.

    Args:
        dims (int): embedding channels.
    """

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.dims = dims
        self.mlp = nn.Sequential(
            nn.Linear(dims, dims), nn.SiLU(), nn.Linear(dims, dims))

    def forward(self, t: Tensor) -> Tensor:
        """``(B,)`` timesteps -> ``(B, dims)``."""
        return self.mlp(timestep_encoding(t, self.dims))


@MODELS.register_module()
class TwoHandDenoiser(BaseModule):
    """Transformer denoiser ``D(x_t, t, c) -> x0`` for both hands (A2P,
    arXiv 2503.17788, Sec. 3.2; MDM, Tevet et al., ICLR 2023).

    The sample and the condition (the penetrating hands) share one layout,
    ``[hand_0 (hand_dims), hand_1 (hand_dims), rel (rel_dims)]`` (see
    :func:`~mmhand2p.models.refiners.two_hand_diffusion.encode_two_hands`).
    Fully connected encoders turn each into three tokens (right hand, left
    hand, relative translation) - one encoder for the noisy sample, one for
    the condition - and an MLP embeds the timestep as a seventh token. With
    learned token-type embeddings, a transformer encoder mixes the seven
    tokens; linear heads read the clean sample from the three sample
    tokens.

    With ``residual=True`` the heads predict the correction to the
    condition (``x0 = c + head(...)``, heads initialised to zero), so an
    untrained model returns its input hands; this is only a
    reparameterisation of the same x0 prediction and trains much faster on
    small sets.

    Args:
        hand_dims (int): per-hand features (16 x 6D + 10 betas = 106).
        rel_dims (int): relative-translation features. Defaults to 3.
        embed_dims (int): token channels.
        num_layers (int): transformer layers.
        num_heads (int): attention heads.
        ffn_dims (int): feed-forward channels.
        dropout (float): dropout in the transformer.
        residual (bool): predict ``x0 - c``. Defaults to True.
        init_cfg (dict, optional): mmengine init config.
    """

    num_tokens = 7

    def __init__(self,
                 hand_dims: int = 106,
                 rel_dims: int = 3,
                 embed_dims: int = 256,
                 num_layers: int = 4,
                 num_heads: int = 4,
                 ffn_dims: int = 512,
                 dropout: float = 0.1,
                 residual: bool = True,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.hand_dims = hand_dims
        self.rel_dims = rel_dims
        self.in_dims = 2 * hand_dims + rel_dims
        self.embed_dims = embed_dims
        self.residual = residual
        d = embed_dims
        self.x_hand = nn.Linear(hand_dims, d)
        self.x_rel = nn.Linear(rel_dims, d)
        self.c_hand = nn.Linear(hand_dims, d)
        self.c_rel = nn.Linear(rel_dims, d)
        self.time_embed = TimestepEmbedder(d)
        # token types: t, c_right, c_left, c_rel, x_right, x_left, x_rel
        self.token_embed = nn.Parameter(torch.randn(self.num_tokens, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d,
            num_heads,
            ffn_dims,
            dropout,
            activation='gelu',
            batch_first=True,
            norm_first=True)
        self.encoder = nn.TransformerEncoder(
            layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out_hand = nn.Linear(d, hand_dims)
        self.out_rel = nn.Linear(d, rel_dims)
        self._init_heads()

    def _init_heads(self) -> None:
        if self.residual:
            for lin in (self.out_hand, self.out_rel):
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    def _split(self, x: Tensor):
        h = self.hand_dims
        return x[:, :h], x[:, h:2 * h], x[:, 2 * h:]

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """Predict the clean sample.

        Args:
            x_t (Tensor): ``(B, D)`` noisy normalised sample,
                ``D = 2 hand_dims + rel_dims``.
            t (Tensor): ``(B,)`` timesteps.
            cond (Tensor): ``(B, D)`` normalised condition.

        Returns:
            Tensor: ``(B, D)`` x0 estimate (normalised).
        """
        if x_t.shape != cond.shape or x_t.shape[-1] != self.in_dims:
            raise ValueError(f'TwoHandDenoiser: x_t and cond must be (B, '
                             f'{self.in_dims}), got {tuple(x_t.shape)} and '
                             f'{tuple(cond.shape)}')
        xr, xl, xrel = self._split(x_t)
        cr, cl, crel = self._split(cond)
        tokens = torch.stack([
            self.time_embed(t),
            self.c_hand(cr),
            self.c_hand(cl),
            self.c_rel(crel),
            self.x_hand(xr),
            self.x_hand(xl),
            self.x_rel(xrel)
        ],
                             dim=1) + self.token_embed
        out = self.norm(self.encoder(tokens))
        x0 = torch.cat([
            self.out_hand(out[:, 4]),
            self.out_hand(out[:, 5]),
            self.out_rel(out[:, 6])
        ],
                       dim=-1)
        return cond + x0 if self.residual else x0

# Copyright (c) mmhand2p contributors. All rights reserved.
"""A2P's fusion alignment encoder and transformer fusion (prior distillation).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmhand2p.registry import MODELS
from mmhand2p.utils.typing import ConfigType, OptConfigType
from ..teachers.base import PRIORS, check_teacher_checkpoint
from ..utils import sine_position_encoding

__all__ = ['FusionAlignmentNeck']


@MODELS.register_module()
class FusionAlignmentNeck(BaseModule):
    """Fusion alignment encoder (FAE) + transformer fusion of A2P
    ("Learning to Align and Refine", arXiv 2503.17788, Sec. 3.1).

    During training, frozen teachers give keypoint, segmentation and depth
    features ``F_k, F_s, F_d``; the FAE learns to predict their mean from the
    image (MSE). The aligned prior feature is ``F_a = Proj(mean prior)``,
    where the mean prior is the FAE's prediction (default) or, in the paper's
    starred variant, the teachers' output (``prior_source='teacher'``, which
    then also runs the teachers at inference). The fused feature is
    ``F = TransEnc(<F_i, F_a>)[0:l]``: image tokens and prior tokens are
    encoded together and the first ``l`` (image) tokens are kept.

    Teachers are built lazily, on the first call that needs them, and are
    never registered as submodules: they are not in checkpoints, not in the
    deployed model's parameters, and never called by :meth:`forward` when
    ``prior_source='fae'``. Their checkpoint paths are checked at build time.

    Args:
        in_channels (int): channels of the backbone feature ``F_i``.
        embed_dims (int): transformer width ``d``.
        priors (Sequence[str]): subset of ``('keypoint', 'segmentation',
            'depth')``; empty = the image-only baseline (no FAE, no prior
            tokens).
        teachers (dict, optional): ``{prior: teacher config}`` (registered
            teachers such as ``SapiensTeacher``), required for training when
            ``priors`` is not empty.
        teacher_channels (int): channels of the teacher features (all
            teachers must agree, as Sapiens' tasks of one size do).
        fae (dict, optional): the FAE's own encoder (e.g.
            ``dict(type='mmpose.ResNet', depth=50, out_indices=(3, ))``);
            None shares the backbone: the FAE is a conv head on ``F_i``.
        fae_channels (int): output channels of the FAE encoder.
        prior_source (str): ``'fae'`` or ``'teacher'`` (starred variant).
        num_layers / num_heads / ffn_dims / dropout: transformer encoder.
        loss_distill (dict): the distillation loss (MSE).
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 in_channels: int = 2048,
                 embed_dims: int = 256,
                 priors: Sequence[str] = PRIORS,
                 teachers: Optional[Dict[str, ConfigType]] = None,
                 teacher_channels: int = 1024,
                 fae: OptConfigType = None,
                 fae_channels: int = 2048,
                 prior_source: str = 'fae',
                 num_layers: int = 4,
                 num_heads: int = 8,
                 ffn_dims: int = 1024,
                 dropout: float = 0.1,
                 loss_distill: ConfigType = dict(
                     type='MaskedMSELoss', loss_weight=1.0),
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        priors = tuple(priors)
        unknown = [p for p in priors if p not in PRIORS]
        if unknown:
            raise ValueError(f'unknown prior(s) {unknown}; choose from '
                             f'{PRIORS}')
        if prior_source not in ('fae', 'teacher'):
            raise ValueError("prior_source must be 'fae' or 'teacher', got "
                             f'{prior_source!r}')
        self.priors = priors
        self.prior_source = prior_source
        self.embed_dims = embed_dims
        self.teacher_channels = teacher_channels
        self.teacher_cfgs = dict(teachers or {})
        missing = [p for p in priors if p not in self.teacher_cfgs]
        if priors and missing and prior_source == 'teacher':
            raise ValueError(f'prior_source=teacher needs teachers for '
                             f'{missing}')
        for prior, cfg in self.teacher_cfgs.items():
            check_teacher_checkpoint(
                cfg.get('checkpoint'), f'FusionAlignmentNeck.{prior}')
        # built on demand, deliberately not an nn.Module attribute
        self._teachers: Optional[List[nn.Module]] = None

        self.input_proj = nn.Conv2d(in_channels, embed_dims, 1)
        if priors:
            if fae is not None:
                self.fae = MODELS.build(fae)
                fae_in = fae_channels
            else:
                self.fae = None
                fae_in = in_channels
            # FAE head: encoder features -> predicted mean teacher feature
            self.fae_head = nn.Sequential(
                nn.Conv2d(fae_in, teacher_channels, 1),
                nn.GroupNorm(8, teacher_channels), nn.GELU(),
                nn.Conv2d(teacher_channels, teacher_channels, 1))
            self.prior_proj = nn.Conv2d(teacher_channels, embed_dims, 1)
            self.type_embed = nn.Parameter(torch.zeros(2, embed_dims))
            self.loss_distill = MODELS.build(loss_distill)
        layer = nn.TransformerEncoderLayer(
            embed_dims,
            num_heads,
            ffn_dims,
            dropout,
            activation='gelu',
            batch_first=True,
            norm_first=True)
        self.encoder = nn.TransformerEncoder(
            layer, num_layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(embed_dims)

    # ------------------------------------------------------------------
    @property
    def has_teachers(self) -> bool:
        """Whether the teachers have been built (training only)."""
        return self._teachers is not None

    def teachers(self, device) -> List[nn.Module]:
        """Build (once) and return the frozen teachers on ``device``."""
        if self._teachers is None:
            missing = [p for p in self.priors if p not in self.teacher_cfgs]
            if missing:
                raise ValueError(
                    f'FusionAlignmentNeck: no teacher configured for '
                    f'{missing}; training the FAE needs one per prior')
            self._teachers = [
                MODELS.build(self.teacher_cfgs[p]) for p in self.priors
            ]
        for t in self._teachers:
            t.to(device)
        return self._teachers

    def teacher_prior(self, rgb: Tensor, size: Tuple[int, int]) -> Tensor:
        """Mean teacher feature ``(F_k + F_s + F_d) / n`` at ``size``.

        Args:
            rgb (Tensor): ``(B, 3, H, W)`` RGB images, 0-255 scale.
            size (tuple): output (h, w).

        Returns:
            Tensor: ``(B, teacher_channels, h, w)``, no gradient.
        """
        feats = []
        with torch.no_grad():
            for t in self.teachers(rgb.device):
                f = t(rgb)
                if f.shape[1] != self.teacher_channels:
                    raise ValueError(
                        f'teacher {type(t).__name__}({t.prior}) gives '
                        f'{f.shape[1]} channels, teacher_channels is '
                        f'{self.teacher_channels}')
                feats.append(
                    F.interpolate(
                        f, size=size, mode='bilinear', align_corners=False))
        return torch.stack(feats).mean(0)

    def fae_prior(self, img_feat: Tensor, inputs: Tensor) -> Tensor:
        """The FAE's prediction of the mean teacher feature.

        Returns:
            Tensor: ``(B, teacher_channels, h, w)`` on the grid of ``F_i``.
        """
        if self.fae is not None:
            enc = self.fae(inputs)
            enc = enc[-1] if isinstance(enc, (tuple, list)) else enc
        else:
            enc = img_feat
        pred = self.fae_head(enc)
        if pred.shape[-2:] != img_feat.shape[-2:]:
            pred = F.interpolate(
                pred, size=img_feat.shape[-2:], mode='bilinear',
                align_corners=False)
        return pred

    def forward(self,
                img_feat: Tensor,
                inputs: Optional[Tensor] = None,
                rgb: Optional[Tensor] = None) -> Tuple[Tensor, Dict]:
        """Fuse image and prior features.

        Args:
            img_feat (Tensor): ``(B, C_i, h, w)`` backbone feature ``F_i``.
            inputs (Tensor, optional): ``(B, 3, H, W)`` normalised network
                input (for an FAE with its own encoder).
            rgb (Tensor, optional): ``(B, 3, H, W)`` RGB 0-255 (for teachers
                when ``prior_source='teacher'``).

        Returns:
            tuple: ``F`` ``(B, d, h, w)`` and ``aux`` (``fae_prior`` when
            the FAE ran, for the distillation loss).
        """
        if isinstance(img_feat, (tuple, list)):
            img_feat = img_feat[-1]
        b, _, h, w = img_feat.shape
        pos = sine_position_encoding(h, w, self.embed_dims, img_feat.device)
        tokens = self.input_proj(img_feat).flatten(2).transpose(1, 2) + pos
        aux: Dict[str, Tensor] = {}
        if self.priors:
            if self.prior_source == 'teacher':
                if rgb is None:
                    raise ValueError('prior_source=teacher needs the RGB '
                                     'images')
                prior = self.teacher_prior(rgb, (h, w))
            else:
                prior = self.fae_prior(img_feat, inputs)
                aux['fae_prior'] = prior
            prior_tokens = self.prior_proj(prior).flatten(2).transpose(1, 2)
            tokens = torch.cat([
                tokens + self.type_embed[0],
                prior_tokens + pos + self.type_embed[1]
            ], dim=1)
        fused = self.out_norm(self.encoder(tokens)[:, :h * w])
        return fused.transpose(1, 2).reshape(b, self.embed_dims, h, w), aux

    def loss(self, aux: Dict, rgb: Tensor) -> Dict[str, Tensor]:
        """Distillation loss ``MSE(FAE(img), mean teacher feature)``.

        Args:
            aux (dict): from :meth:`forward`.
            rgb (Tensor): ``(B, 3, H, W)`` RGB images, 0-255 scale.

        Returns:
            dict: ``{'loss_distill': ...}`` (empty for the baseline or the
            starred variant).
        """
        if 'fae_prior' not in aux:
            return {}
        pred = aux['fae_prior']
        target = self.teacher_prior(rgb, tuple(pred.shape[-2:]))
        return dict(loss_distill=self.loss_distill(pred, target))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(priors={self.priors}, '
                f'prior_source={self.prior_source!r}, embed_dims='
                f'{self.embed_dims}, teachers built: {self.has_teachers})\n' +
                super().__repr__())


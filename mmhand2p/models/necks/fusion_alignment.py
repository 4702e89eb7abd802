# Copyright (c) mmhand2p contributors. All rights reserved.
"""A2P's fusion alignment encoder and transformer fusion (prior distillation).
"""
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmhand2p.registry import MODELS
from mmhand2p.utils.feature_cache import (WARP_MODES, PriorFeatureCache,
                                          prior_target)
from mmhand2p.utils.letterbox import DOWNSAMPLE_MODES, resize_features
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
        prior_cache (dict, optional): **deprecated**: put
            ``LoadPriorFeatures(root=..., priors=..., teachers=...)`` at the
            end of the training pipeline instead (the data transform reads
            the cache, :meth:`loss` finds the features in the data samples;
            ``docs/a2p.md``). Still read here, with a ``DeprecationWarning``:
            the distillation target from an
            on-disk cache of the teachers' features instead of running them
            (``tools/misc/extract_prior_features.py``; ``docs/a2p.md``):
            ``dict(root=..., warp='affine', mask_outside=True,
            check_checkpoints=True)``. The cache holds the features of the
            deterministic crop of every sample (and of its flipped image).
            ``warp`` says what to do with a sample whose crop was augmented
            (shift / scale / rotation): ``'affine'`` resamples the cached
            features onto its crop through the relative crop affine,
            ``'none'`` uses them as they are (as if the crop had not moved),
            ``'refuse'`` raises; both approximations are measured in
            ``docs/a2p.md``. ``mask_outside`` leaves the cells that the cached
            crop does not cover out of the loss (``'affine'`` only). The
            cache is checked against ``teachers`` (config and checkpoint
            hashes) on first use. Training only, with
            ``prior_source='fae'``; the model passes its data samples to
            :meth:`loss`.
        downsample (str): how the teacher maps (live or cached) become the
            FAE's grid: ``'area'`` (default) averages the cells each grid
            cell covers; ``'bilinear'`` (the behaviour before issue 19, with
            which the recorded ablations were made) point-samples them.
        init_cfg: mmengine init config.

    Where the distillation target comes from (:meth:`loss`, first that
    applies): the data samples' ``prior_features`` (written by the
    ``LoadPriorFeatures`` transform), the deprecated ``prior_cache``, or
    the live teachers run on ``aux['rgb']`` (the RGB images the model
    passed to :meth:`forward` as ``rgb=``).
    """

    #: keys of ``prior_cache`` and their defaults
    PRIOR_CACHE_DEFAULTS = dict(
        root=None,
        warp='affine',
        mask_outside=True,
        check_checkpoints=True,
        crop_tol=1e-4)

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
                 prior_cache: OptConfigType = None,
                 downsample: str = 'area',
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
        if downsample not in DOWNSAMPLE_MODES:
            raise ValueError(f'downsample must be one of {DOWNSAMPLE_MODES},'
                             f' got {downsample!r}')
        self.downsample = downsample
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
        self.prior_cache = self._check_prior_cache(prior_cache)
        if self.prior_cache is not None:
            warnings.warn(
                'FusionAlignmentNeck(prior_cache=...) is deprecated: add '
                'dict(type=\'LoadPriorFeatures\', root=..., priors=..., '
                'teachers=...) after PackTwoHandInputs in the training '
                'pipeline instead (docs/a2p.md)', DeprecationWarning)
        self._cache = None  # opened and validated on first use

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

    def _check_prior_cache(self, cfg: OptConfigType) -> Optional[dict]:
        if cfg is None:
            return None
        cfg = dict(cfg)
        unknown = sorted(set(cfg) - set(self.PRIOR_CACHE_DEFAULTS))
        if unknown:
            raise ValueError(f'FusionAlignmentNeck.prior_cache: unknown keys '
                             f'{unknown}; known: '
                             f'{sorted(self.PRIOR_CACHE_DEFAULTS)}')
        out = dict(self.PRIOR_CACHE_DEFAULTS, **cfg)
        warp = {True: 'affine', False: 'refuse'}.get(out['warp'], out['warp'])
        if warp not in WARP_MODES:
            raise ValueError("FusionAlignmentNeck.prior_cache.warp must be "
                             f"'affine', 'none' or 'refuse', got {warp!r}")
        out['warp'] = warp
        if not out['root']:
            raise ValueError('FusionAlignmentNeck.prior_cache needs root= '
                             '(the folder written by tools/misc/'
                             'extract_prior_features.py)')
        if not self.priors:
            raise ValueError('FusionAlignmentNeck.prior_cache: priors is '
                             'empty (the baseline distils nothing)')
        if self.prior_source != 'fae':
            raise ValueError(
                "FusionAlignmentNeck.prior_cache needs prior_source='fae': "
                'the starred variant feeds the teachers\' features to the '
                'network at test time, where no cache exists')
        return out

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
                feats.append(resize_features(f, size, self.downsample))
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
            rgb (Tensor, optional): ``(B, 3, H, W)`` RGB 0-255: the
                teachers' input when ``prior_source='teacher'``, and, with
                the FAE, kept in ``aux['rgb']`` for the live teachers of
                :meth:`loss` (the model passes it in training).

        Returns:
            tuple: ``F`` ``(B, d, h, w)`` and ``aux``: ``fae_prior`` when
            the FAE ran and ``rgb`` when given, the input of :meth:`loss`.
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
                if rgb is not None:
                    aux['rgb'] = rgb
            prior_tokens = self.prior_proj(prior).flatten(2).transpose(1, 2)
            tokens = torch.cat([
                tokens + self.type_embed[0],
                prior_tokens + pos + self.type_embed[1]
            ], dim=1)
        fused = self.out_norm(self.encoder(tokens)[:, :h * w])
        return fused.transpose(1, 2).reshape(b, self.embed_dims, h, w), aux

    def open_prior_cache(self):
        """The validated :class:`~mmhand2p.models.teachers.PriorFeatureCache`
        of ``prior_cache`` (opened once)."""
        if self.prior_cache is None:
            raise RuntimeError(
                'FusionAlignmentNeck: no prior_cache configured')
        if self._cache is None:
            cache = PriorFeatureCache(self.prior_cache['root'])
            cache.validate(
                self.priors,
                self.teacher_cfgs,
                self.teacher_channels,
                check_checkpoints=self.prior_cache['check_checkpoints'])
            self._cache = cache
        return self._cache

    def cached_prior(self, data_samples: Sequence, size: Tuple[int, int],
                     device=None) -> Tuple[Tensor, Optional[Tensor]]:
        """The mean teacher feature of a batch, read from the cache.

        Each sample's features come from the cache row of its ``img_id``
        (variant by ``flip``), are resampled from the cached crop onto the
        sample's crop (metainfo ``crop_affine``, ``input_size``; with
        ``warp='none'`` onto the cached crop itself) at ``size`` and are
        averaged over the priors, as :meth:`teacher_prior` does with live
        teachers.

        Args:
            data_samples (Sequence): the batch's data samples (metainfo
                ``img_id``, ``img_path``, ``crop_affine``, ``input_size``,
                ``flip``).
            size (tuple): output ``(h, w)``.
            device: output device.

        Returns:
            tuple: ``(B, teacher_channels, h, w)`` target and ``(B, 1, h,
            w)`` loss weight (None without ``mask_outside`` or with
            ``warp='none'``).
        """
        cache = self.open_prior_cache()
        metas = [getattr(ds, 'metainfo', ds) for ds in data_samples]
        for key in ('img_id', 'crop_affine', 'input_size'):
            lost = [n for n, m in enumerate(metas) if m.get(key) is None]
            if lost:
                raise KeyError(
                    f'FusionAlignmentNeck.prior_cache: data samples {lost} '
                    f'have no metainfo {key!r} (packed by TwoHandCropAffine '
                    '+ PackTwoHandInputs), needed to find and align the '
                    'cached features')
        rows = cache.rows([m['img_id'] for m in metas],
                          [m.get('img_path') for m in metas])
        variants = [cache.variant_of(bool(m.get('flip', False)))
                    for m in metas]
        feats, cache_affine = cache.load(rows, variants, self.priors, device)
        return self._target(feats, cache_affine, cache.input_size, metas,
                            size,
                            dict(self.prior_cache, downsample=self.downsample))

    @staticmethod
    def _target(feats: Dict[str, Tensor], cache_affine: Tensor, cache_size,
                metas: Sequence[dict], size: Tuple[int, int],
                cfg: dict) -> Tuple[Tensor, Optional[Tensor]]:
        """:func:`~mmhand2p.utils.feature_cache.prior_target` onto the
        crops of ``metas`` (metainfo ``crop_affine``, ``input_size``)."""
        target_affine = torch.stack([
            torch.as_tensor(m['crop_affine'], dtype=torch.float64).reshape(
                2, 3) for m in metas
        ])
        target_size = torch.tensor([[float(s) for s in m['input_size']]
                                    for m in metas],
                                   dtype=torch.float64)
        return prior_target(
            feats,
            cache_affine,
            cache_size,
            target_affine,
            target_size,
            size,
            warp=cfg['warp'],
            mask_outside=cfg['mask_outside'],
            crop_tol=cfg['crop_tol'],
            downsample=cfg.get('downsample', 'area'),
            names=[m.get('img_id') for m in metas])

    def sample_prior(self, data_samples: Sequence, size: Tuple[int, int],
                     device=None) -> Tuple[Tensor, Optional[Tensor]]:
        """The mean teacher feature of a batch from the data samples'
        ``prior_features`` (the ``LoadPriorFeatures`` transform's output:
        ``{prior: (C, h', w')}`` cached features, ``crop_affine`` (2, 3) of
        the cached crop, metainfo ``input_size`` / ``warp`` /
        ``mask_outside`` / ``crop_tol``), resampled onto each sample's crop
        at ``size`` as :meth:`cached_prior` does.

        Returns:
            tuple: ``(B, teacher_channels, h, w)`` target and ``(B, 1, h,
            w)`` loss weight or None.
        """
        items = [ds.prior_features for ds in data_samples]
        metas = [ds.metainfo for ds in data_samples]
        for key in ('crop_affine', 'input_size'):
            lost = [n for n, m in enumerate(metas) if m.get(key) is None]
            if lost:
                raise KeyError(
                    f'FusionAlignmentNeck.loss: data samples {lost} have no '
                    f'metainfo {key!r} (packed by TwoHandCropAffine + '
                    'PackTwoHandInputs), needed to align the cached features')
        have = tuple(items[0].metainfo.get('priors', ()))
        lost = [p for p in self.priors if p not in have]
        if lost:
            raise KeyError(
                f'FusionAlignmentNeck.loss: the data samples\' '
                f'prior_features hold {have}, the neck distils '
                f'{self.priors} (missing {lost}): give LoadPriorFeatures '
                'the neck\'s priors')
        feats = {
            p: torch.stack([it.get(p) for it in items]).to(device).float()
            for p in self.priors
        }
        cache_affine = torch.stack([
            torch.as_tensor(it.crop_affine, dtype=torch.float64)
            for it in items
        ]).to(device)
        cache_size = torch.tensor(
            [[float(v) for v in it.metainfo['input_size']] for it in items],
            dtype=torch.float64)
        cfg = {
            k: items[0].metainfo.get(k, self.PRIOR_CACHE_DEFAULTS[k])
            for k in ('warp', 'mask_outside', 'crop_tol')
        }
        cfg['downsample'] = self.downsample
        return self._target(feats, cache_affine, cache_size, metas, size, cfg)

    def loss(self, aux: Dict,
             data_samples: Optional[Sequence]) -> Dict[str, Tensor]:
        """Distillation loss ``MSE(FAE(img), mean teacher feature)``.

        The target is, the first that applies: the data samples'
        ``prior_features`` (``LoadPriorFeatures``, every sample),
        the deprecated ``prior_cache`` or the live teachers on
        ``aux['rgb']``.

        Args:
            aux (dict): the second output of :meth:`forward`
                (``fae_prior``; ``rgb`` for live teachers).
            data_samples (Sequence, optional): the batch's data samples.

        Returns:
            dict: ``{'loss_distill': ...}`` (empty for the baseline or the
            starred variant).
        """
        if isinstance(data_samples, Tensor):
            raise TypeError(
                'FusionAlignmentNeck.loss(aux, data_samples): the images for '
                'the live teachers go to forward(..., rgb=rgb), which keeps '
                "them in aux['rgb']")
        if 'fae_prior' not in aux:
            return {}
        pred = aux['fae_prior']
        size = tuple(pred.shape[-2:])
        samples = list(data_samples or [])
        if samples and all(
                hasattr(ds, 'prior_features') for ds in samples):
            target, weight = self.sample_prior(samples, size, pred.device)
            return dict(
                loss_distill=self.loss_distill(pred, target.to(pred.dtype),
                                               weight))
        if self.prior_cache is not None:
            if not samples:
                raise ValueError('FusionAlignmentNeck.loss: prior_cache needs '
                                 'the data samples (loss(aux, '
                                 'data_samples))')
            target, weight = self.cached_prior(samples, size, pred.device)
            return dict(
                loss_distill=self.loss_distill(pred, target.to(pred.dtype),
                                               weight))
        if aux.get('rgb') is None:
            raise ValueError(
                'FusionAlignmentNeck.loss: no distillation target: the data '
                'samples carry no prior_features (LoadPriorFeatures) and '
                "aux has no 'rgb' for the live teachers (pass rgb= to "
                'forward)')
        target = self.teacher_prior(aux['rgb'], size)
        return dict(loss_distill=self.loss_distill(pred, target))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(priors={self.priors}, '
                f'prior_source={self.prior_source!r}, embed_dims='
                f'{self.embed_dims}, teachers built: {self.has_teachers})\n' +
                super().__repr__())

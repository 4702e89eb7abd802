# Copyright (c) mmhand2p contributors. All rights reserved.
"""Cached teacher features into the packed sample (as mmdet's
``LoadProposals`` loads precomputed proposals)."""
from typing import Dict, Optional, Sequence

import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from mmhand2p.registry import TRANSFORMS
from mmhand2p.utils.feature_cache import WARP_MODES, PriorFeatureCache

__all__ = ['LoadPriorFeatures']


@TRANSFORMS.register_module()
class LoadPriorFeatures(BaseTransform):
    """Put the teachers' cached features of a sample into its data sample,
    for the distillation loss of ``FusionAlignmentNeck`` (A2P stage 1).

    The cache is written by ``tools/misc/extract_prior_features.py``
    (:mod:`mmhand2p.utils.feature_cache`: the features of every sample's
    deterministic crop and of its flipped image). Put this transform
    **after** ``PackTwoHandInputs``: it finds the sample by the packed
    metainfo ``img_id`` (and checks ``img_path``), takes the flipped variant
    when ``flip`` is set, and adds the data field ``prior_features`` (a
    ``BaseDataElement``) to ``data_samples``:

    * ``<prior>``: ``(C, h, w)`` float16 tensor per prior (``keypoint``,
      ``segmentation``, ``depth``), the cached crop's features;
    * ``crop_affine``: ``(2, 3)`` float64, original image -> cached crop;
    * metainfo ``priors``, ``input_size`` (the cached crop's ``(w, h)``),
      ``warp``, ``mask_outside``, ``crop_tol``.

    The neck resamples them onto the sample's own (possibly augmented) crop
    (metainfo ``crop_affine``) at its feature grid and averages the priors
    (:func:`~mmhand2p.utils.feature_cache.prior_target`). The cache is
    opened and checked against the teachers once, when the transform is
    built: a cache made by other teachers (config or checkpoint hash) or
    for other priors is refused, naming ``index.json``.

    Args:
        root (str): the cache folder.
        priors (Sequence[str]): the priors to load (the neck's ``priors``).
        teachers (dict): ``{prior: teacher config}``, the neck's
            ``teachers`` (one config variable for both, so they cannot
            disagree); the cache must have been made by them.
        teacher_channels (int, optional): the neck's teacher channels
            (checked).
        warp (str): what the neck does with a sample whose crop was
            augmented: ``'affine'`` (resample through the relative crop
            affine), ``'none'`` (use the cached crop as it is) or
            ``'refuse'`` (raise); ``docs/a2p.md`` measures both
            approximations.
        mask_outside (bool): leave the cells that the cached crop does not
            cover out of the loss (``'affine'`` only).
        crop_tol (float): largest difference from the cached crop that
            counts as the same crop.
        check_checkpoints (bool): hash the teachers' checkpoint files when
            checking the cache (seconds for Sapiens-size files).
    """

    def __init__(self,
                 root: str,
                 priors: Sequence[str],
                 teachers: Dict[str, dict],
                 teacher_channels: Optional[int] = None,
                 warp: str = 'affine',
                 mask_outside: bool = True,
                 crop_tol: float = 1e-4,
                 check_checkpoints: bool = True) -> None:
        if warp not in WARP_MODES:
            raise ValueError(f'LoadPriorFeatures: warp must be one of '
                             f'{WARP_MODES}, got {warp!r}')
        self.priors = tuple(priors)
        if not self.priors:
            raise ValueError('LoadPriorFeatures: priors is empty (the '
                             'baseline distils nothing)')
        self.warp = warp
        self.mask_outside = bool(mask_outside)
        self.crop_tol = float(crop_tol)
        self.cache = PriorFeatureCache(root)
        self.cache.validate(
            self.priors,
            dict(teachers or {}),
            teacher_channels,
            check_checkpoints=check_checkpoints)

    def transform(self, results: Dict) -> Dict:
        ds = results.get('data_samples')
        if ds is None or not hasattr(ds, 'metainfo'):
            raise KeyError('LoadPriorFeatures: no packed data_samples; put '
                           'it after PackTwoHandInputs in the pipeline')
        meta = ds.metainfo
        if meta.get('img_id') is None:
            raise KeyError(
                'LoadPriorFeatures: the data sample has no metainfo '
                f"'img_id' ({meta.get('img_path')}), needed to find its "
                'cached features (pack it with PackTwoHandInputs)')
        rows = self.cache.rows([meta['img_id']], [meta.get('img_path')])
        variant = self.cache.variant_of(bool(meta.get('flip', False)))
        row = int(rows[0])
        item = BaseDataElement(
            metainfo=dict(
                priors=self.priors,
                input_size=tuple(self.cache.input_size),
                warp=self.warp,
                mask_outside=self.mask_outside,
                crop_tol=self.crop_tol))
        for p in self.priors:
            item.set_field(
                torch.from_numpy(
                    self.cache.features(p)[row, variant].copy()), p)
        item.crop_affine = torch.from_numpy(
            self.cache.crop_affine[row, variant].copy())
        ds.prior_features = item
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(root={self.cache.root!r}, priors='
                f'{self.priors}, warp={self.warp!r}, mask_outside='
                f'{self.mask_outside})')

# Copyright (c) mmhand2p contributors. All rights reserved.
"""Top-down two-hand reconstruction: a two-hand crop in, both hands out."""
from typing import Dict, Optional, Union

from mmengine.model import BaseModel
from torch import Tensor

from mmhand2p.models.refiners import (content_noise_key,
                                      noise_key_from_metainfo)
from mmhand2p.registry import MODELS
from mmhand2p.utils.typing import (ConfigType, OptConfigType, OptSampleList,
                                   SampleList)

__all__ = ['TopDownTwoHandReconstructor', 'set_input_noise_keys']


def set_input_noise_keys(inputs: Tensor, data_samples: SampleList) -> None:
    """Name the samples that have no name for the refiner's sampling noise.

    A sample whose metainfo names it (``noise_key``, ``img_path``,
    ``img_id`` or ``frame_idx``: :func:`~mmhand2p.models.refiners.
    noise_key_from_metainfo`) keeps that name; the others get the metainfo
    ``noise_key`` = the content of their network input
    (:func:`~mmhand2p.models.refiners.content_noise_key` of ``inputs[i]``,
    exact: the data preprocessor treats every image by itself), so their
    refined hands do not depend on the batch either.

    Args:
        inputs (Tensor): ``(B, 3, h, w)`` the preprocessed crops.
        data_samples (list): B data samples; updated in place.
    """
    for x, ds in zip(inputs, data_samples):
        if noise_key_from_metainfo(ds.metainfo) is None:
            ds.set_metainfo(dict(noise_key=content_noise_key(x)))


@MODELS.register_module()
class TopDownTwoHandReconstructor(BaseModel):
    """Backbone -> neck -> head (-> optional refiner) for two-hand crops.

    The model only wires components; the neck owns the prior distillation
    and the head its losses and decoding (mmpose 1.x style).

    Args:
        backbone (dict): image encoder, e.g. ``dict(type='mmpose.ResNet',
            depth=50, out_indices=(3, ))``.
        head (dict): e.g. ``TwoHandMANOHead``.
        neck (dict, optional): e.g. ``FusionAlignmentNeck``.
        refiner (dict, optional): a test-time refiner (A2P stage 2); called
            as ``refiner.refine(pred_instances, data_samples)``, after
            :func:`set_input_noise_keys` names the samples.
        data_preprocessor (dict, optional): e.g. ``ImgDataPreprocessor``
            with mean/std and ``bgr_to_rgb=True``.
        train_cfg / test_cfg (dict, optional): passed to the head.
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 head: ConfigType,
                 neck: OptConfigType = None,
                 refiner: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck is not None else None
        self.head = MODELS.build(head)
        self.refiner = MODELS.build(refiner) if refiner is not None else None
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})

    # ------------------------------------------------------------------
    def _rgb(self, inputs: Tensor) -> Tensor:
        """Undo the preprocessor's normalisation: RGB on the 0-255 scale."""
        dp = self.data_preprocessor
        mean = getattr(dp, 'mean', None)
        std = getattr(dp, 'std', None)
        x = inputs
        if getattr(dp, '_enable_normalize', False) and mean is not None:
            x = x * std + mean
        if not getattr(dp, '_channel_conversion', False):
            x = x.flip(1)  # the network sees BGR: teachers want RGB
        return x

    def extract_feat(self, inputs: Tensor):
        """Backbone and neck features.

        Returns:
            tuple: fused features and the neck's auxiliary outputs.
        """
        feats = self.backbone(inputs)
        if self.neck is None:
            return feats, {}
        rgb = None
        if getattr(self.neck, 'prior_source', 'fae') == 'teacher':
            rgb = self._rgb(inputs)
        return self.neck(feats, inputs=inputs, rgb=rgb)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict:
        feats, aux = self.extract_feat(inputs)
        losses = {}
        if self.neck is not None and hasattr(self.neck, 'loss'):
            if getattr(self.neck, 'prior_cache', None) is not None:
                # cached teacher features: found by the samples' metainfo
                losses.update(self.neck.loss(aux, None, data_samples))
            else:
                losses.update(self.neck.loss(aux, self._rgb(inputs)))
        losses.update(self.head.loss(feats, data_samples, self.train_cfg))
        return losses

    def predict(self, inputs: Tensor, data_samples: SampleList) -> SampleList:
        """Stage 1 (and the refiner, when there is one and
        ``test_cfg.refine`` is not False).

        With a ``batch_invariant`` refiner, stage 1 runs one sample at a
        time: the refiner amplifies the rounding differences of batched
        arithmetic in its input, so each sample's input must be computed
        the same way whatever its batch.
        """
        refine = self.refiner is not None and self.test_cfg.get('refine', True)
        if refine and getattr(self.refiner, 'batch_invariant', False):
            preds = []
            for i in range(len(inputs)):
                feats, _ = self.extract_feat(inputs[i:i + 1])
                preds.extend(
                    self.head.predict(feats, data_samples[i:i + 1],
                                      self.test_cfg))
        else:
            feats, _ = self.extract_feat(inputs)
            preds = self.head.predict(feats, data_samples, self.test_cfg)
        if refine:
            set_input_noise_keys(inputs, data_samples)
            preds = self.refiner.refine(preds, data_samples)
        for ds, pred in zip(data_samples, preds):
            ds.pred_hands = pred
        return data_samples

    def _forward(self,
                 inputs: Tensor,
                 data_samples: OptSampleList = None) -> Dict[str, Tensor]:
        feats, _ = self.extract_feat(inputs)
        return self.head.forward(feats)

    def forward(self,
                inputs: Tensor,
                data_samples: OptSampleList = None,
                mode: str = 'tensor') -> Union[Dict, SampleList]:
        """The Runner's entry point: ``mode`` is ``'loss'``, ``'predict'`` or
        ``'tensor'``."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got "
                         f'{mode!r}')

    @property
    def deployed_parameter_count(self) -> int:
        """Parameters of the inference model (teachers are never part of it).
        """
        return sum(p.numel() for p in self.parameters())

    def teachers_built(self) -> Optional[bool]:
        """Whether the neck has built its (training-only) teachers."""
        if self.neck is None or not hasattr(self.neck, 'has_teachers'):
            return None
        return bool(self.neck.has_teachers)

# Copyright (c) mmhand2p contributors. All rights reserved.
"""Top-down two-hand reconstruction: a two-hand crop in, both hands out."""
from typing import Dict, Optional, Tuple

from torch import Tensor

from mmhand2p.models.refiners import content_noise_key, noise_key_from_metainfo
from mmhand2p.registry import MODELS
from mmhand2p.utils.timing import StageTimer
from mmhand2p.utils.typing import (ConfigType, OptConfigType, OptSampleList,
                                   SampleList)
from .base import BaseTwoHandReconstructor, RefineMask, refine_mask

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
class TopDownTwoHandReconstructor(BaseTwoHandReconstructor):
    """Backbone -> neck -> head (-> optional refiner) for two-hand crops.

    The model only wires components; the neck owns the prior distillation
    (``neck.loss(aux, data_samples)``: cached teacher features come in the
    data samples from ``LoadPriorFeatures``, the RGB images for live
    teachers in ``aux['rgb']``) and the head its losses and decoding (mmpose
    1.x style). The contract: :class:`BaseTwoHandReconstructor`.

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

    smallest_config = ('configs/a2p/synthetic/'
                       'a2p_res18w32-baseline_1xb16-cpu_synthetic-128x128.py')

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

    def _features(self, inputs: Tensor,
                  with_rgb: bool = False) -> Tuple[object, Dict]:
        """Backbone and neck: the fused features and the neck's auxiliary
        outputs (``with_rgb``: the RGB images go to the neck for the live
        teachers of its loss)."""
        feats = self.backbone(inputs)
        if self.neck is None:
            return feats, {}
        rgb = None
        if with_rgb or getattr(self.neck, 'prior_source', 'fae') == 'teacher':
            rgb = self._rgb(inputs)
        return self.neck(feats, inputs=inputs, rgb=rgb)

    def extract_feat(self, inputs: Tensor):
        """Backbone and neck features (what the head reads).

        Args:
            inputs (Tensor): ``(B, 3, h, w)`` preprocessed crops.

        Returns:
            Tensor | tuple: the neck's fused features ``(B, d, h', w')``
            (the backbone's outputs without a neck).
        """
        return self._features(inputs)[0]

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict:
        """The neck's distillation loss (if any) and the head's losses."""
        neck_loss = self.neck is not None and hasattr(self.neck, 'loss')
        feats, aux = self._features(inputs, with_rgb=neck_loss)
        losses = {}
        if neck_loss:
            losses.update(self.neck.loss(aux, data_samples))
        losses.update(self.head.loss(feats, data_samples, self.train_cfg))
        return losses

    def predict(self,
                inputs: Tensor,
                data_samples: SampleList,
                refine: RefineMask = None) -> SampleList:
        """Stage 1 and, for the samples that ``refine`` selects, the
        refiner (see :class:`BaseTwoHandReconstructor`).

        With a ``batch_invariant`` refiner that may run (``refine`` is not
        False and :attr:`refines`), stage 1 runs one sample at a time: the
        refiner amplifies the rounding differences of batched arithmetic in
        its input, so each sample's input must be computed the same way
        whatever its batch (and whatever the other samples' flags).
        Samples offered to the refiner that have no name get one
        (:func:`set_input_noise_keys`).

        Args:
            inputs (Tensor): ``(B, 3, h, w)`` preprocessed crops.
            data_samples (list): B data samples (metainfo
                ``cam_intrinsics`` of the crop); updated in place.
            refine (None | bool | Sequence[bool]): the refine mask.

        Returns:
            list: ``data_samples`` with ``pred_hands`` and metainfo
            ``stage_times_ms`` (``reconstruction``, ``refinement``).
        """
        timer = StageTimer(inputs.device)
        mask = refine_mask(refine, len(inputs), self.refines)
        if mask is not None and self.batch_invariant:
            preds = []
            for i in range(len(inputs)):
                feats = self.extract_feat(inputs[i:i + 1])
                preds.extend(
                    self.head.predict(feats, data_samples[i:i + 1],
                                      self.test_cfg))
        else:
            feats = self.extract_feat(inputs)
            preds = self.head.predict(feats, data_samples, self.test_cfg)
        times = dict(reconstruction=0.0, refinement=None)
        idx = [] if mask is None else [i for i, m in enumerate(mask) if m]
        if mask is not None:
            times['refinement'] = 0.0
        if idx:
            stage1 = {
                i: (preds[i].joints_3d.clone(), preds[i].vertices.clone())
                for i in idx
            }
            times['reconstruction'] += timer.lap(None)
            chosen = [data_samples[i] for i in idx]
            set_input_noise_keys(inputs[idx], chosen)
            out = self.refiner.refine([preds[i] for i in idx], chosen)
            for i, pred in zip(idx, out):
                preds[i] = pred
            times['refinement'] += timer.lap(None)
            for i, (joints, vertices) in stage1.items():
                if 'unrefined_joints_3d' not in preds[i]:
                    preds[i].unrefined_joints_3d = joints
                if 'unrefined_vertices' not in preds[i]:
                    preds[i].unrefined_vertices = vertices
        for ds, pred in zip(data_samples, preds):
            ds.pred_hands = pred
        times['reconstruction'] += timer.lap(None)
        for ds in data_samples:
            ds.set_metainfo(dict(stage_times_ms=dict(times)))
        return data_samples

    def _forward(self,
                 inputs: Tensor,
                 data_samples: OptSampleList = None) -> Dict[str, Tensor]:
        return self.head.forward(self.extract_feat(inputs))

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

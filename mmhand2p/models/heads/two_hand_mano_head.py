# Copyright (c) mmhand2p contributors. All rights reserved.
"""A2P's two-hand MANO regressor with relative translation."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmhand2p.codecs import resolve_codec
from mmhand2p.registry import MODELS
from mmhand2p.structures import stack_field
from mmhand2p.utils.geometry import (matrix_to_rot6d, rot6d_to_axis_angle,
                                     rot6d_to_matrix)
from mmhand2p.utils.typing import ConfigType, OptConfigType, SampleList
from ..utils import sine_position_encoding
from .base_head import BaseTwoHandHead

__all__ = ['TwoHandMANOHead', 'stack_field']

_IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
#: the conventions this head used when they were its own keywords
_LEGACY_DEFAULTS = dict(left_as_right=True, crop_extent=0.25, depth_range=0.4)


@MODELS.register_module()
class TwoHandMANOHead(BaseTwoHandHead):
    """Regresses both hands' MANO parameters, the relative translation and a
    camera from fused features (A2P, arXiv 2503.17788, Sec. 3.1).

    Three learned queries (right hand, left hand, relative translation)
    attend to the feature map through a transformer decoder. Each hand query
    regresses its pose as 16 6D rotations and 10 betas with one shared
    regressor (with the codec's ``left_as_right`` both hands live in
    right-hand space); the right query also gives the right wrist's
    position through the crop's virtual camera, and the relative query the
    left-minus-right wrist offset (so the left wrist is the right wrist plus
    it). MANO then gives camera-frame meshes and joints (metres), projected
    with the crop intrinsics for the 2.5D supervision
    (:class:`BaseTwoHandHead` owns that shared path).

    Losses (L1, masked by validity): 6D pose and betas where MANO is valid,
    root-relative 3D joints, normalised 2.5D joints (as the codec encodes
    them), relative translation.

    Args:
        in_channels (int): channels of the neck's output.
        num_layers / num_heads / ffn_dims / dropout: the decoder.
        body_model (dict): the ``MANOLayer`` config (model path...).
        left_as_right (bool, optional): deprecated, set it in ``decoder``.
            Without a ``decoder``: the left hand's parameters are predicted
            in mirrored (right-hand) space (default True).
        crop_extent (float, optional): deprecated, set it in ``decoder``.
            Without a ``decoder``: metres spanned by the input crop at the
            reference depth, the initial depth guess (default 0.25).
        depth_range (float, optional): deprecated, set it in ``decoder``.
            Without a ``decoder``: of the 2.5D targets (default 0.4).
        loss_pose / loss_betas / loss_joints_3d / loss_joints_25d /
            loss_rel_transl (dict): loss configs (weights inside).
        decoder (dict | TwoHandCodec, optional): the ``codec`` config
            variable that the pipeline's
            ``GenerateTwoHandTargets(encoder=codec)`` receives too
            (``left_as_right``, ``depth_range``, ``crop_extent``...). A
            deprecated keyword above that contradicts it raises
            ``ValueError``.
        init_cfg: mmengine init config.
    """

    smallest_config = ('configs/a2p/synthetic/'
                       'a2p_res18w32-baseline_1xb16-cpu_synthetic-128x128.py')

    def __init__(self,
                 in_channels: int = 256,
                 num_layers: int = 2,
                 num_heads: int = 8,
                 ffn_dims: int = 1024,
                 dropout: float = 0.0,
                 body_model: ConfigType = dict(type='MANOLayer'),
                 left_as_right: Optional[bool] = None,
                 crop_extent: Optional[float] = None,
                 depth_range: Optional[float] = None,
                 loss_pose: ConfigType = dict(
                     type='MaskedL1Loss', loss_weight=1.0),
                 loss_betas: ConfigType = dict(
                     type='MaskedL1Loss', loss_weight=0.1),
                 loss_joints_3d: ConfigType = dict(
                     type='MaskedL1Loss', loss_weight=10.0),
                 loss_joints_25d: ConfigType = dict(
                     type='MaskedL1Loss', loss_weight=1.0),
                 loss_rel_transl: ConfigType = dict(
                     type='MaskedL1Loss', loss_weight=10.0),
                 decoder: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        codec = resolve_codec(
            decoder,
            dict(
                left_as_right=left_as_right,
                crop_extent=crop_extent,
                depth_range=depth_range),
            _LEGACY_DEFAULTS,
            owner='TwoHandMANOHead',
            arg='decoder')
        super().__init__(
            body_model=body_model, decoder=codec, init_cfg=init_cfg)
        self.in_channels = in_channels
        self.queries = nn.Parameter(torch.randn(3, in_channels) * 0.02)
        layer = nn.TransformerDecoderLayer(
            in_channels,
            num_heads,
            ffn_dims,
            dropout,
            activation='gelu',
            batch_first=True,
            norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, num_layers)
        self.norm = nn.LayerNorm(in_channels)
        self.hand_reg = nn.Linear(in_channels, 16 * 6 + self.num_betas)
        self.cam_reg = nn.Linear(in_channels, 3)
        self.rel_reg = nn.Linear(in_channels, 3)
        self.losses = nn.ModuleDict(
            dict(
                pose=MODELS.build(loss_pose),
                betas=MODELS.build(loss_betas),
                joints_3d=MODELS.build(loss_joints_3d),
                joints_25d=MODELS.build(loss_joints_25d),
                rel_transl=MODELS.build(loss_rel_transl)))
        self._init_regressors()

    def _init_regressors(self) -> None:
        # start at the flat hand (identity rotations), zero shape and a
        # camera at the crop centre and reference depth
        for lin in (self.hand_reg, self.cam_reg, self.rel_reg):
            nn.init.normal_(lin.weight, std=1e-3)
            nn.init.zeros_(lin.bias)
        with torch.no_grad():
            self.hand_reg.bias[:96] = torch.tensor(_IDENTITY_6D).repeat(16)

    def init_weights(self) -> None:
        super().init_weights()
        self._init_regressors()

    # ------------------------------------------------------------------
    def forward(self, feats) -> Dict[str, Tensor]:
        """Raw predictions.

        Args:
            feats (Tensor | tuple): ``(B, C, h, w)`` (the last of a tuple).

        Returns:
            dict: ``pose_6d`` ``(B, 2, 16, 6)`` (hand 1 in right-hand space
            when ``left_as_right``), ``betas`` ``(B, 2, 10)``, ``cam``
            ``(B, 3)`` (right wrist: offsets in half crop sizes and log depth
            ratio), ``rel_transl`` ``(B, 3)`` metres.
        """
        feats = self._features(feats)
        b, c, h, w = feats.shape
        memory = feats.flatten(2).transpose(1, 2) + sine_position_encoding(
            h, w, c, feats.device)
        q = self.decoder(self.queries.expand(b, -1, -1), memory)
        q = self.norm(q)
        hand = self.hand_reg(q[:, :2])
        return dict(
            pose_6d=hand[..., :96].reshape(b, 2, 16, 6),
            betas=hand[..., 96:],
            cam=self.cam_reg(q[:, 0]),
            rel_transl=self.rel_reg(q[:, 2]))

    def decode_root(self, preds: Dict[str, Tensor], intrinsics: Tensor,
                    input_size: Sequence[int]) -> Tensor:
        """A2P's camera parametrisation: both wrists from the right query's
        ``cam`` (pixel offsets from the input centre in half input sizes,
        log ratio to the codec's reference depth) and the relative query's
        left-minus-right offset.

        Args:
            preds (dict): from :meth:`forward`.
            intrinsics (Tensor): ``(B, 3, 3)`` of the network input (K').
            input_size (Sequence[int]): (w, h) of the network input.

        Returns:
            Tensor: ``(B, 2, 3)`` camera-frame wrists (right, left), metres.
        """
        w, h = float(input_size[0]), float(input_size[1])
        k = intrinsics.to(preds['cam'].dtype)
        cam = preds['cam']
        u = (w - 1) / 2 + cam[:, 0] * w / 2
        v = (h - 1) / 2 + cam[:, 1] * h / 2
        z_ref = self.codec.reference_depth(k, input_size)
        z = z_ref * torch.exp(cam[:, 2].clamp(-5, 5))
        right_root = self.codec.backproject(
            torch.stack([u, v], dim=-1), z, k)
        return torch.stack([right_root, right_root + preds['rel_transl']], 1)

    def decode(self, preds: Dict[str, Tensor], intrinsics: Tensor,
               input_size: Sequence[int]) -> Dict[str, Tensor]:
        """Camera-frame hands from raw predictions.

        Args:
            preds (dict): from :meth:`forward`.
            intrinsics (Tensor): ``(B, 3, 3)`` of the network input (K').
            input_size (Sequence[int]): (w, h) of the network input.

        Returns:
            dict: ``pose`` ``(B, 2, 16, 3)`` axis-angle in each hand's own
            model space (left un-mirrored), ``betas``, ``transl``
            ``(B, 2, 3)``, ``vertices`` ``(B, 2, V, 3)``, ``joints``
            ``(B, 2, 21, 3)``, ``root`` ``(B, 2, 3)``, all camera frame,
            metres (:meth:`BaseTwoHandHead.decode_hands`).
        """
        root = self.decode_root(preds, intrinsics, input_size)
        return self.decode_hands(
            rot6d_to_axis_angle(preds['pose_6d']), preds['betas'], root)

    # ------------------------------------------------------------------
    def loss(self, feats, data_samples: SampleList,
             train_cfg: OptConfigType = None) -> Dict[str, Tensor]:
        """Losses against the packed targets of ``data_samples``."""
        self.check_targets(data_samples)
        preds = self.forward(feats)
        device = preds['cam'].device
        k, size = self.input_meta(data_samples, device)
        dec = self.decode(preds, k, size)

        def gt(name):
            return self.gt(data_samples, name, device)

        losses = {}
        hand_valid = gt('hand_valid')
        mano_valid = gt('mano_valid')
        if mano_valid is not None and hand_valid is not None:
            mano_valid = mano_valid * hand_valid
        target_6d = gt('mano_pose_6d')
        if target_6d is not None and mano_valid is not None:
            pred_6d = matrix_to_rot6d(rot6d_to_matrix(preds['pose_6d']))
            losses['loss_pose'] = self.losses['pose'](pred_6d, target_6d,
                                                      mano_valid)
            betas = gt('mano_betas')
            if betas is not None:
                losses['loss_betas'] = self.losses['betas'](
                    preds['betas'], betas[..., :self.num_betas], mano_valid)
        j3d, v3d = gt('joints_3d'), gt('joints_3d_valid')
        if j3d is not None and v3d is not None:
            r = self.root_index
            rel_gt = j3d - j3d[:, :, r:r + 1]
            rel_pred = dec['joints'] - dec['root'][:, :, None]
            mask = v3d * v3d[:, :, r:r + 1]
            losses['loss_joints_3d'] = self.losses['joints_3d'](rel_pred,
                                                                rel_gt, mask)
        j25, v25 = gt('joints_25d_norm'), gt('joints_25d_valid')
        if j25 is not None and v25 is not None:
            losses['loss_joints_25d'] = self.losses['joints_25d'](
                self.codec.normalize_25d(dec['joints'], k, size), j25, v25)
        rel, rel_valid = gt('rel_transl'), gt('rel_transl_valid')
        if rel is not None and rel_valid is not None:
            losses['loss_rel_transl'] = self.losses['rel_transl'](
                preds['rel_transl'], rel[:, 1], rel_valid[:, 1])
        return losses

    def predict(self,
                feats,
                data_samples: SampleList,
                test_cfg: OptConfigType = None) -> List[InstanceData]:
        """Decoded hands, one ``InstanceData`` (2 instances) per sample
        (:meth:`BaseTwoHandHead.pack_instances`).

        Fields: ``joints_3d`` (2, 21, 3), ``vertices`` (2, V, 3),
        ``mano_pose`` (2, 16, 3) (each hand in its own model's space),
        ``mano_betas``, ``mano_transl``, ``joints_2d`` (2, 21, 2) in the
        network input, ``scores`` (2,), camera frame of the input crop,
        metres.
        """
        preds = self.forward(feats)
        k, size = self.input_meta(data_samples, preds['cam'].device)
        return self.pack_instances(self.decode(preds, k, size), k)

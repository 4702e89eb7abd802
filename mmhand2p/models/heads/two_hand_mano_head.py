# Copyright (c) mmhand2p contributors. All rights reserved.
"""A2P's two-hand MANO regressor with relative translation."""
from typing import Dict, List, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmhand2p.registry import MODELS
from mmhand2p.utils.geometry import (matrix_to_rot6d, mirror_axis_angle,
                                     rot6d_to_axis_angle, rot6d_to_matrix)
from mmhand2p.utils.typing import ConfigType, OptConfigType, SampleList
from mmhand2p.structures import stack_field
from ..utils import sine_position_encoding

__all__ = ['TwoHandMANOHead', 'stack_field']

_IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@MODELS.register_module()
class TwoHandMANOHead(BaseModule):
    """Regresses both hands' MANO parameters, the relative translation and a
    camera from fused features (A2P, arXiv 2503.17788, Sec. 3.1).

    Three learned queries (right hand, left hand, relative translation)
    attend to the feature map through a transformer decoder. Each hand query
    regresses its pose as 16 6D rotations and 10 betas with one shared
    regressor (with ``left_as_right`` both hands live in right-hand space);
    the right query also gives the right wrist's position through the crop's
    virtual camera, and the relative query the left-minus-right wrist offset
    (so the left wrist is the right wrist plus it). MANO then gives camera-
    frame meshes and joints (metres), projected with the crop intrinsics for
    the 2.5D supervision.

    Losses (L1, masked by validity): 6D pose and betas where MANO is valid,
    root-relative 3D joints, normalised 2.5D joints (as produced by
    ``GenerateTwoHandTargets``), relative translation.

    Args:
        in_channels (int): channels of the neck's output.
        num_layers / num_heads / ffn_dims / dropout: the decoder.
        body_model (dict): the ``MANOLayer`` config (model path...).
        left_as_right (bool): the left hand's parameters are predicted in
            mirrored (right-hand) space; must match the data pipeline's
            ``GenerateTwoHandTargets(left_as_right=...)``.
        crop_extent (float): metres spanned by the input crop at the
            reference depth, i.e. the initial depth guess (a padded
            two-hand crop of InterHand2.6M spans about 0.2-0.25 m).
        depth_range (float): of the 2.5D targets; must match the pipeline.
        loss_pose / loss_betas / loss_joints_3d / loss_joints_25d /
            loss_rel_transl (dict): loss configs (weights inside).
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 in_channels: int = 256,
                 num_layers: int = 2,
                 num_heads: int = 8,
                 ffn_dims: int = 1024,
                 dropout: float = 0.0,
                 body_model: ConfigType = dict(type='MANOLayer'),
                 left_as_right: bool = True,
                 crop_extent: float = 0.25,
                 depth_range: float = 0.4,
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
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.left_as_right = left_as_right
        self.crop_extent = crop_extent
        self.depth_range = depth_range
        self.body_model = MODELS.build(body_model)
        self.num_betas = self.body_model.num_betas
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
        if isinstance(feats, (tuple, list)):
            feats = feats[-1]
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
            metres.
        """
        w, h = float(input_size[0]), float(input_size[1])
        k = intrinsics.to(preds['cam'].dtype)
        cam = preds['cam']
        u = (w - 1) / 2 + cam[:, 0] * w / 2
        v = (h - 1) / 2 + cam[:, 1] * h / 2
        z_ref = k[:, 0, 0] * self.crop_extent / w
        z = z_ref * torch.exp(cam[:, 2].clamp(-5, 5))
        x = (u - k[:, 0, 2] - k[:, 0, 1] * (v - k[:, 1, 2]) / k[:, 1, 1]) \
            / k[:, 0, 0] * z
        y = (v - k[:, 1, 2]) / k[:, 1, 1] * z
        right_root = torch.stack([x, y, z], dim=-1)
        root = torch.stack([right_root, right_root + preds['rel_transl']], 1)

        pose = rot6d_to_axis_angle(preds['pose_6d'])
        if self.left_as_right:
            pose = torch.stack([pose[:, 0], mirror_axis_angle(pose[:, 1])], 1)
        out = self.body_model(pose=pose, betas=preds['betas'])
        local_root = out.joints[:, :, :1]
        shift = root[:, :, None] - local_root
        return dict(
            pose=pose,
            betas=preds['betas'],
            transl=shift[:, :, 0],
            vertices=out.vertices + shift,
            joints=out.joints + shift,
            root=root)

    # ------------------------------------------------------------------
    @staticmethod
    def _input_meta(data_samples: SampleList, device) -> Tuple[Tensor, tuple]:
        k = torch.stack([
            torch.as_tensor(ds.metainfo['cam_intrinsics'], dtype=torch.float32)
            for ds in data_samples
        ]).to(device)
        size = data_samples[0].metainfo.get('input_size')
        if size is None:
            raise KeyError('TwoHandMANOHead needs metainfo["input_size"] '
                           '(set by TwoHandCropAffine / PackTwoHandInputs)')
        return k, tuple(int(s) for s in size)

    def _check_flip_left(self, data_samples: SampleList) -> None:
        flip = data_samples[0].metainfo.get('flip_left')
        if flip is not None and bool(flip) != self.left_as_right:
            raise ValueError(
                f'TwoHandMANOHead(left_as_right={self.left_as_right}) but the '
                f'pipeline made targets with left_as_right={bool(flip)}: set '
                'both the same')

    def loss(self, feats, data_samples: SampleList,
             train_cfg: OptConfigType = None) -> Dict[str, Tensor]:
        """Losses against the packed targets of ``data_samples``."""
        self._check_flip_left(data_samples)
        preds = self.forward(feats)
        device = preds['cam'].device
        k, size = self._input_meta(data_samples, device)
        dec = self.decode(preds, k, size)

        def gt(name):
            value = stack_field(data_samples, name)
            return None if value is None else value.to(device).float()

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
            rel_gt = j3d - j3d[:, :, :1]
            rel_pred = dec['joints'] - dec['root'][:, :, None]
            mask = v3d * v3d[:, :, :1]
            losses['loss_joints_3d'] = self.losses['joints_3d'](rel_pred,
                                                                rel_gt, mask)
        j25, v25 = gt('joints_25d_norm'), gt('joints_25d_valid')
        if j25 is not None and v25 is not None:
            losses['loss_joints_25d'] = self.losses['joints_25d'](
                self._joints_25d_norm(dec, k, size), j25, v25)
        rel, rel_valid = gt('rel_transl'), gt('rel_transl_valid')
        if rel is not None and rel_valid is not None:
            losses['loss_rel_transl'] = self.losses['rel_transl'](
                preds['rel_transl'], rel[:, 1], rel_valid[:, 1])
        return losses

    def _joints_25d_norm(self, dec: Dict[str, Tensor], k: Tensor,
                         size: tuple) -> Tensor:
        """Predicted joints as ``GenerateTwoHandTargets``' normalised 2.5D:
        ``(u / w, v / h, rel_depth / depth_range + 0.5)``."""
        j = dec['joints']
        z = j[..., 2:3].clamp(min=1e-3)
        uvw = torch.einsum('bij,bhnj->bhni', k, j / z)
        rel_z = j[..., 2] - j[:, :, :1, 2]
        return torch.stack([
            uvw[..., 0] / size[0], uvw[..., 1] / size[1],
            rel_z / self.depth_range + 0.5
        ], dim=-1)

    def predict(self,
                feats,
                data_samples: SampleList,
                test_cfg: OptConfigType = None) -> List[InstanceData]:
        """Decoded hands, one ``InstanceData`` (2 instances) per sample.

        Fields: ``joints_3d`` (2, 21, 3), ``vertices`` (2, V, 3),
        ``mano_pose`` (2, 16, 3) (each hand in its own model's space),
        ``mano_betas``, ``mano_transl``, ``joints_2d`` (2, 21, 2) in the
        network input, ``scores`` (2,), camera frame of the input crop,
        metres.
        """
        preds = self.forward(feats)
        k, size = self._input_meta(data_samples, preds['cam'].device)
        dec = self.decode(preds, k, size)
        j = dec['joints']
        uv = torch.einsum('bij,bhnj->bhni', k,
                          j / j[..., 2:3].clamp(min=1e-3))[..., :2]
        results = []
        for i in range(j.shape[0]):
            inst = InstanceData()
            inst.joints_3d = dec['joints'][i].detach()
            inst.vertices = dec['vertices'][i].detach()
            inst.mano_pose = dec['pose'][i].detach()
            inst.mano_betas = dec['betas'][i].detach()
            inst.mano_transl = dec['transl'][i].detach()
            inst.joints_2d = uv[i].detach()
            inst.scores = torch.ones(2, device=j.device)
            results.append(inst)
        return results

# Copyright (c) mmhand2p contributors. All rights reserved.
"""Hand-wise top-down reconstruction (issue 19 item 1, a non-default
variant): per-hand crops, the left crop mirrored, one shared hand network,
outputs flipped back, the relative translation from a separate branch.

Data: ``HandwiseCropAffine`` -> ``PackHandwiseInputs`` (the two crops side
by side in ``inputs``; ground truth and ``cam_intrinsics`` in the original
camera frame; per-crop cameras in ``handwise_cam_intrinsics`` /
``handwise_rot_z``).
"""
from typing import Dict, Optional

import torch
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmhand2p.codecs.handwise import (handwise_mano_to_camera,
                                      handwise_points_to_camera)
from mmhand2p.registry import MODELS
from mmhand2p.utils.geometry import (axis_angle_to_rot6d, project_points,
                                     rot6d_to_axis_angle)
from mmhand2p.utils.timing import StageTimer
from mmhand2p.utils.typing import ConfigType, OptConfigType, SampleList
from .base import BaseTwoHandReconstructor, RefineMask, refine_mask
from .top_down import set_input_noise_keys

__all__ = ['HandwiseTopDownReconstructor', 'HandwiseMANOHead']


@MODELS.register_module()
class HandwiseMANOHead(nn.Module):
    """A single right-hand MANO regressor on one crop's features.

    Global-average-pooled features -> MLP -> 16 6D rotations, betas and the
    crop camera's ``(du, dv, dz)``: the wrist lands at the crop pixel
    ``((w - 1) / 2 + du w, (h - 1) / 2 + dv h)`` at the depth
    ``z_ref exp(dz)``, ``z_ref = fx hand_extent / w`` (a hand of
    ``hand_extent`` metres spanning the crop), back-projected with the
    crop's own intrinsics. The right MANO model runs on every crop (the left
    crop is a mirrored left hand).

    Args:
        in_channels (int): backbone channels.
        hidden_dims (int): MLP width. Defaults to 256.
        body_model (dict): ``MANOLayer`` config.
        num_betas (int): shape coefficients. Defaults to 10.
        hand_extent (float): metres a hand crop spans at ``z_ref``.
            Defaults to 0.2.
    """

    def __init__(self,
                 in_channels: int,
                 body_model: ConfigType,
                 hidden_dims: int = 256,
                 num_betas: int = 10,
                 hand_extent: float = 0.2) -> None:
        super().__init__()
        self.num_betas = num_betas
        self.hand_extent = float(hand_extent)
        self.body_model = MODELS.build(body_model)
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hidden_dims), nn.ReLU(inplace=True))
        self.out = nn.Linear(hidden_dims, 16 * 6 + num_betas + 3)
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)
        with torch.no_grad():  # start at the flat hand, at the crop centre
            self.out.bias[:96] = axis_angle_to_rot6d(torch.zeros(
                16, 3)).reshape(-1)

    def forward(self, feats: Tensor) -> Dict[str, Tensor]:
        """``(N, C, h, w)`` features -> raw ``pose_6d`` ``(N, 16, 6)``,
        ``betas`` ``(N, K)``, ``cam`` ``(N, 3)``; also the pooled vector
        ``embedding`` ``(N, hidden)``."""
        x = self.mlp(feats.mean((-2, -1)))
        y = self.out(x)
        return dict(
            pose_6d=y[:, :96].reshape(-1, 16, 6),
            betas=y[:, 96:96 + self.num_betas],
            cam=y[:, 96 + self.num_betas:],
            embedding=x)

    def decode(self, raw: Dict[str, Tensor], cam_k: Tensor,
               input_size) -> Dict[str, Tensor]:
        """Right-hand meshes in each crop's camera frame.

        Args:
            raw (dict): :meth:`forward`'s output for ``N`` crops.
            cam_k (Tensor): ``(N, 3, 3)`` each crop's intrinsics.
            input_size: crop ``(w, h)``.
        """
        n = raw['pose_6d'].shape[0]
        pose_6d = raw['pose_6d'][:, None].expand(n, 2, 16, 6)
        betas = raw['betas'][:, None].expand(n, 2, self.num_betas)
        out = self.body_model(pose_6d=pose_6d, betas=betas)
        joints, verts = out.joints[:, 0], out.vertices[:, 0]
        root = out.joints_mano[:, 0, 0]  # J0 (the rest root, zero transl)
        w, h = input_size
        cam = raw['cam']
        u = (w - 1) / 2.0 + cam[:, 0] * w
        v = (h - 1) / 2.0 + cam[:, 1] * h
        z_ref = cam_k[:, 0, 0] * self.hand_extent / w
        z = z_ref * torch.exp(cam[:, 2].clamp(-3.0, 3.0))
        pix = torch.stack([u, v, torch.ones_like(u)], -1)
        wrist = torch.linalg.solve(cam_k, pix[..., None])[..., 0] * z[:, None]
        transl = wrist - joints[:, 0]
        return dict(
            joints_3d=joints + transl[:, None],
            vertices=verts + transl[:, None],
            mano_pose=rot6d_to_axis_angle(raw['pose_6d']),
            mano_betas=raw['betas'],
            mano_transl=transl,
            mano_root_joint=root)


@MODELS.register_module()
class HandwiseTopDownReconstructor(BaseTwoHandReconstructor):
    """Backbone -> a shared single-hand head on both crops -> flip back;
    a small branch estimates the relative translation.

    ``inputs`` are ``(B, 3, h, 2 w)``: the right crop and the mirrored left
    crop side by side (``PackHandwiseInputs``); they run through the
    backbone and :class:`HandwiseMANOHead` as one batch of ``2 B`` crops.
    The left hand's outputs are flipped back (and each hand's crop rotation
    undone) with :func:`~mmhand2p.codecs.handwise.handwise_points_to_camera`
    and :func:`~mmhand2p.codecs.handwise.handwise_mano_to_camera`, so both
    hands are in the original camera frame (``cam_intrinsics``). As in
    InterWild, the left hand is then placed at ``right wrist + rel``, with
    ``rel`` (left wrist - right wrist, metres) from an MLP on both crops'
    pooled features and each crop's wrist estimate.

    Args:
        backbone (dict): image encoder (its last output is used).
        head (dict): :class:`HandwiseMANOHead`.
        rel_hidden_dims (int): width of the relative-translation branch.
            Defaults to 128.
        refiner (dict, optional): a test-time refiner, as in
            :class:`TopDownTwoHandReconstructor`.
        data_preprocessor, train_cfg, test_cfg, init_cfg: as usual;
            ``train_cfg`` weights ``w_joints`` (root-relative joints, 1),
            ``w_root`` (each crop's wrist, 1), ``w_rel`` (relative
            translation, 1), ``w_betas`` (1e-3).
    """

    smallest_config = ('configs/a2p/synthetic/'
                       'a2p_res18w32-handwise_1xb16-cpu_synthetic-128x128.py')

    def __init__(self,
                 backbone: ConfigType,
                 head: ConfigType,
                 rel_hidden_dims: int = 128,
                 refiner: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)
        hidden = self.head.mlp[0].out_features
        self.rel_branch = nn.Sequential(
            nn.Linear(2 * hidden + 6, rel_hidden_dims), nn.ReLU(inplace=True),
            nn.Linear(rel_hidden_dims, 3))
        self.refiner = MODELS.build(refiner) if refiner is not None else None
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})

    # ------------------------------------------------------------------
    @staticmethod
    def split_crops(inputs: Tensor) -> Tensor:
        """``(B, C, h, 2 w)`` side-by-side crops -> ``(2 B, C, h, w)``,
        right then left crop of each sample."""
        b, c, h, w2 = inputs.shape
        w = w2 // 2
        return inputs.reshape(b, c, h, 2, w).permute(0, 3, 1, 2,
                                                     4).reshape(2 * b, c, h, w)

    def extract_feat(self, inputs: Tensor) -> Tensor:
        """``(2 B, C', h', w')`` features of the crops (right, left of each
        sample)."""
        feats = self.backbone(self.split_crops(inputs))
        return feats[-1] if isinstance(feats, (list, tuple)) else feats

    def _hands(self, inputs: Tensor, data_samples: SampleList) -> Dict:
        """Both hands in the original camera frame, ``(B, 2, ...)``."""
        b = inputs.shape[0]
        raw = self.head(self.extract_feat(inputs))
        meta = [ds.metainfo for ds in data_samples]
        dev, dt = inputs.device, raw['cam'].dtype
        cam_k = torch.stack([
            torch.as_tensor(m['handwise_cam_intrinsics'], dtype=dt)
            for m in meta
        ]).to(dev)
        rot_z = torch.stack([
            torch.as_tensor(m['handwise_rot_z'], dtype=dt) for m in meta
        ]).to(dev)
        w = inputs.shape[-1] // 2
        crop = self.head.decode(raw, cam_k.reshape(-1, 3, 3),
                                (w, inputs.shape[-2]))
        crop = {k: v.reshape((b, 2) + v.shape[1:]) for k, v in crop.items()}
        joints = handwise_points_to_camera(crop['joints_3d'], rot_z)
        verts = handwise_points_to_camera(crop['vertices'], rot_z)
        pose, transl = handwise_mano_to_camera(crop['mano_pose'],
                                               crop['mano_transl'],
                                               crop['mano_root_joint'],
                                               rot_z)
        emb = raw['embedding'].reshape(b, -1)
        wrists = joints[:, :, 0]  # each crop's own estimate
        rel = self.rel_branch(torch.cat([emb, wrists.reshape(b, 6)], -1))
        shift = (wrists[:, 0] + rel - wrists[:, 1])[:, None]
        joints = torch.stack([joints[:, 0], joints[:, 1] + shift], 1)
        verts = torch.stack([verts[:, 0], verts[:, 1] + shift], 1)
        transl = torch.stack([transl[:, 0], transl[:, 1] + shift[:, 0]], 1)
        return dict(
            joints_3d=joints,
            vertices=verts,
            mano_pose=pose,
            mano_betas=crop['mano_betas'],
            mano_transl=transl,
            crop_wrists=wrists,
            rel_transl=rel)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict:
        """L1 on root-relative joints, on each crop's wrist and on the
        relative translation (camera frame), and a betas prior."""
        out = self._hands(inputs, data_samples)
        gt = [ds.gt_hands for ds in data_samples]
        dev = inputs.device
        gj = torch.stack([g.joints_3d for g in gt]).to(dev)
        jv = torch.stack([g.joints_3d_valid for g in gt]).to(dev)
        hv = torch.stack([g.hand_valid for g in gt]).to(dev).float()
        jv = jv * hv[..., None]
        cfg = self.train_cfg
        pred_rel = out['joints_3d'] - out['joints_3d'][:, :, :1]
        gt_rel = gj - gj[:, :, :1]
        err = (pred_rel - gt_rel).abs().sum(-1)
        loss_joints = (err * jv).sum() / jv.sum().clamp(min=1.0)
        root_ok = hv * jv[:, :, 0]
        err_root = (out['crop_wrists'] - gj[:, :, 0]).abs().sum(-1)
        loss_root = (err_root * root_ok).sum() / root_ok.sum().clamp(min=1.0)
        both = root_ok[:, 0] * root_ok[:, 1]
        gt_rel_t = gj[:, 1, 0] - gj[:, 0, 0]
        err_rel = (out['rel_transl'] - gt_rel_t).abs().sum(-1)
        loss_rel = (err_rel * both).sum() / both.sum().clamp(min=1.0)
        loss_betas = out['mano_betas'].pow(2).mean()
        return dict(
            loss_joints=cfg.get('w_joints', 1.0) * loss_joints,
            loss_root=cfg.get('w_root', 1.0) * loss_root,
            loss_rel=cfg.get('w_rel', 1.0) * loss_rel,
            loss_betas=cfg.get('w_betas', 1e-3) * loss_betas)

    def predict(self,
                inputs: Tensor,
                data_samples: SampleList,
                refine: RefineMask = None) -> SampleList:
        """Both hands in the camera frame of ``cam_intrinsics`` (the
        original image's); ``joints_2d`` in its pixels (see
        :class:`BaseTwoHandReconstructor`)."""
        timer = StageTimer(inputs.device)
        mask = refine_mask(refine, len(inputs), self.refines)
        out = self._hands(inputs, data_samples)
        preds = []
        for i, ds in enumerate(data_samples):
            k = torch.as_tensor(
                ds.metainfo['cam_intrinsics'],
                dtype=out['joints_3d'].dtype).to(inputs.device)
            pred = InstanceData()
            pred.joints_3d = out['joints_3d'][i]
            pred.vertices = out['vertices'][i]
            pred.joints_2d = project_points(out['joints_3d'][i], k)
            pred.mano_pose = out['mano_pose'][i]
            pred.mano_betas = out['mano_betas'][i]
            pred.mano_transl = out['mano_transl'][i]
            pred.scores = torch.ones(2, device=inputs.device)
            pred.hand_valid = torch.ones(2, dtype=torch.bool,
                                         device=inputs.device)
            preds.append(pred)
        times = dict(reconstruction=timer.lap(None), refinement=None)
        idx = [] if mask is None else [i for i, m in enumerate(mask) if m]
        if mask is not None:
            times['refinement'] = 0.0
        if idx:
            stage1 = {
                i: (preds[i].joints_3d.clone(), preds[i].vertices.clone())
                for i in idx
            }
            chosen = [data_samples[i] for i in idx]
            set_input_noise_keys(inputs[idx], chosen)
            refined = self.refiner.refine([preds[i] for i in idx], chosen)
            for i, pred in zip(idx, refined):
                preds[i] = pred
                if 'unrefined_joints_3d' not in pred:
                    pred.unrefined_joints_3d = stage1[i][0]
                if 'unrefined_vertices' not in pred:
                    pred.unrefined_vertices = stage1[i][1]
            times['refinement'] = timer.lap(None)
        for ds, pred in zip(data_samples, preds):
            ds.pred_hands = pred
            ds.set_metainfo(dict(stage_times_ms=dict(times)))
        return data_samples

    def _forward(self,
                 inputs: Tensor,
                 data_samples: Optional[SampleList] = None) -> Dict:
        return self.head(self.extract_feat(inputs))

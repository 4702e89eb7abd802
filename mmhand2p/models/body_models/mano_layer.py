# Copyright (c) mmhand2p contributors. All rights reserved.
"""Both MANO hands in one module, on top of ``smplx.MANO``."""
import contextlib
import io
import logging
from typing import NamedTuple, Optional

import numpy as np
import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from mmhand2p.conventions import MANO_FINGERTIP_VERTEX_IDS, MANO_TO_HAND21
from mmhand2p.conventions import fix_left_shapedirs as _fix_left_shapedirs
from mmhand2p.conventions import load_mano_file, resolve_mano_path
from mmhand2p.geometry import cap_boundary_loops, signed_volume
from mmhand2p.registry import MODELS
from mmhand2p.utils.geometry import rot6d_to_axis_angle

__all__ = ['MANOLayer', 'MANOOutput']


class MANOOutput(NamedTuple):
    """Output of :class:`MANOLayer` (camera or world frame, metres).

    Attributes:
        vertices (Tensor): ``(B, 2, 778, 3)``, hand axis 0 = right, 1 = left.
        joints (Tensor): ``(B, 2, 21, 3)`` in the wrist-first order.
        joints_mano (Tensor): ``(B, 2, 16, 3)`` the regressed MANO joints in
            MANO's order (joint 0 is the root the global rotation turns about).
    """
    vertices: Tensor
    joints: Tensor
    joints_mano: Tensor


@MODELS.register_module()
class MANOLayer(nn.Module):
    """The MANO hand model for both hands at once.

    Wraps one ``smplx.MANO`` per hand (built from arrays loaded by
    :func:`load_mano_file`, so the released chumpy pickles load without
    chumpy) and exposes the conventions of mmhand2p: hand axis 0 = right,
    1 = left; 21 joints in the wrist-first order (16 regressed + the fingertip
    vertices 745/317/444/556/673); metres.

    Pose semantics: ``pose`` is axis-angle ``(B, 2, 16, 3)``, global
    orientation first. With ``flat_hand_mean=True`` (default) a zero finger
    pose is the flat hand; with ``flat_hand_mean=False`` the finger pose is
    relative to the model's ``hands_mean`` (smplx's default and the convention
    of InterHand2.6M's MANO annotations), so ``hands_mean`` is added. PCA
    coefficients always mean ``hands_mean + coeffs @ hands_components[:K]``.

    Args:
        model_path (str, optional): a folder with ``MANO_RIGHT`` /
            ``MANO_LEFT`` (``.npz`` or released ``.pkl``), or None for the
            bundled procedurally generated hand model (not the real MANO).
        flat_hand_mean (bool): see above. Defaults to True.
        num_betas (int): shape coefficients used (<= 10). Defaults to 10.
        fix_left_shapedirs (bool): negate ``shapedirs[:, 0, :]`` of the left
            model when it equals the right one (the released files' bug,
            smplx issue 48). Defaults to True.
        orient_faces (bool): make both hands' faces wind outwards (a flipped
            winding is detected from the signed volume of the rest mesh with
            its wrist capped). Defaults to True.
    """

    def __init__(self,
                 model_path: Optional[str] = None,
                 flat_hand_mean: bool = True,
                 num_betas: int = 10,
                 fix_left_shapedirs: bool = True,
                 orient_faces: bool = True) -> None:
        super().__init__()
        import smplx
        from smplx.utils import Struct

        self.model_path = model_path
        self.flat_hand_mean = flat_hand_mean
        self.num_betas = num_betas
        paths = [resolve_mano_path(model_path, is_rhand=s) for s in (1, 0)]
        data = [load_mano_file(p) for p in paths]
        self.paths = paths
        self.left_shapedirs_fixed = False
        if fix_left_shapedirs:
            data[1], self.left_shapedirs_fixed = _fix_left_shapedirs(
                data[1], data[0])
            if self.left_shapedirs_fixed:
                print_log(
                    f'MANOLayer: left shapedirs equal the right ones in '
                    f'{paths[1]}; negated shapedirs[:, 0, :] (smplx issue 48)',
                    logger='current', level=logging.INFO)

        faces, self.faces_flipped = [], []
        hands = []
        for side, d in enumerate(data):
            # smplx adds hands_mean itself unless flat_hand_mean; we always
            # pass flat-relative poses and add the mean ourselves.
            # smplx print()s a note about the 10 MANO shape coefficients on
            # every construction; keep the console clean
            with contextlib.redirect_stdout(io.StringIO()):
                hand = smplx.MANO(
                    model_path=paths[side],
                    is_rhand=side == 0,
                    data_struct=Struct(**d),
                    use_pca=False,
                    flat_hand_mean=True,
                    num_betas=num_betas,
                    create_hand_pose=False,
                    create_betas=False,
                    create_global_orient=False,
                    create_body_pose=False,
                    create_transl=False)
            hands.append(hand)
            f = np.asarray(d['f'], dtype=np.int64)
            flipped = False
            if orient_faces:
                try:
                    capped_v, capped_f = cap_boundary_loops(
                        d['v_template'], f)
                except ValueError as e:
                    print_log(
                        f'MANOLayer: cannot check the face orientation of '
                        f'{paths[side]} ({e}); faces kept as they are',
                        logger='current', level=logging.WARNING)
                else:
                    if signed_volume(capped_v, capped_f) < 0:
                        f = f[:, [0, 2, 1]]
                        flipped = True
            faces.append(f)
            self.faces_flipped.append(flipped)
        self.right, self.left = hands
        # The model arrays come from model_path, not from checkpoints: keep
        # them out of state_dict so that a checkpoint neither carries the
        # (licensed) MANO arrays nor overrides the configured model.
        for module in self.right.modules():
            module._non_persistent_buffers_set.update(module._buffers)
        for module in self.left.modules():
            module._non_persistent_buffers_set.update(module._buffers)
        if faces[0].shape != faces[1].shape:
            raise ValueError('MANOLayer: right and left models have different '
                             f'face counts ({paths[0]}, {paths[1]})')
        self.register_buffer(
            'faces', torch.as_tensor(np.stack(faces)), persistent=False)
        self.register_buffer(
            'hands_mean',
            torch.as_tensor(
                np.stack([np.asarray(d['hands_mean']) for d in data]),
                dtype=torch.float32).reshape(2, 15, 3),
            persistent=False)
        self.register_buffer(
            'hands_components',
            torch.as_tensor(
                np.stack([np.asarray(d['hands_components']) for d in data]),
                dtype=torch.float32),
            persistent=False)
        self.register_buffer(
            'fingertip_ids',
            torch.as_tensor(MANO_FINGERTIP_VERTEX_IDS),
            persistent=False)
        self.register_buffer(
            'joint_map', torch.as_tensor(MANO_TO_HAND21), persistent=False)
        self.num_vertices = int(data[0]['v_template'].shape[0])

    # ------------------------------------------------------------------
    def pca_to_pose(self, pose_pca: Tensor, global_orient: Tensor) -> Tensor:
        """PCA coefficients to a flat-relative axis-angle pose.

        Args:
            pose_pca (Tensor): ``(B, 2, K)`` coefficients, K <= 45.
            global_orient (Tensor): ``(B, 2, 3)``.

        Returns:
            Tensor: ``(B, 2, 16, 3)`` with ``hands_mean`` included.
        """
        k = pose_pca.shape[-1]
        fingers = torch.einsum('bhk,hkj->bhj', pose_pca,
                               self.hands_components[:, :k])
        fingers = fingers.reshape(*pose_pca.shape[:2], 15, 3) + self.hands_mean
        return torch.cat([global_orient[:, :, None], fingers], dim=2)

    def forward(self,
                pose: Optional[Tensor] = None,
                betas: Optional[Tensor] = None,
                transl: Optional[Tensor] = None,
                pose_6d: Optional[Tensor] = None,
                pose_pca: Optional[Tensor] = None,
                global_orient: Optional[Tensor] = None) -> MANOOutput:
        """Run MANO for both hands.

        Give exactly one of ``pose``, ``pose_6d`` or (``pose_pca`` and
        ``global_orient``).

        Args:
            pose (Tensor, optional): ``(B, 2, 16, 3)`` axis-angle.
            betas (Tensor, optional): ``(B, 2, num_betas)``; zeros if None.
            transl (Tensor, optional): ``(B, 2, 3)`` added to every output
                point (MANO's ``transl``: it does not move the rotation
                centre, which is the root joint of the shaped rest mesh).
            pose_6d (Tensor, optional): ``(B, 2, 16, 6)`` 6D rotations, with
                the same mean semantics as ``pose``.
            pose_pca (Tensor, optional): ``(B, 2, K)`` PCA coefficients.
            global_orient (Tensor, optional): ``(B, 2, 3)`` with ``pose_pca``.

        Returns:
            MANOOutput: vertices ``(B, 2, 778, 3)``, joints ``(B, 2, 21, 3)``,
            joints_mano ``(B, 2, 16, 3)``.
        """
        given = [x is not None for x in (pose, pose_6d, pose_pca)]
        if sum(given) != 1:
            raise ValueError('MANOLayer.forward takes exactly one of pose, '
                             'pose_6d or pose_pca')
        if pose_pca is not None:
            if global_orient is None:
                raise ValueError('MANOLayer: pose_pca needs global_orient')
            full = self.pca_to_pose(pose_pca, global_orient)
        else:
            if pose_6d is not None:
                _check_shape(pose_6d, (2, 16, 6), 'pose_6d')
                pose = rot6d_to_axis_angle(pose_6d)
            _check_shape(pose, (2, 16, 3), 'pose')
            full = pose
            if not self.flat_hand_mean:
                full = torch.cat(
                    [pose[:, :, :1], pose[:, :, 1:] + self.hands_mean], dim=2)
        batch = full.shape[0]
        dtype = self.right.shapedirs.dtype
        full = full.to(dtype)
        if betas is None:
            betas = full.new_zeros(batch, 2, self.num_betas)
        _check_shape(betas, (2, self.num_betas), 'betas')
        outs = []
        for side, model in enumerate((self.right, self.left)):
            out = model(
                betas=betas[:, side].to(dtype),
                global_orient=full[:, side, 0],
                hand_pose=full[:, side, 1:].reshape(batch, 45))
            outs.append(out)
        verts = torch.stack([o.vertices for o in outs], dim=1)
        joints16 = torch.stack([o.joints for o in outs], dim=1)
        if transl is not None:
            _check_shape(transl, (2, 3), 'transl')
            verts = verts + transl[:, :, None].to(dtype)
            joints16 = joints16 + transl[:, :, None].to(dtype)
        tips = verts[:, :, self.fingertip_ids]
        joints = torch.cat([joints16, tips], dim=2)[:, :, self.joint_map]
        return MANOOutput(vertices=verts, joints=joints, joints_mano=joints16)

    def extra_repr(self) -> str:
        return (f'model_path={self.model_path!r}, flat_hand_mean='
                f'{self.flat_hand_mean}, num_betas={self.num_betas}, '
                f'left_shapedirs_fixed={self.left_shapedirs_fixed}')


def _check_shape(x: Tensor, tail: tuple, name: str) -> None:
    if x.dim() != len(tail) + 1 or tuple(x.shape[1:]) != tuple(tail):
        raise ValueError(f'MANOLayer: {name} must have shape (B, '
                         f'{", ".join(map(str, tail))}), got '
                         f'{tuple(x.shape)}')

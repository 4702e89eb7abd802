# Copyright (c) mmhand2p contributors. All rights reserved.
"""A2P stage 2: the penetration-aware two-hand diffusion refiner."""
import logging
import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from torch import Tensor

from mmhand2p.registry import MODELS
from mmhand2p.utils.geometry import (axis_angle_to_rot6d, project_points,
                                     rot6d_to_axis_angle)
from mmhand2p.utils.typing import ConfigType, OptConfigType, OptSampleList
from .gating import TwoHandGate, boxes_from_points
from .sampler import GuidedDDIMSampler

__all__ = [
    'TwoHandParams', 'encode_two_hands', 'decode_two_hands', 'param_dims',
    'load_param_stats', 'TwoHandDiffusionRefiner'
]

_POSE_6D_DIMS = 16 * 6


def param_dims(num_betas: int = 10) -> int:
    """Length ``D`` of the two-hand parameter vector: ``2 (96 + num_betas)
    + 3`` (215 for 10 betas)."""
    return 2 * (_POSE_6D_DIMS + num_betas) + 3


def encode_two_hands(pose: Tensor, betas: Tensor, root: Tensor) -> Tensor:
    """Both hands as one vector (the diffusion model's sample space).

    Layout: ``[right: 16 x 6D pose (96), betas (K)], [left: same],
    [rel (3)]`` with ``rel = root_left - root_right`` (camera frame). Each
    hand's pose is in its own MANO model's space (the left one is not
    mirrored), global orientation first, flat-hand-relative.

    Args:
        pose (Tensor): ``(B, 2, 16, 3)`` axis-angle (hand 0 right, 1 left).
        betas (Tensor): ``(B, 2, K)``.
        root (Tensor): ``(B, 2, 3)`` wrist (MANO root joint) positions,
            metres.

    Returns:
        Tensor: ``(B, 2 (96 + K) + 3)``.
    """
    if pose.dim() != 4 or tuple(pose.shape[1:]) != (2, 16, 3):
        raise ValueError('encode_two_hands: pose must be (B, 2, 16, 3), got '
                         f'{tuple(pose.shape)}')
    bsz = pose.shape[0]
    rot = axis_angle_to_rot6d(pose).reshape(bsz, 2, _POSE_6D_DIMS)
    hands = torch.cat([rot, betas.to(rot.dtype)], dim=-1)
    rel = (root[:, 1] - root[:, 0]).to(rot.dtype)
    return torch.cat([hands.reshape(bsz, -1), rel], dim=-1)


class TwoHandParams(NamedTuple):
    """Decoded two-hand vector: ``pose_6d (B, 2, 16, 6)``, ``betas (B, 2,
    K)``, ``rel (B, 3)``."""
    pose_6d: Tensor
    betas: Tensor
    rel: Tensor


def decode_two_hands(x: Tensor, num_betas: int = 10) -> TwoHandParams:
    """Inverse of :func:`encode_two_hands` (6D left unnormalised).

    Args:
        x (Tensor): ``(B, D)``.
        num_betas (int): K.
    """
    bsz = x.shape[0]
    h = _POSE_6D_DIMS + num_betas
    if x.shape[-1] != param_dims(num_betas):
        raise ValueError(f'decode_two_hands: expected (B, '
                         f'{param_dims(num_betas)}), got {tuple(x.shape)}')
    hands = x[:, :2 * h].reshape(bsz, 2, h)
    return TwoHandParams(
        pose_6d=hands[..., :_POSE_6D_DIMS].reshape(bsz, 2, 16, 6),
        betas=hands[..., _POSE_6D_DIMS:],
        rel=x[:, 2 * h:])


def load_param_stats(files: Union[str, Sequence[str]]):
    """Mean and std of the encoded clean samples of pair files.

    The pair files of ``tools/misc/make_penetration_pairs.py`` store
    ``stats_count``, ``stats_sum`` and ``stats_sqsum`` (float64) of
    :func:`encode_two_hands` over their ground-truth hands; several files
    combine exactly.

    Returns:
        tuple: ``mean (D,)``, ``std (D,)`` float64 numpy arrays, count.
    """
    files = [files] if isinstance(files, str) else list(files)
    count, s1, s2 = 0, 0.0, 0.0
    for path in files:
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'normalisation statistics: pair file {path!r} does not '
                'exist (make it with tools/misc/make_penetration_pairs.py)')
        with np.load(path, allow_pickle=False) as z:
            missing = [
                k for k in ('stats_count', 'stats_sum', 'stats_sqsum')
                if k not in z.files
            ]
            if missing:
                raise KeyError(f'{path!r} has no {missing}: not a pair file '
                               'of make_penetration_pairs.py')
            count += int(z['stats_count'])
            s1 = s1 + z['stats_sum'].astype(np.float64)
            s2 = s2 + z['stats_sqsum'].astype(np.float64)
    if count < 2:
        raise ValueError(f'normalisation statistics need >= 2 samples, '
                         f'{files} hold {count}')
    mean = s1 / count
    var = np.maximum(s2 / count - mean**2, 0.0) * count / (count - 1)
    return mean, np.sqrt(var), count


@MODELS.register_module()
class TwoHandDiffusionRefiner(BaseModel):
    """Penetration-aware two-hand diffusion refiner (A2P stage 2,
    arXiv 2503.17788, Sec. 3.2).

    A conditional diffusion model over both hands' parameters
    (:func:`encode_two_hands`: 6D poses, shapes, relative translation;
    normalised with statistics of the training data kept as buffers, so they
    travel with the checkpoint), trained to map penetrating hands ``c`` to
    plausible ones ``X0`` with ``||X0 - D(X_t, t, c)||^2`` (x0 prediction,
    cosine schedule, 1000 steps). At test time it runs only on the samples
    the gate lets through (box IoU > 0 and a penetration check), with DDIM
    and collision-gradient guidance on every x0 estimate.

    The refiner is also a :class:`~mmengine.model.BaseModel`, so
    ``tools/train.py`` trains it on a pair dataset
    (``PenetrationPairsDataset``): ``forward(inputs, mode='loss')`` with
    ``inputs`` the collated pair tensors.

    Args:
        denoiser (dict): the denoiser, e.g. ``TwoHandDenoiser``.
        schedule (dict): the noise schedule. Defaults to the cosine one with
            1000 steps.
        body_model (dict): the ``MANOLayer`` (same model as the stage-1
            head's).
        sampler (dict): :class:`GuidedDDIMSampler` arguments: ``num_steps``,
            ``start_t``, ``init``, ``eta``, ``guidance_weight`` (lambda),
            ``guidance_iters``, ``guidance_last_steps``, ``max_update``.
        guidance_loss (dict, optional): the collision loss of the guidance
            (``HybridCollisionLoss`` with ``d_threshold``,
            ``angle_threshold``, ``rho``), None for no guidance.
        gate (dict): :class:`TwoHandGate` arguments (``iou_thr``,
            ``check``, ``collision``, ``min_pairs``, ``min_volume``).
        anchor (str): what stays fixed when the relative translation
            changes: ``'mean'`` (the midpoint of the two wrists, default) or
            ``'right'`` (the right wrist).
        stats_file (str | list, optional): pair file(s) with the
            normalisation statistics (needed to train; a trained checkpoint
            carries them).
        std_min (float): floor of the normalisation std. Defaults to 0.01.
        checkpoint (str, optional): a trained refiner checkpoint (its own,
            or a reconstructor's with ``refiner.`` keys) loaded here.
        frozen (bool): no gradients (a test-time refiner inside a
            reconstructor that is being trained). Defaults to False.
        keep_unrefined (bool): ``refine`` also stores the stage-1
            ``vertices`` / ``joints_3d`` as ``unrefined_vertices`` /
            ``unrefined_joints_3d`` (before/after comparisons).
        seed (int, optional): seed of the sampling noise (reproducible
            test results); None uses the global generator.
        loss_weight (float): weight of the diffusion loss.
        data_preprocessor (dict, optional): defaults to
            ``BaseDataPreprocessor`` (moves the pair tensors to the device).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 denoiser: ConfigType = dict(type='TwoHandDenoiser'),
                 schedule: ConfigType = dict(
                     type='CosineNoiseSchedule', num_timesteps=1000),
                 body_model: ConfigType = dict(type='MANOLayer'),
                 sampler: OptConfigType = None,
                 guidance_loss: OptConfigType = dict(
                     type='HybridCollisionLoss'),
                 gate: OptConfigType = None,
                 anchor: str = 'mean',
                 stats_file: Optional[Union[str, Sequence[str]]] = None,
                 std_min: float = 0.01,
                 checkpoint: Optional[str] = None,
                 frozen: bool = False,
                 keep_unrefined: bool = True,
                 seed: Optional[int] = 0,
                 loss_weight: float = 1.0,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if anchor not in ('mean', 'right'):
            raise ValueError("anchor must be 'mean' or 'right', got "
                             f'{anchor!r}')
        self.body_model = MODELS.build(body_model)
        self.num_betas = self.body_model.num_betas
        self.dims = param_dims(self.num_betas)
        denoiser = dict(denoiser)
        denoiser.setdefault('hand_dims', _POSE_6D_DIMS + self.num_betas)
        self.denoiser = MODELS.build(denoiser)
        if getattr(self.denoiser, 'in_dims', self.dims) != self.dims:
            raise ValueError(
                f'TwoHandDiffusionRefiner: the denoiser takes '
                f'{self.denoiser.in_dims} features but the body model '
                f'({self.num_betas} betas) gives {self.dims}')
        self.schedule = MODELS.build(schedule)
        self.sampler = GuidedDDIMSampler(**dict(sampler or {}))
        self.guidance_loss = (
            MODELS.build(guidance_loss) if guidance_loss is not None else None)
        self.gate = TwoHandGate(**dict(gate or {}))
        self.anchor = anchor
        self.std_min = std_min
        self.keep_unrefined = keep_unrefined
        self.seed = seed
        self.loss_weight = loss_weight
        self.register_buffer('x_mean', torch.zeros(self.dims))
        self.register_buffer('x_std', torch.ones(self.dims))
        self.register_buffer('stats_ready', torch.zeros((), dtype=torch.bool))
        self.stats_file = stats_file
        if stats_file is not None:
            files = [stats_file] if isinstance(stats_file,
                                               str) else list(stats_file)
            if all(osp.isfile(f) for f in files):
                mean, std, count = load_param_stats(files)
                self.set_stats(torch.as_tensor(mean), torch.as_tensor(std))
            else:
                print_log(
                    f'TwoHandDiffusionRefiner: stats_file {files} not found; '
                    'the statistics must come from a checkpoint',
                    logger='current',
                    level=logging.WARNING)
        if checkpoint is not None:
            self.load_refiner_checkpoint(checkpoint)
        if frozen:
            self.requires_grad_(False)
            self.eval()

    # ------------------------------------------------------------------
    # parameterisation and normalisation
    # ------------------------------------------------------------------
    def set_stats(self, mean: Tensor, std: Tensor) -> None:
        """Set the normalisation statistics (``(D,)`` each)."""
        mean = torch.as_tensor(mean, dtype=self.x_mean.dtype).reshape(-1)
        std = torch.as_tensor(std, dtype=self.x_std.dtype).reshape(-1)
        if mean.numel() != self.dims or std.numel() != self.dims:
            raise ValueError(f'statistics must have {self.dims} entries, got '
                             f'{mean.numel()} and {std.numel()}')
        self.x_mean.copy_(mean)
        self.x_std.copy_(std.clamp(min=self.std_min))
        self.stats_ready.fill_(True)

    def _check_stats(self) -> None:
        if not bool(self.stats_ready):
            raise RuntimeError(
                'TwoHandDiffusionRefiner has no normalisation statistics: '
                'give stats_file= (pair files of tools/misc/'
                'make_penetration_pairs.py) to train, or checkpoint= (a '
                'trained refiner) to refine')

    def encode(self, pose: Tensor, betas: Tensor, root: Tensor) -> Tensor:
        """:func:`encode_two_hands` (raw, not normalised)."""
        return encode_two_hands(pose, betas[..., :self.num_betas], root)

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.x_mean) / self.x_std

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.x_std + self.x_mean

    def hands_from_params(self,
                          x: Tensor,
                          anchor_roots: Optional[Tensor] = None
                          ) -> Dict[str, Tensor]:
        """MANO hands of raw parameter vectors.

        Args:
            x (Tensor): ``(B, D)`` raw (denormalised) parameters.
            anchor_roots (Tensor, optional): ``(B, 2, 3)`` the input wrists;
                the output wrists keep their midpoint (``anchor='mean'``) or
                the right one (``'right'``). None puts the right wrist at the
                origin (enough for collisions).

        Returns:
            dict: ``pose`` ``(B, 2, 16, 3)`` axis-angle, ``betas``,
            ``transl`` ``(B, 2, 3)``, ``root`` ``(B, 2, 3)``, ``vertices``
            ``(B, 2, V, 3)``, ``joints`` ``(B, 2, 21, 3)`` (metres).
        """
        p = decode_two_hands(x, self.num_betas)
        pose = rot6d_to_axis_angle(p.pose_6d)
        out = self.body_model(pose=pose, betas=p.betas)
        rel = p.rel.to(out.joints.dtype)
        if anchor_roots is None:
            right = torch.zeros_like(rel)
        elif self.anchor == 'mean':
            right = anchor_roots.to(rel).mean(1) - rel / 2
        else:
            right = anchor_roots[:, 0].to(rel)
        root = torch.stack([right, right + rel], dim=1)
        shift = root - out.joints[:, :, 0]
        return dict(
            pose=pose,
            betas=p.betas,
            transl=shift,
            root=root,
            vertices=out.vertices + shift[:, :, None],
            joints=out.joints + shift[:, :, None])

    # ------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------
    def _encode_inputs(self, inputs: Dict[str, Tensor], prefix: str) -> Tensor:
        try:
            pose, betas, root = (
                inputs[f'{prefix}_{k}'] for k in ('pose', 'betas', 'root'))
        except KeyError as e:
            raise KeyError(
                f'TwoHandDiffusionRefiner: inputs lack {e}; expected '
                f'{prefix}_pose (B, 2, 16, 3), {prefix}_betas (B, 2, 10), '
                f'{prefix}_root (B, 2, 3) (PenetrationPairsDataset)') from e
        return self.normalize(
            self.encode(pose.float(), betas.float(), root.float()))

    def loss(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """The diffusion loss ``mean ||X0 - D(X_t, t, c)||^2`` (normalised).

        Args:
            inputs (dict): ``x0_pose``, ``x0_betas``, ``x0_root``,
                ``c_pose``, ``c_betas``, ``c_root`` batched tensors.

        Returns:
            dict: ``loss_diffusion``.
        """
        self._check_stats()
        x0 = self._encode_inputs(inputs, 'x0')
        cond = self._encode_inputs(inputs, 'c')
        t = self.schedule.sample_timesteps(x0.shape[0], device=x0.device)
        x_t = self.schedule.q_sample(x0, t)
        pred = self.denoiser(x_t, t, cond)
        return dict(loss_diffusion=self.loss_weight * ((pred - x0)**2).mean())

    # ------------------------------------------------------------------
    # sampling
    # ------------------------------------------------------------------
    def guidance_fn(self, x0_norm: Tensor) -> Tensor:
        """Per-sample collision loss ``(B,)`` of normalised x0 estimates."""
        hands = self.hands_from_params(self.denormalize(x0_norm))
        res = self.guidance_loss.per_sample(hands['vertices'],
                                            self.body_model.faces)
        return self.guidance_loss.loss_weight * res.loss

    def _generator(self, device) -> Optional[torch.Generator]:
        if self.seed is None:
            return None
        gen = torch.Generator(device=device)
        gen.manual_seed(int(self.seed))
        return gen

    @torch.no_grad()
    def sample(self,
               cond: Tensor,
               generator: Optional[torch.Generator] = None,
               trajectory: Optional[list] = None) -> Tensor:
        """Refined raw parameters for raw conditions.

        Args:
            cond (Tensor): ``(B, D)`` raw parameters of the input hands.
            generator (torch.Generator, optional): sampling noise; defaults
                to one seeded with ``seed``.
            trajectory (list, optional): receives the normalised x0
                estimates of every step.

        Returns:
            Tensor: ``(B, D)`` raw parameters.
        """
        self._check_stats()
        if generator is None:
            generator = self._generator(cond.device)
        guidance = self.guidance_fn if self.guidance_loss is not None else None
        x0 = self.sampler.sample(
            self.denoiser,
            self.normalize(cond),
            self.schedule,
            guidance,
            generator,
            trajectory=trajectory)
        return self.denormalize(x0)

    def predict(self, inputs: Dict[str, Tensor]) -> List[InstanceData]:
        """Refine the conditions of a pair batch (no gating).

        Returns:
            list[InstanceData]: per sample ``mano_pose`` (2, 16, 3),
            ``mano_betas``, ``mano_transl``, ``joints_3d``, ``vertices``,
            anchored at the condition's wrists.
        """
        pose, betas, root = (
            inputs[f'c_{k}'].float() for k in ('pose', 'betas', 'root'))
        x0 = self.sample(self.encode(pose, betas, root))
        hands = self.hands_from_params(x0, root)
        return [
            InstanceData(
                mano_pose=hands['pose'][i],
                mano_betas=hands['betas'][i],
                mano_transl=hands['transl'][i],
                joints_3d=hands['joints'][i],
                vertices=hands['vertices'][i]) for i in range(len(x0))
        ]

    def forward(self,
                inputs: Dict[str, Tensor],
                data_samples: OptSampleList = None,
                mode: str = 'tensor'):
        """``mode='loss'``: :meth:`loss`; ``'predict'``: :meth:`predict`;
        ``'tensor'``: the denoiser's x0 estimate at a random timestep."""
        if mode == 'loss':
            return self.loss(inputs)
        if mode == 'predict':
            return self.predict(inputs)
        if mode == 'tensor':
            x0 = self._encode_inputs(inputs, 'x0')
            cond = self._encode_inputs(inputs, 'c')
            t = self.schedule.sample_timesteps(x0.shape[0], x0.device)
            return self.denoiser(self.schedule.q_sample(x0, t), t, cond)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got "
                         f'{mode!r}')

    # ------------------------------------------------------------------
    # test-time refinement of a reconstructor's predictions
    # ------------------------------------------------------------------
    @torch.no_grad()
    def refine(self, preds: List[InstanceData],
               data_samples: Sequence) -> List[InstanceData]:
        """Refine the gated samples of a batch of stage-1 predictions.

        Args:
            preds (list[InstanceData]): per sample (2 instances: right,
                left) ``mano_pose`` (2, 16, 3), ``mano_betas`` (2, K),
                ``vertices`` (2, V, 3), ``joints_3d`` (2, 21, 3) and
                optionally ``joints_2d`` (2, 21, 2), camera frame of the
                network input, metres (``TwoHandMANOHead.predict``).
            data_samples (list): the batch's data samples; their metainfo
                ``cam_intrinsics`` (3, 3) (of the network input) projects
                the hands for the box gate and the refined ``joints_2d``.

        Returns:
            list[InstanceData]: ``preds`` itself; refined samples get new
            ``mano_pose``, ``mano_betas``, ``mano_transl``, ``vertices``,
            ``joints_3d``, ``joints_2d``; every sample gets the metainfo
            ``refined`` (bool) and, with ``keep_unrefined``,
            ``unrefined_vertices`` / ``unrefined_joints_3d``.
        """
        if len(preds) == 0:
            return preds
        device = self.x_mean.device

        def stack(name: str) -> Tensor:
            missing = [i for i, p in enumerate(preds) if name not in p]
            if missing:
                raise KeyError(f'TwoHandDiffusionRefiner.refine: predictions '
                               f'{missing} have no {name!r}')
            return torch.stack([torch.as_tensor(p.get(name))
                                for p in preds]).to(device).float()

        pose, betas = stack('mano_pose'), stack('mano_betas')
        vertices, joints = stack('vertices'), stack('joints_3d')
        k = []
        for i, ds in enumerate(data_samples):
            intr = ds.metainfo.get('cam_intrinsics') if hasattr(
                ds, 'metainfo') else None
            if intr is None:
                raise KeyError(f'TwoHandDiffusionRefiner.refine: data sample '
                               f'{i} has no metainfo "cam_intrinsics" (3, 3) '
                               'of the network input (set by '
                               'TwoHandCropAffine / PackTwoHandInputs)')
            k.append(torch.as_tensor(np.asarray(intr), dtype=torch.float32))
        k = torch.stack(k).to(device)
        boxes = boxes_from_points(project_points(vertices, k[:, None]))
        mask, _ = self.gate(vertices, self.body_model.faces, boxes)
        for p in preds:
            p.set_metainfo(dict(refined=False))
            if self.keep_unrefined:
                p.unrefined_vertices = p.vertices
                p.unrefined_joints_3d = p.joints_3d
        idx = mask.nonzero(as_tuple=True)[0]
        if len(idx) == 0:
            return preds
        roots = joints[idx, :, 0]
        x0 = self.sample(self.encode(pose[idx], betas[idx], roots))
        hands = self.hands_from_params(x0, roots)
        uv = project_points(hands['joints'], k[idx, None])
        new = dict(
            mano_pose=hands['pose'],
            mano_betas=hands['betas'],
            mano_transl=hands['transl'],
            vertices=hands['vertices'],
            joints_3d=hands['joints'],
            joints_2d=uv)
        for n, i in enumerate(idx.tolist()):
            p = preds[i]
            for name, value in new.items():
                if name not in p and name in ('joints_2d', 'mano_transl'):
                    continue
                old = p.get(name) if name in p else None
                v = value[n]
                if isinstance(old, Tensor):
                    v = v.to(device=old.device, dtype=old.dtype)
                    if name == 'mano_betas' and old.shape[-1] > v.shape[-1]:
                        v = torch.cat([v, old[:, v.shape[-1]:]], dim=-1)
                p.set_field(v, name)
            p.set_metainfo(dict(refined=True))
        return preds

    # ------------------------------------------------------------------
    def load_refiner_checkpoint(self, path: str) -> None:
        """Load a trained refiner (its own checkpoint, or a reconstructor's
        whose keys start with ``refiner.``)."""
        from mmengine.runner.checkpoint import _load_checkpoint

        from mmhand2p.engine.checkpoint import \
            register_checkpoint_safe_globals
        register_checkpoint_safe_globals()
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'TwoHandDiffusionRefiner: checkpoint {path!r} does not '
                'exist (train one with tools/train.py configs/diffusion/...)')
        ckpt = _load_checkpoint(path, map_location='cpu')
        state = ckpt.get('state_dict', ckpt)
        if any(key.startswith('refiner.') for key in state):
            state = {
                key[len('refiner.'):]: v
                for key, v in state.items() if key.startswith('refiner.')
            }
        state = {
            k: v
            for k, v in state.items() if not k.startswith('data_preprocessor.')
        }
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise RuntimeError(f'TwoHandDiffusionRefiner: {path!r} does not '
                               f'match this refiner config: {e}') from e
        if not bool(self.stats_ready):
            raise RuntimeError(f'TwoHandDiffusionRefiner: {path!r} carries '
                               'no normalisation statistics')
        self._is_init = True

# Copyright (c) mmhand2p contributors. All rights reserved.
"""A2P stage 2: the penetration-aware two-hand diffusion refiner."""
import hashlib
import logging
import math
import os.path as osp
from typing import (Any, Dict, List, Mapping, NamedTuple, Optional, Sequence,
                    Union)

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
    'load_param_stats', 'NOISE_IDENTITY_KEYS', 'CONDITION_KEY_GRID',
    'sample_seed', 'noise_key_from_metainfo', 'content_noise_key',
    'condition_noise_keys', 'TwoHandDiffusionRefiner'
]

_POSE_6D_DIMS = 16 * 6

#: metainfo keys that name a sample, in this order, for its sampling noise.
#: ``sample_idx`` is left out on purpose: it is a position in a (filtered,
#: subset) dataset, so it would tie the noise to the dataset's composition.
NOISE_IDENTITY_KEYS = ('img_path', 'img_id', 'frame_idx')
#: grid (in units of the training std) of the normalised condition when the
#: condition itself names the sample (see :func:`condition_noise_keys`)
CONDITION_KEY_GRID = 1e-3


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


# ----------------------------------------------------------------------
# per-sample sampling noise: a seed from the refiner's seed and the
# sample's identity, so a sample's result does not depend on its batch
# ----------------------------------------------------------------------
def sample_seed(seed: int, key: str) -> int:
    """64-bit seed of one sample's generator.

    The first 8 bytes (little-endian) of ``sha256(f'{seed}\\0{key}')``:
    the same in every process and on every machine (Python's ``hash`` of a
    string is salted per process).

    Args:
        seed (int): the refiner's fixed seed.
        key (str): the sample's identity (:func:`noise_key_from_metainfo`,
            :func:`content_noise_key`, :func:`condition_noise_keys`).

    Returns:
        int: in ``[0, 2^64)``.
    """
    digest = hashlib.sha256(f'{int(seed)}\0{key}'.encode('utf-8')).digest()
    return int.from_bytes(digest[:8], 'little')


def _plain(value: Any) -> Any:
    """Numpy / torch scalars as Python numbers (``np.int64(5)`` -> 5)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, Tensor)) and value.ndim == 0:
        return value.item()
    return value


def noise_key_from_metainfo(metainfo: Mapping) -> Optional[str]:
    """A sample's identity from its data sample's metainfo.

    ``noise_key`` when present (set by the reconstructors, e.g.
    ``DetectThenReconstruct``: the image's content and the pair's index);
    otherwise the :data:`NOISE_IDENTITY_KEYS` present, as ``'img_path=a.jpg|
    img_id=5|frame_idx=2'``; None when there are none.

    Args:
        metainfo (Mapping): e.g. ``data_sample.metainfo``.

    Returns:
        str | None
    """
    key = metainfo.get('noise_key')
    if key is not None:
        return str(key)
    parts = [
        f'{name}={_plain(metainfo[name])}' for name in NOISE_IDENTITY_KEYS
        if metainfo.get(name) is not None
    ]
    return '|'.join(parts) if parts else None


def content_noise_key(x: Union[Tensor, np.ndarray],
                      max_elements: int = 1 << 22) -> str:
    """A sample's identity from the content of an array (an image, a
    network input).

    The SHA-256 of its shape, dtype and values (in C order, whatever the
    memory layout). Above ``max_elements`` values the last two axes are
    subsampled with the smallest stride ``s`` that fits (``x[..., ::s,
    ::s]``, e.g. every 6th row and column of an 8000 x 6000 photo), which
    bounds the cost; equal arrays still give equal keys.

    Args:
        x (Tensor | np.ndarray): any shape and device.
        max_elements (int): values hashed at most (about).

    Returns:
        str: ``'content:<hex>'``.
    """
    t = torch.as_tensor(x).detach()
    if t.dtype == torch.bfloat16:  # no numpy dtype
        t = t.float()
    shape = tuple(t.shape)
    step = 1
    if t.dim() >= 2 and t.numel() > max_elements:
        step = math.ceil(math.sqrt(t.numel() / max_elements))
        t = t[..., ::step, ::step]
    arr = np.ascontiguousarray(t.cpu().numpy())
    h = hashlib.sha256(f'{shape}|{arr.dtype.str}|{step}|'.encode('utf-8'))
    h.update(arr.data)
    return f'content:{h.hexdigest()}'


def condition_noise_keys(cond_norm: Tensor,
                         grid: float = CONDITION_KEY_GRID) -> List[str]:
    """Identities of samples that have no name: their normalised
    conditions on a grid.

    Each row is rounded to multiples of ``grid`` (in units of the training
    std), and the SHA-256 of the integers is the key. The rounding keeps the
    key (and so the noise) when the condition changes in its last bits,
    e.g. because a batched stage-1 network rounds differently; it cannot
    guarantee it (a value next to a grid boundary can still cross it, with
    a probability of about ``D * |change| / grid`` per sample), which is
    why a name (``img_path``, ``noise_key``) comes first. Different
    samples that round alike share their noise, which is harmless: each
    one's noise is still standard normal.

    Args:
        cond_norm (Tensor): ``(B, D)`` normalised conditions.
        grid (float): the rounding step.

    Returns:
        list[str]: B keys ``'condition:<hex>'``.
    """
    q = torch.nan_to_num(
        cond_norm.detach().double().cpu() / grid,
        nan=0.0,
        posinf=1e15,
        neginf=-1e15).round().clamp(-1e15, 1e15).long().numpy().astype('<i8')
    return [
        'condition:' + hashlib.sha256(row.tobytes()).hexdigest() for row in q
    ]


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
        seed (int, optional): seed of the sampling noise. Each sample draws
            its noise from its own generator, seeded with
            :func:`sample_seed` of ``seed`` and the sample's identity (see
            :meth:`refine`), so a sample's result does not depend on the
            batch it is in (its composition, order, size, or the number of
            devices). None uses the global generator for the whole batch
            (not reproducible across batchings).
        batch_invariant (bool): refine (gate, sample, decode) one sample at
            a time, so that a sample's result is the same, bit for bit, in
            any batch (on the CPU). Batched float arithmetic rounds
            differently for different batches (in the last bits), and the
            collision guidance, whose pair selection is discontinuous, can
            amplify such differences to millimetres (3 of 16 random
            penetrating scenes, up to 9 mm: ``docs/diffusion_refiner.md``);
            the reconstructors then run stage 1 one sample at a time too.
            Defaults to True; False refines the gated samples as one batch
            (about 4x faster for 16 samples on one CPU thread).
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
                 batch_invariant: bool = True,
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
        self.batch_invariant = bool(batch_invariant)
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

    def sample_generators(self, keys: Sequence[str]) -> List[torch.Generator]:
        """One CPU generator per sample, seeded with :func:`sample_seed` of
        ``seed`` and the sample's key.

        The noise is drawn on the CPU and moved to the model's device, so it
        is the same on every device.
        """
        if self.seed is None:
            raise ValueError('TwoHandDiffusionRefiner.sample_generators: '
                             'seed is None (the global generator is used)')
        gens = []
        for key in keys:
            gen = torch.Generator()
            gen.manual_seed(sample_seed(self.seed, key))
            gens.append(gen)
        return gens

    @torch.no_grad()
    def sample(self,
               cond: Tensor,
               generator: Optional[Union[torch.Generator,
                                         Sequence[torch.Generator]]] = None,
               trajectory: Optional[list] = None,
               keys: Optional[Sequence[Optional[str]]] = None) -> Tensor:
        """Refined raw parameters for raw conditions.

        The denoiser runs in eval mode (no dropout) whatever the module's
        mode. With ``batch_invariant`` each sample is sampled by itself.

        Args:
            cond (Tensor): ``(B, D)`` raw parameters of the input hands.
            generator (torch.Generator | list, optional): the sampling noise,
                given explicitly: one generator for the whole batch (its
                ``(B, D)`` draws depend on the batch) or B generators, one
                per sample. By default, with a ``seed``, one generator per
                sample from ``keys``.
            trajectory (list, optional): receives the normalised x0
                estimates of every step.
            keys (list, optional): B sample identities (strings; None
                entries, or no list, fall back to
                :func:`condition_noise_keys` of the normalised condition).

        Returns:
            Tensor: ``(B, D)`` raw parameters.
        """
        self._check_stats()
        cond_norm = self.normalize(cond)
        if generator is not None and not isinstance(generator,
                                                    torch.Generator):
            generator = list(generator)
        if generator is None and self.seed is not None:
            keys = [None] * len(cond) if keys is None else list(keys)
            if len(keys) != len(cond):
                raise ValueError(f'TwoHandDiffusionRefiner.sample: '
                                 f'{len(keys)} keys for {len(cond)} samples')
            if any(k is None for k in keys):
                fallback = condition_noise_keys(cond_norm)
                keys = [
                    fb if k is None else k for k, fb in zip(keys, fallback)
                ]
            generator = self.sample_generators(keys)
        guidance = self.guidance_fn if self.guidance_loss is not None else None

        def run(c, gen, traj):
            return self.sampler.sample(
                self.denoiser,
                c,
                self.schedule,
                guidance,
                gen,
                trajectory=traj)

        was_training = self.denoiser.training
        self.denoiser.eval()
        try:
            if self.batch_invariant and len(cond_norm) > 1:
                outs, trajs = [], []
                for i in range(len(cond_norm)):
                    gen = generator[i:i + 1] if isinstance(generator,
                                                           list) else generator
                    trajs.append([] if trajectory is not None else None)
                    outs.append(run(cond_norm[i:i + 1], gen, trajs[-1]))
                x0 = torch.cat(outs)
                if trajectory is not None:
                    trajectory.extend(torch.cat(step) for step in zip(*trajs))
            else:
                x0 = run(cond_norm, generator, trajectory)
        finally:
            self.denoiser.train(was_training)
        return self.denormalize(x0)

    def predict(self, inputs: Dict[str, Tensor]) -> List[InstanceData]:
        """Refine the conditions of a pair batch (no gating). Each pair's
        noise is keyed by its condition (:func:`condition_noise_keys`).

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
        """Refine the gated samples of a batch of stage-1 predictions (one
        sample at a time with ``batch_invariant``).

        Args:
            preds (list[InstanceData]): per sample (2 instances: right,
                left) ``mano_pose`` (2, 16, 3), ``mano_betas`` (2, K),
                ``vertices`` (2, V, 3), ``joints_3d`` (2, 21, 3) and
                optionally ``joints_2d`` (2, 21, 2), camera frame of the
                network input, metres (``TwoHandMANOHead.predict``).
            data_samples (list): the batch's data samples; their metainfo
                ``cam_intrinsics`` (3, 3) (of the network input) projects
                the hands for the box gate and the refined ``joints_2d``,
                and names the sample for its sampling noise
                (:func:`noise_key_from_metainfo`: ``noise_key``, else
                ``img_path`` / ``img_id`` / ``frame_idx``, else the
                condition's content, :func:`condition_noise_keys`).

        Returns:
            list[InstanceData]: ``preds`` itself; refined samples get new
            ``mano_pose``, ``mano_betas``, ``mano_transl``, ``vertices``,
            ``joints_3d``, ``joints_2d``; every sample gets the metainfo
            ``refined`` (bool) and, with ``keep_unrefined``,
            ``unrefined_vertices`` / ``unrefined_joints_3d``.
        """
        if self.batch_invariant and len(preds) > 1:
            samples = list(data_samples)
            for i in range(len(preds)):
                self._refine(preds[i:i + 1], samples[i:i + 1])
            return preds
        return self._refine(preds, data_samples)

    def _refine(self, preds: List[InstanceData],
                data_samples: Sequence) -> List[InstanceData]:
        """:meth:`refine` of one batch."""
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
        keys = [
            noise_key_from_metainfo(data_samples[i].metainfo) if hasattr(
                data_samples[i], 'metainfo') else None for i in idx.tolist()
        ]
        roots = joints[idx, :, 0]
        x0 = self.sample(self.encode(pose[idx], betas[idx], roots), keys=keys)
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
        whose keys start with ``refiner.``), through the package's strict
        loader (:func:`mmhand2p.utils.checkpoint.load_state_dict_strict`;
        unused weights are refused too)."""
        from mmhand2p.utils.checkpoint import (CheckpointError,
                                               load_state_dict_strict,
                                               read_state_dict, strip_prefix)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'TwoHandDiffusionRefiner: checkpoint {path!r} does not '
                'exist (train one with tools/train.py configs/diffusion/...)')
        state = strip_prefix(
            read_state_dict(path, 'TwoHandDiffusionRefiner: checkpoint'),
            'refiner.')
        state = {
            k: v
            for k, v in state.items() if not k.startswith('data_preprocessor.')
        }
        try:
            unexpected = load_state_dict_strict(self, state, path, 'refiner')
        except CheckpointError as e:
            raise CheckpointError(f'TwoHandDiffusionRefiner: {e}') from e
        if unexpected:
            raise CheckpointError(
                f'TwoHandDiffusionRefiner: {path!r} does not match this '
                f'refiner config: {len(unexpected)} unexpected weight(s), '
                f'e.g. {unexpected[:5]}')
        if not bool(self.stats_ready):
            raise RuntimeError(f'TwoHandDiffusionRefiner: {path!r} carries '
                               'no normalisation statistics')
        self._is_init = True

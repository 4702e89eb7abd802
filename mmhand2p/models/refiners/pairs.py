# Copyright (c) mmhand2p contributors. All rights reserved.
"""Training pairs of the diffusion refiner: (penetrating hands ``c``,
plausible hands ``X0``), as written by
``tools/misc/make_penetration_pairs.py``.

File format (one ``.npz``, arrays over N pairs; camera frame, metres, each
hand in its own MANO model's space, flat-hand-relative; hand axis 0 = right,
1 = left)::

    x0_pose  (N, 2, 16, 3) float32   ground truth, axis-angle
    x0_betas (N, 2, 10)    float32
    x0_root  (N, 2, 3)     float32   wrist (MANO root joint) positions
    c_pose, c_betas, c_root           the penetrating condition, same shapes
    kind     (N,) uint8               0 = noise-until-penetration,
                                      1 = weak-estimator output
    level    (N,) int16               noise level that made it penetrate
                                      (-1 for estimator pairs)
    c_volume (N,) float32             PenVol of the condition, cm^3
    x0_volume (N,) float32            PenVol of the ground truth, cm^3
    source_index (N,) int64           index in the source dataset
    stats_count (), stats_sum (D,), stats_sqsum (D,) float64
                                      sums of encode_two_hands(X0) for the
                                      refiner's normalisation
    meta (str)                        JSON: source, tool arguments, schedule
"""
import json
import math
import os
import os.path as osp
import tempfile
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from torch.utils.data import Dataset

from mmhand2p.registry import DATASETS, METRICS
from mmhand2p.utils.geometry import (axis_angle_to_matrix,
                                     matrix_to_axis_angle, mirror_axis_angle,
                                     mirror_points)

__all__ = [
    'PAIR_KINDS', 'PAIR_FIELDS', 'save_pairs', 'load_pairs',
    'PenetrationPairsDataset', 'RefinerPairMetric'
]

PAIR_KINDS = ('noise', 'estimator')
PAIR_FIELDS = ('x0_pose', 'x0_betas', 'x0_root', 'c_pose', 'c_betas', 'c_root')
_SHAPES = dict(pose=(2, 16, 3), betas=(2, 10), root=(2, 3))


def save_pairs(path: str, arrays: Dict[str, np.ndarray], meta: dict) -> None:
    """Write a pair file atomically, with the normalisation sums.

    Args:
        path (str): ``.npz`` output.
        arrays (dict): :data:`PAIR_FIELDS` plus ``kind``, ``level``,
            ``c_volume``, ``x0_volume``, ``source_index``.
        meta (dict): JSON-serialisable description.
    """
    from .two_hand_diffusion import encode_two_hands
    n = len(arrays['x0_pose'])
    for key in PAIR_FIELDS:
        shape = _SHAPES[key.split('_', 1)[1]]
        a = np.asarray(arrays[key])
        if a.shape != (n, ) + shape:
            raise ValueError(f'save_pairs: {key} must be {(n, ) + shape}, '
                             f'got {a.shape}')
    if n:
        x = encode_two_hands(
            torch.as_tensor(arrays['x0_pose'], dtype=torch.float64),
            torch.as_tensor(arrays['x0_betas'], dtype=torch.float64),
            torch.as_tensor(arrays['x0_root'], dtype=torch.float64)).numpy()
    else:
        x = np.zeros((0, 2 * (96 + 10) + 3))
    out = {k: np.asarray(v) for k, v in arrays.items()}
    out.update(
        stats_count=np.asarray(n, dtype=np.int64),
        stats_sum=x.sum(0),
        stats_sqsum=(x * x).sum(0),
        meta=np.asarray(json.dumps(meta)))
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.npz', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            np.savez(f, **out)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def load_pairs(path: str) -> Dict[str, np.ndarray]:
    """Read a pair file (``meta`` decoded to a dict)."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'pair file {path!r} does not exist: make it with '
            'tools/misc/make_penetration_pairs.py (docs/diffusion_refiner.md)')
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in PAIR_FIELDS + ('kind', ) if k not in z.files]
        if missing:
            raise KeyError(f'{path!r} is not a pair file: {missing} missing')
        out = {k: z[k] for k in z.files}
    out['meta'] = json.loads(str(out['meta'])) if 'meta' in out else {}
    return out


@DATASETS.register_module()
class PenetrationPairsDataset(Dataset):
    """Pairs (penetrating ``c``, plausible ``X0``) for the diffusion refiner.

    Each item is ``dict(inputs=dict(x0_pose, x0_betas, x0_root, c_pose,
    c_betas, c_root))`` (float32 tensors, see the module docstring); batch
    them with ``collate_fn=dict(type='default_collate')``.

    Augmentations (both hands of ``X0`` and ``c`` alike, so the pair stays a
    pair): the whole two-hand scene mirrored through the camera's ``x = 0``
    plane with the hands swapped (``mirror_prob``; exact, the left MANO
    model being the mirror of the right one), and rotated about the optical
    axis (``rotate_range`` degrees; every hand turns about the camera
    centre: ``R_g -> R R_g``, ``root -> R root``).

    Args:
        ann_file (str | list[str]): pair file(s), relative to ``data_root``.
        data_root (str): prefix of relative paths.
        kinds (sequence, optional): keep these kinds (``'noise'``,
            ``'estimator'``); None keeps all.
        mirror_prob (float): probability of the mirror. Defaults to 0.
        rotate_range (float): half-range of the roll, degrees. Default 0.
        max_samples (int, optional): keep the first N pairs.
        test_mode (bool): no augmentation.
    """

    METAINFO = dict(
        dataset_name='penetration_pairs', hand_axis=('right', 'left'))

    def __init__(self,
                 ann_file: Union[str, Sequence[str]],
                 data_root: str = '',
                 kinds: Optional[Sequence[str]] = None,
                 mirror_prob: float = 0.0,
                 rotate_range: float = 0.0,
                 max_samples: Optional[int] = None,
                 test_mode: bool = False) -> None:
        files = [ann_file] if isinstance(ann_file, str) else list(ann_file)
        files = [f if osp.isabs(f) else osp.join(data_root, f) for f in files]
        if kinds is not None:
            bad = [k for k in kinds if k not in PAIR_KINDS]
            if bad:
                raise ValueError(f'kinds must be among {PAIR_KINDS}, got '
                                 f'{bad}')
        self.files = files
        self.mirror_prob = float(mirror_prob)
        self.rotate_range = float(rotate_range)
        self.test_mode = test_mode
        parts = {k: [] for k in PAIR_FIELDS + ('kind', )}
        for path in files:
            data = load_pairs(path)
            keep = np.ones(len(data['kind']), dtype=bool)
            if kinds is not None:
                keep = np.isin(data['kind'],
                               [PAIR_KINDS.index(k) for k in kinds])
            for k in parts:
                parts[k].append(np.asarray(data[k])[keep])
        self.data = {
            k:
            np.concatenate(v).astype(np.float32 if k != 'kind' else np.uint8)
            for k, v in parts.items()
        }
        if max_samples is not None:
            self.data = {k: v[:max_samples] for k, v in self.data.items()}
        if len(self) == 0:
            raise ValueError(f'PenetrationPairsDataset: no pairs in {files} '
                             f'(kinds={kinds})')

    @property
    def metainfo(self) -> dict:
        return dict(self.METAINFO, files=self.files)

    def __len__(self) -> int:
        return len(self.data['kind'])

    def __getitem__(self, idx: int) -> dict:
        item = {
            k: torch.from_numpy(self.data[k][idx].copy())
            for k in PAIR_FIELDS
        }
        if not self.test_mode:
            if self.mirror_prob > 0 and np.random.rand() < self.mirror_prob:
                item = self.mirror(item)
            if self.rotate_range > 0:
                angle = math.radians(
                    np.random.uniform(-self.rotate_range, self.rotate_range))
                item = self.roll(item, angle)
        return dict(inputs=item)

    @staticmethod
    def mirror(item: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Mirror the scene through ``x = 0`` and swap the hands."""
        out = dict(item)
        for p in ('x0', 'c'):
            out[f'{p}_pose'] = mirror_axis_angle(item[f'{p}_pose'].flip(0))
            out[f'{p}_betas'] = item[f'{p}_betas'].flip(0)
            out[f'{p}_root'] = mirror_points(item[f'{p}_root'].flip(0))
        return out

    @staticmethod
    def roll(item: Dict[str, torch.Tensor],
             angle: float) -> Dict[str, torch.Tensor]:
        """Rotate the scene by ``angle`` radians about the optical axis."""
        c, s = math.cos(angle), math.sin(angle)
        rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        out = dict(item)
        for p in ('x0', 'c'):
            pose = item[f'{p}_pose'].clone()
            glob = rot @ axis_angle_to_matrix(pose[:, 0])
            pose[:, 0] = matrix_to_axis_angle(glob)
            out[f'{p}_pose'] = pose
            out[f'{p}_root'] = item[f'{p}_root'] @ rot.T
        return out


@METRICS.register_module()
class RefinerPairMetric(BaseMetric):
    """How the refiner changes held-out pairs: errors against ``X0`` and
    penetration, of the condition (input) and of the refined hands.

    Reported (``cond`` = the penetrating input, ``refined`` = the output):
    ``MPJPE_*`` (mm, 21 joints of both hands, each relative to its wrist),
    ``MRRPE_*`` (mm, error of the left-minus-right wrist offset),
    ``PenVol_*`` (cm^3, mean exact intersection volume, capped meshes,
    manifold3d; also ``PenVol_gt``) and ``PenRatio_*`` (fraction of pairs
    with PenVol above ``volume_threshold``). The hands are kept per batch and
    measured in :meth:`compute_metrics`, so the test loop's iteration time is
    the refiner's.

    Args:
        mano_model_path (str, optional): MANO folder (the refiner's); None
            for the bundled model.
        volume_threshold (float): cm^3. Defaults to 1e-3.
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str, optional): default ``'refiner'``.
    """
    default_prefix = 'refiner'

    def __init__(self,
                 mano_model_path: Optional[str] = None,
                 volume_threshold: float = 1e-3,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.mano_model_path = mano_model_path
        self.volume_threshold = volume_threshold
        self._layer = None

    def process(self, data_batch, data_samples) -> None:
        inputs = data_batch['inputs']
        for i, pred in enumerate(data_samples):
            self.results.append(
                dict(
                    # InstanceData, or the dict the Evaluator makes of it
                    refined=(torch.as_tensor(pred['mano_pose']).cpu(),
                             torch.as_tensor(pred['mano_betas']).cpu(),
                             torch.as_tensor(pred['joints_3d'])[:, 0].cpu()),
                    cond=tuple(inputs[f'c_{k}'][i].detach().cpu()
                               for k in ('pose', 'betas', 'root')),
                    gt=tuple(inputs[f'x0_{k}'][i].detach().cpu()
                             for k in ('pose', 'betas', 'root'))))

    def _hands(self, params):
        if self._layer is None:
            from mmhand2p.models.body_models import MANOLayer
            self._layer = MANOLayer(self.mano_model_path)
        pose, betas, root = (
            torch.stack([p[k] for p in params]).float() for k in range(3))
        with torch.no_grad():
            out = self._layer(pose=pose, betas=betas[..., :10])
        shift = root - out.joints[:, :, 0]
        return out.vertices + shift[:, :, None], out.joints + shift[:, :, None]

    def compute_metrics(self, results: list) -> dict:
        from mmhand2p.evaluation.functional.penetration import (
            closed_hand_faces, penetration_volume)
        hands = {
            k: self._hands([r[k] for r in results])
            for k in ('cond', 'refined', 'gt')
        }
        faces = self._layer.faces.cpu().numpy()
        closed = [closed_hand_faces(faces[h]) for h in range(2)]

        def penvol(v):
            v = v.double().numpy()
            caps = [
                np.concatenate([v[:, h]] + [
                    v[:, h][:, loop].mean(1, keepdims=True)
                    for loop in closed[h][1]
                ], 1) for h in range(2)
            ]
            return penetration_volume(caps[0], closed[0][0], caps[1],
                                      closed[1][0])[0] * 1e6

        gt_j = hands['gt'][1]
        gt_rel = gt_j - gt_j[:, :, :1]
        metrics = dict(PenVol_gt=float(penvol(hands['gt'][0]).mean()))
        for k in ('cond', 'refined'):
            v, j = hands[k]
            metrics[f'MPJPE_{k}'] = float(
                ((j - j[:, :, :1]) - gt_rel).norm(dim=-1).mean() * 1000)
            rel = j[:, 1, 0] - j[:, 0, 0]
            metrics[f'MRRPE_{k}'] = float(
                (rel -
                 (gt_j[:, 1, 0] - gt_j[:, 0, 0])).norm(dim=-1).mean() * 1000)
            vol = penvol(v)
            metrics[f'PenVol_{k}'] = float(vol.mean())
            metrics[f'PenRatio_{k}'] = float((vol
                                              > self.volume_threshold).mean())
        return metrics

# Copyright (c) mmhand2p contributors. All rights reserved.
"""The diffusion refiner's training pairs as a dataset (the file format:
:mod:`mmhand2p.conventions.penetration_pairs`)."""
import math
import os.path as osp
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from mmhand2p.conventions.penetration_pairs import (PAIR_FIELDS, PAIR_KINDS,
                                                    load_pairs)
from mmhand2p.registry import DATASETS
from mmhand2p.utils.geometry import (axis_angle_to_matrix,
                                     matrix_to_axis_angle, mirror_axis_angle,
                                     mirror_points)

__all__ = ['PenetrationPairsDataset']


@DATASETS.register_module()
class PenetrationPairsDataset(Dataset):
    """Pairs (penetrating ``c``, plausible ``X0``) for the diffusion refiner.

    Each item is ``dict(inputs=dict(x0_pose, x0_betas, x0_root, c_pose,
    c_betas, c_root))`` (float32 tensors, see
    :mod:`mmhand2p.conventions.penetration_pairs`); batch
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

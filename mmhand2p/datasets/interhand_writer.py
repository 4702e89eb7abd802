# Copyright (c) mmhand2p contributors. All rights reserved.
"""Writing annotations in InterHand2.6M's exact release format.

Used by the synthetic two-hand generator and by tests, so that everything the
dataset reads can be produced here. The format facts are those listed in
:mod:`mmhand2p.datasets.interhand26m`.
"""
import os.path as osp
from typing import Dict, Optional

import numpy as np

from mmhand2p.utils.fileio import atomic_write_json

__all__ = ['InterHandFormatWriter']


def _atomic_json(path: str, obj) -> None:
    """Compact JSON, written atomically."""
    atomic_write_json(path, obj, separators=(',', ':'))


class InterHandFormatWriter:
    """Collects cameras, frames and images, then writes the four files
    ``annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d,
    MANO_NeuralAnnot}.json`` under ``root``.

    Args:
        root (str): dataset root.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
    """

    def __init__(self, root: str, split: str) -> None:
        self.root = root
        self.split = split
        self.cameras: Dict[str, Dict[str, Dict[str, list]]] = {}
        self.joints: Dict[str, Dict[str, dict]] = {}
        self.manos: Dict[str, Dict[str, dict]] = {}
        self.images: list = []
        self.annotations: list = []

    def add_camera(self, capture: int, camera: str, camrot: np.ndarray,
                   campos_mm: np.ndarray, focal, princpt) -> None:
        """World -> camera: ``X_cam = camrot @ (X_world - campos)`` in mm."""
        cam = self.cameras.setdefault(
            str(capture),
            dict(campos={}, camrot={}, focal={}, princpt={}))
        cam['camrot'][str(camera)] = np.asarray(camrot, float).tolist()
        cam['campos'][str(camera)] = np.asarray(campos_mm, float).tolist()
        cam['focal'][str(camera)] = [float(v) for v in focal]
        cam['princpt'][str(camera)] = [float(v) for v in princpt]

    def add_frame(self,
                  capture: int,
                  frame_idx: int,
                  world_coord_mm: np.ndarray,
                  joint_valid: np.ndarray,
                  hand_type: str,
                  mano: Optional[Dict[str, Optional[dict]]] = None) -> None:
        """One time instant seen by every camera of a capture.

        Args:
            world_coord_mm: (42, 3) world joints in InterHand2.6M order, mm.
            joint_valid: (42,) 0/1.
            hand_type: ``'right' | 'left' | 'interacting'``.
            mano: ``{'right': None | {'pose': 48, 'shape': 10, 'trans': 3},
                'left': ...}`` world frame, metres, finger pose relative to
                ``hands_mean`` (NeuralAnnot convention).
        """
        self.joints.setdefault(str(capture), {})[str(frame_idx)] = dict(
            world_coord=np.asarray(world_coord_mm, float).tolist(),
            joint_valid=np.asarray(joint_valid, int).tolist(),
            hand_type=hand_type,
            hand_type_valid=1)
        if mano is not None:
            self.manos.setdefault(str(capture), {})[str(frame_idx)] = {
                side: None if p is None else {
                    k: np.asarray(v, float).reshape(-1).tolist()
                    for k, v in p.items()
                }
                for side, p in mano.items()
            }

    def add_image(self, image_id: int, capture: int, seq_name: str,
                  camera: str, frame_idx: int, file_name: str, width: int,
                  height: int, bbox_xywh, joint_valid: np.ndarray,
                  hand_type: str, subject: int = 0) -> None:
        """One camera view of a frame (an image and its annotation)."""
        self.images.append(
            dict(
                id=int(image_id),
                file_name=file_name,
                width=int(width),
                height=int(height),
                capture=int(capture),
                subject=int(subject),
                seq_name=seq_name,
                camera=str(camera),
                frame_idx=int(frame_idx)))
        self.annotations.append(
            dict(
                id=int(image_id),
                image_id=int(image_id),
                bbox=[float(v) for v in bbox_xywh],
                joint_valid=[[int(v)] for v in np.asarray(joint_valid)],
                hand_type=hand_type,
                hand_type_valid=1))

    def paths(self) -> Dict[str, str]:
        base = osp.join(self.root, 'annotations', self.split,
                        f'InterHand2.6M_{self.split}_')
        return dict(
            data=base + 'data.json',
            camera=base + 'camera.json',
            joint=base + 'joint_3d.json',
            mano=base + 'MANO_NeuralAnnot.json')

    def write(self) -> Dict[str, str]:
        """Write the four files (each atomically); returns their paths."""
        p = self.paths()
        _atomic_json(p['camera'], self.cameras)
        _atomic_json(p['joint'], self.joints)
        _atomic_json(p['mano'], self.manos)
        _atomic_json(
            p['data'],
            dict(images=self.images, annotations=self.annotations))
        return p

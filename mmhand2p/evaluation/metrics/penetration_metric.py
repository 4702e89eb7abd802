# Copyright (c) mmhand2p contributors. All rights reserved.
"""Penetration between the two predicted hands: PenVol, PenDist, ratio."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmhand2p.registry import METRICS
from ..functional.penetration import (MeshTopology, VolumeWorkerPool,
                                      closed_hand_faces, penetration_depth)
from ._utils import (default_json_path, format_table, get_field, mano_faces,
                     sample_dict, sample_name, write_json)

__all__ = ['PenetrationMetric']

_FRAMES = ('interacting', 'both_valid', 'all')


@METRICS.register_module()
class PenetrationMetric(BaseMetric):
    """Interpenetration of the two hands of each frame.

    Per frame, on the closed meshes (MANO's wrist hole capped with a fan to
    its centroid):

    * ``PenVol``: volume of the intersection of the two hands in cm^3,
      exact (manifold3d);
    * ``PenDist``: depth of each vertex of a hand inside the other (its
      distance to the other surface), mean and max over the penetrating
      vertices of both hands, in mm (0 when none);
    * penetrating: ``PenVol > volume_threshold`` (cm^3).

    Reported over the evaluated frames: ``PenVol`` (mean cm^3, as
    InterHandGen averages over all samples), ``PenDist_mean`` and
    ``PenDist_max`` (means over frames of the per-frame mean / max, 0 for
    frames without penetration), ``PenVol_pen`` and ``PenDist_mean_pen``
    (means over the penetrating frames only), ``PenRatio`` and
    ``num_frames``.

    Meshes are sent to worker processes (``num_workers``, one batch in flight
    while the previous batch's PenDist runs here in torch), so only scalars
    are kept per frame. A mesh that is not closed raises a ``ValueError``
    naming the sample; it is never counted as 0.

    Args:
        which (str): evaluate ``'pred'`` (default) or ``'gt'`` meshes.
        vertices_key (str): the field of ``{which}_hands`` holding the
            ``(2, V, 3)`` meshes. ``'unrefined_vertices'`` evaluates the
            stage-1 meshes that a diffusion refiner kept beside its output,
            so one test run reports before and after refinement (give that
            instance its own ``prefix``).
        frames (str): ``'interacting'`` frames (``hand_type``, default),
            ``'both_valid'`` (both GT hands valid) or ``'all'`` frames with
            two meshes.
        mano_model_path (str, optional): MANO folder for the faces; None for
            the bundled model.
        faces (array, optional): ``(2, F, 3)`` right / left faces instead.
        cap_holes (bool): close boundary loops before evaluating. Defaults
            to True; with False open meshes raise.
        num_workers (int, optional): worker processes for PenVol; None uses
            every usable core, 0 computes in this process.
        start_method (str): ``'fork'`` (default) or ``'spawn'`` /
            ``'forkserver'``.
        min_pairs_for_pool (int): smaller batches are computed here.
        pin_workers (bool): one core per worker (see
            :class:`~mmhand2p.evaluation.functional.VolumeWorkerPool`).
        volume_threshold (float): cm^3 above which a frame is penetrating.
            Defaults to 1e-3 (1 mm^3).
        inside_test (str): ``'boolean'`` (vertices of A & B; free with
            PenVol) or ``'winding'`` (generalised winding number in torch).
        out_file (str, optional): JSON report path.
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str, optional): default ``'penetration'``.
    """
    default_prefix: Optional[str] = 'penetration'

    def __init__(self,
                 which: str = 'pred',
                 frames: str = 'interacting',
                 vertices_key: str = 'vertices',
                 mano_model_path: Optional[str] = None,
                 faces=None,
                 cap_holes: bool = True,
                 num_workers: Optional[int] = None,
                 start_method: str = 'fork',
                 min_pairs_for_pool: int = 8,
                 pin_workers: bool = True,
                 volume_threshold: float = 1e-3,
                 inside_test: str = 'boolean',
                 out_file: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if which not in ('pred', 'gt'):
            raise ValueError(f"which must be 'pred' or 'gt', got {which!r}")
        if frames not in _FRAMES:
            raise ValueError(f'frames must be one of {_FRAMES}, got '
                             f'{frames!r}')
        if inside_test not in ('boolean', 'winding'):
            raise ValueError("inside_test must be 'boolean' or 'winding', "
                             f'got {inside_test!r}')
        self.which = which
        self.vertices_key = vertices_key
        self.frames = frames
        self.mano_model_path = mano_model_path
        self.cap = cap_holes
        self.num_workers = num_workers
        self.start_method = start_method
        self.min_pairs_for_pool = min_pairs_for_pool
        self.pin_workers = pin_workers
        self.volume_threshold = float(volume_threshold)
        self.inside_test = inside_test
        self.out_file = out_file
        self._faces_in = None if faces is None else np.asarray(faces)
        self._setup = None
        self._pool: Optional[VolumeWorkerPool] = None
        self._pending = None

    # ------------------------------------------------------------------
    def _prepare(self, name: str):
        """Faces, capping and topologies, checked once (naming ``name``)."""
        if self._setup is not None:
            return self._setup
        faces = (
            self._faces_in if self._faces_in is not None else mano_faces(
                self.mano_model_path))
        if faces.ndim != 3 or faces.shape[0] != 2 or faces.shape[-1] != 3:
            raise ValueError('PenetrationMetric: faces must have shape '
                             f'(2, F, 3), got {faces.shape}')
        sides = []
        for h, hand in enumerate(('right', 'left')):
            if self.cap:
                closed, loops = closed_hand_faces(faces[h])
            else:
                closed, loops = np.asarray(faces[h], dtype=np.int64), []
            topo = MeshTopology(closed, f'{name} ({hand} hand)')
            sides.append((closed, loops, topo))
        self._setup = sides
        return sides

    def _close(self, verts: np.ndarray, h: int) -> np.ndarray:
        loops = self._setup[h][1]
        if not loops:
            return verts
        centres = np.stack([verts[:, loop].mean(1) for loop in loops], 1)
        return np.concatenate([verts, centres], 1)

    def _eligible(self, s: dict) -> bool:
        if self.frames == 'interacting':
            return s.get('hand_type') == 'interacting'
        if self.frames == 'both_valid':
            hv = get_field(s, 'gt_hands', 'hand_valid')
            return hv is not None and bool(hv.bool().all())
        return True

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Send the batch's meshes to the workers, then finish the previous
        batch (its PenDist in torch) while they compute."""
        samples = [sample_dict(s) for s in data_samples]
        group = f'{self.which}_hands'
        eligible, verts, names = [], [], []
        for i, s in enumerate(samples):
            if not self._eligible(s):
                continue
            v = get_field(s, group, self.vertices_key)
            if v is None:
                if self.frames == 'all':
                    continue
                raise KeyError(f'PenetrationMetric: {sample_name(s, i)} has '
                               f'no {group}.{self.vertices_key} (2, V, 3)')
            if v.dim() != 3 or v.shape[0] != 2 or v.shape[-1] != 3:
                raise ValueError(
                    f'PenetrationMetric: {sample_name(s, i)}: {group}.'
                    f'{self.vertices_key} must have shape (2, V, 3), got '
                    f'{tuple(v.shape)}')
            eligible.append(i)
            verts.append(v.numpy())
            names.append(sample_name(s, i))
        job = dict(size=len(samples), eligible=eligible, async_result=None)
        if eligible:
            sides = self._prepare(names[0])
            v = np.stack(verts)
            va, vb = self._close(v[:, 0], 0), self._close(v[:, 1], 1)
            for h, x in enumerate((va, vb)):
                if x.shape[1] < sides[h][2].num_vertices:
                    raise ValueError(
                        f'PenetrationMetric: {names[0]}: the faces need '
                        f'{sides[h][2].num_vertices} vertices, the mesh has '
                        f'{x.shape[1]}')
            job.update(
                verts=(va, vb),
                num_query=(v.shape[2], v.shape[2]),
                async_result=self._get_pool().submit(
                    va, vb, names,
                    return_inside=self.inside_test == 'boolean'))
        previous, self._pending = self._pending, job
        if previous is not None:
            self._finish(previous)

    def _get_pool(self) -> VolumeWorkerPool:
        if self._pool is None:
            sides = self._setup
            self._pool = VolumeWorkerPool(
                sides[0][0],
                sides[1][0],
                num_workers=self.num_workers,
                start_method=self.start_method,
                min_pairs=self.min_pairs_for_pool,
                pin_workers=self.pin_workers)
        return self._pool

    def _finish(self, job: dict) -> None:
        """Collect PenVol, compute PenDist, append one result per sample."""
        per_frame: Dict[int, dict] = {}
        if job['async_result'] is not None:
            out = job['async_result'].get()
            vols, boxes = out[0], out[1]
            va, vb = job['verts']
            topo_a, topo_b = self._setup[0][2], self._setup[1][2]
            qa = torch.arange(va.shape[1]) < job['num_query'][0]
            qb = torch.arange(vb.shape[1]) < job['num_query'][1]
            kwargs = dict(boxes=torch.as_tensor(boxes))
            if self.inside_test == 'boolean':
                kwargs = dict(
                    inside_a=torch.as_tensor(out[2]),
                    inside_b=torch.as_tensor(out[3]))
            da, db = penetration_depth(va, vb, topo_a, topo_b, qa, qb,
                                       **kwargs)
            depth = torch.cat([da, db], 1).double() * 1000.0  # mm
            pen = depth > 0
            count = pen.sum(1)
            mean = torch.where(count > 0,
                               depth.sum(1) / count.clamp(min=1),
                               torch.zeros_like(depth[:, 0]))
            dmax = depth.amax(1)
            for j, i in enumerate(job['eligible']):
                per_frame[i] = dict(
                    evaluated=True,
                    pen_vol=float(vols[j]) * 1e6,  # m^3 -> cm^3
                    pen_dist_mean=float(mean[j]),
                    pen_dist_max=float(dmax[j]),
                    num_inside=int(count[j]))
        for i in range(job['size']):
            self.results.append(per_frame.get(i, dict(evaluated=False)))

    def evaluate(self, size: int) -> dict:
        """Finish the batch in flight, then mmengine's collection."""
        try:
            if self._pending is not None:
                job, self._pending = self._pending, None
                self._finish(job)
        finally:
            self.close()
        return super().evaluate(size)

    def close(self) -> None:
        """Stop the worker processes (they restart on the next batch)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    # ------------------------------------------------------------------
    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Average the per-frame values.

        Returns:
            dict: ``PenVol``, ``PenVol_pen`` (cm^3), ``PenDist_mean``,
            ``PenDist_max``, ``PenDist_mean_pen`` (mm), ``PenRatio`` and
            ``num_frames``.
        """
        done = [r for r in results if r.get('evaluated')]
        nan = float('nan')
        if not done:
            metrics = dict(
                PenVol=nan,
                PenVol_pen=nan,
                PenDist_mean=nan,
                PenDist_max=nan,
                PenDist_mean_pen=nan,
                PenRatio=nan,
                num_frames=0)
        else:
            vol = np.array([r['pen_vol'] for r in done])
            dmean = np.array([r['pen_dist_mean'] for r in done])
            dmax = np.array([r['pen_dist_max'] for r in done])
            pen = vol > self.volume_threshold
            metrics = dict(
                PenVol=float(vol.mean()),
                PenVol_pen=float(vol[pen].mean()) if pen.any() else 0.0,
                PenDist_mean=float(dmean.mean()),
                PenDist_max=float(dmax.mean()),
                PenDist_mean_pen=float(dmean[pen].mean())
                if pen.any() else 0.0,
                PenRatio=float(pen.mean()),
                num_frames=len(done))
        table = format_table(
            f'PenetrationMetric ({self.which} meshes, {self.frames} frames; '
            f'PenVol cm^3, PenDist mm, penetrating: PenVol > '
            f'{self.volume_threshold:g} cm^3):', ['metric', 'value'],
            [[k, v] for k, v in metrics.items()])
        print_log('\n' + table, logger='current')
        report = dict(
            metric='PenetrationMetric',
            which=self.which,
            frames=self.frames,
            volume_threshold_cm3=self.volume_threshold,
            inside_test=self.inside_test,
            metrics=metrics)
        path = self.out_file or default_json_path(
            f'{self.prefix or "penetration"}_{self.which}.json')
        write_json(report, path)
        return metrics

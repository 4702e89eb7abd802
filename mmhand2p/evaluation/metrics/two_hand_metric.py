# Copyright (c) mmhand2p contributors. All rights reserved.
"""Two-hand reconstruction metrics under a named protocol."""
import dataclasses
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmhand2p.registry import METRICS
from ..functional.aggregation import (aggregate, mean_of_per_joint_means,
                                      per_joint_means)
from ..functional.keypoint_eval import (auc, bone_length_scale, mrrpe, pck,
                                        procrustes_aligned_errors,
                                        projected_point_errors, regress_joints,
                                        root_aligned_errors)
from ._utils import (HAND_TYPES, default_json_path, format_table, get_field,
                     mano_joint_regressor, sample_dict, write_json)
from .protocols import EvalProtocol, get_protocol

__all__ = ['TwoHandMetric']

NUM_JOINTS = 21
SUBSETS = ('all', 'SH', 'IH')
JOINT_FAMILIES = ('MPJPE', 'MPJPE-XY', 'MPJPE-Z', 'PA-MPJPE')
VERTEX_FAMILIES = ('MPVPE', 'MPVPE-XY', 'MPVPE-Z', 'PA-MPVPE', 'MIAA')


@METRICS.register_module()
class TwoHandMetric(BaseMetric):
    """Joint, vertex and relative-root errors of two-hand reconstruction.

    Reported in millimetres (MIAA in pixels), for all frames and the
    single-hand (SH: ``hand_type`` right / left) and interacting-hand (IH)
    subsets:

    * ``MPJPE`` / ``MPVPE``: root-aligned (and, per protocol, scaled) mean
      joint / vertex errors; ``-XY`` and ``-Z`` variants split the error
      into the camera's image plane and depth (A2P's ablation);
    * ``PA-MPJPE`` / ``PA-MPVPE``: after a per-hand similarity Procrustes
      fit;
    * ``MRRPE``: error of the relative root position (left minus right root,
      camera frame) on the frames the protocol names;
    * ``AUC`` of the PCK curve over 0-50 mm and ``PCK@<t>mm`` (root-aligned
      joint errors, pooled);
    * ``MIAA``: mean distance in pixels between the projections (with the
      sample's ``cam_intrinsics``) of the GT and predicted vertices.

    Every choice that changes these numbers is fixed by ``protocol`` (see
    :mod:`mmhand2p.evaluation.metrics.protocols` and ``docs/evaluation.md``).
    At the end of evaluation a table is logged and a JSON report written to
    ``out_file`` or, by default, next to the run's log file
    (``work_dir/<timestamp>/``).

    Args:
        protocol (str | dict | EvalProtocol): ``'interwild'``,
            ``'intaghand'``, ``'dir'``, ``'mmpose'`` or ``'a2p'``, or a dict
            ``dict(type=name, **field_overrides)``. Defaults to
            ``'interwild'``.
        mano_model_path (str, optional): MANO folder for the joint regressor
            that protocols regressing joints / mesh roots from vertices need;
            None for the bundled model. Use the model that produced the GT
            meshes.
        joint_regressor (array, optional): ``(2, 21, 778)`` regressor used
            instead of loading MANO.
        pck_thresholds (sequence of float): PCK thresholds in mm reported for
            all frames. Defaults to (20, 50).
        auc_range (tuple): AUC threshold range in mm. Defaults to (0, 50).
        out_file (str, optional): JSON report path.
        pred_keys (tuple): the fields of ``pred_hands`` read as joints and
            vertices; ``('unrefined_joints_3d', 'unrefined_vertices')``
            evaluates the stage-1 hands a diffusion refiner kept beside its
            output (give that instance its own ``prefix``).
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str, optional): metric name prefix; default ``'two_hand'``.
    """
    default_prefix: Optional[str] = 'two_hand'

    def __init__(self,
                 protocol: Union[str, dict, EvalProtocol] = 'interwild',
                 mano_model_path: Optional[str] = None,
                 joint_regressor=None,
                 pck_thresholds: Sequence[float] = (20.0, 50.0),
                 auc_range: Sequence[float] = (0.0, 50.0),
                 out_file: Optional[str] = None,
                 pred_keys: tuple = ('joints_3d', 'vertices'),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.protocol = get_protocol(protocol)
        self.mano_model_path = mano_model_path
        self._regressor = None
        if joint_regressor is not None:
            reg = torch.as_tensor(np.asarray(joint_regressor)).double()
            if reg.dim() != 3 or reg.shape[:2] != (2, NUM_JOINTS):
                raise ValueError('joint_regressor must have shape (2, 21, V), '
                                 f'got {tuple(reg.shape)}')
            self._regressor = reg
        self.pck_thresholds = tuple(float(t) for t in pck_thresholds)
        if len(auc_range) != 2 or not auc_range[1] > auc_range[0]:
            raise ValueError(f'auc_range must be (min, max) with max > min, '
                             f'got {auc_range}')
        self.auc_range = (float(auc_range[0]), float(auc_range[1]))
        self.out_file = out_file
        self.pred_keys = tuple(pred_keys)

    # ------------------------------------------------------------------
    @property
    def regressor(self) -> torch.Tensor:
        if self._regressor is None:
            self._regressor = mano_joint_regressor(self.mano_model_path)
        return self._regressor

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Compute per-sample errors of a batch and keep them (on CPU).

        Args:
            data_batch: unused.
            data_samples (sequence): dicts (``HandDataSample.to_dict()``)
                with ``gt_hands`` / ``pred_hands`` and metainfo; see
                :data:`mmhand2p.structures.HAND_FIELDS`.
        """
        samples = [sample_dict(s) for s in data_samples]
        if not samples:
            return
        batch = _Batch(samples, self.protocol, self.pred_keys)
        self.results.extend(self._evaluate_batch(batch))

    def _evaluate_batch(self, b: '_Batch') -> List[dict]:
        p = self.protocol
        n = b.n
        r = p.root_joint
        gj, gjv, pj = b.gt_joints, b.gt_joints_valid, b.pred_joints
        hv = b.hand_valid
        if p.joints_source == 'mesh':
            if not (b.gt_verts_valid & b.pred_verts_valid).any():
                raise KeyError(
                    f'TwoHandMetric: protocol {p.name!r} regresses the joints '
                    'from the meshes, but no sample of the batch has both '
                    'gt_hands.vertices and pred_hands.vertices')
            reg = self.regressor
            gj = regress_joints(b.gt_verts, reg)
            pj = regress_joints(b.pred_verts, reg)
            gjv = (b.gt_verts_valid
                   & b.pred_verts_valid)[..., None].expand(n, 2, NUM_JOINTS)
        jmask = gjv & hv[..., None] & gjv[..., r:r + 1]
        scale = None
        scale_ok = torch.ones(n, 2, dtype=torch.bool)
        if p.bone_scaling:
            scale, ok = bone_length_scale(pj, gj)
            scale_ok = ok & gjv[..., 0] & gjv[..., 9]
            jmask = jmask & scale_ok[..., None]
        out = {}
        for fam, axes in zip(JOINT_FAMILIES[:3], ('xyz', 'xy', 'z')):
            out[fam] = 1000.0 * root_aligned_errors(pj, gj, pj[:, :, r],
                                                    gj[:, :, r], scale, axes)
        pa_mask = gjv & hv[..., None]
        out['PA-MPJPE'] = 1000.0 * procrustes_aligned_errors(pj, gj, pa_mask)
        out['PA-MPJPE_mask'] = pa_mask & ~torch.isnan(out['PA-MPJPE'])

        # vertices
        vmask = b.gt_verts_valid & b.pred_verts_valid & hv
        if p.sh_vertices_own_hand_only:
            own = torch.ones(n, 2, dtype=torch.bool)
            own[b.hand_type == 0, 1] = False
            own[b.hand_type == 1, 0] = False
            vmask = vmask & own
        if vmask.any():
            if p.vertex_root == 'mesh':
                reg_root = self.regressor[:, r]  # 2, V
                groot = torch.einsum('hv,nhvc->nhc', reg_root, b.gt_verts)
                proot = torch.einsum('hv,nhvc->nhc', reg_root, b.pred_verts)
            else:
                groot, proot = gj[:, :, r], pj[:, :, r]
                vmask = vmask & gjv[..., r]
            if p.bone_scaling:
                vmask = vmask & scale_ok
            for fam, axes in zip(VERTEX_FAMILIES[:3], ('xyz', 'xy', 'z')):
                out[fam] = 1000.0 * root_aligned_errors(
                    b.pred_verts, b.gt_verts, proot, groot, scale,
                    axes).mean(-1)
            out['PA-MPVPE'] = 1000.0 * procrustes_aligned_errors(
                b.pred_verts, b.gt_verts).mean(-1)
            if b.has_intrinsics.any():
                if p.miaa_translation == 'predicted':
                    placed = b.pred_verts
                else:
                    rel = b.pred_verts - proot[:, :, None]
                    if scale is not None:
                        rel = rel * scale[..., None, None]
                    placed = rel + groot[:, :, None]
                out['MIAA'] = projected_point_errors(
                    placed, b.gt_verts, b.intrinsics[:, None]).mean(-1)
        # MRRPE
        m = p.mrrpe_joint
        mr_valid = gjv[:, 0, m] & gjv[:, 1, m] & hv[:, 0] & hv[:, 1]
        if p.mrrpe_frames == 'interacting':
            mr_valid = mr_valid & (b.hand_type == HAND_TYPES['interacting'])
        mr = 1000.0 * mrrpe(pj, gj, root_index=m)

        results = []
        for i in range(n):
            res = dict(
                hand_type=int(b.hand_type[i]),
                joint_mask=jmask[i].numpy(),
                pa_joint_mask=out['PA-MPJPE_mask'][i].numpy(),
                mrrpe=float(mr[i]),
                mrrpe_valid=bool(mr_valid[i]))
            for fam in JOINT_FAMILIES:
                res[fam] = out[fam][i].float().numpy()
            if 'MPVPE' in out:
                res['vertex_mask'] = vmask[i].numpy()
                for fam in VERTEX_FAMILIES[:4]:
                    res[fam] = out[fam][i].float().numpy()
                if 'MIAA' in out:
                    res['MIAA'] = out['MIAA'][i].float().numpy()
                    res['miaa_mask'] = (vmask[i] & b.has_intrinsics[i]).numpy()
            results.append(res)
        return results

    # ------------------------------------------------------------------
    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Aggregate the per-sample errors under the protocol.

        Returns:
            dict: ``<family>_<subset>`` (e.g. ``MPJPE_IH``), ``MRRPE``,
            ``AUC_<subset>``, ``PCK@<t>mm`` and ``num_<subset>``.
        """
        p = self.protocol
        empty = p.empty_value
        hand_type = np.array([r['hand_type'] for r in results])
        subsets = {
            'all': np.ones(len(results), dtype=bool),
            'SH': hand_type < HAND_TYPES['interacting'],
            'IH': hand_type == HAND_TYPES['interacting'],
        }
        metrics: Dict[str, float] = {}
        jmask = np.stack([r['joint_mask'] for r in results])
        pamask = np.stack([r['pa_joint_mask'] for r in results])
        for fam in JOINT_FAMILIES:
            err = np.stack([r[fam] for r in results])
            mask = pamask if fam == 'PA-MPJPE' else jmask
            metrics.update(
                self._aggregate(fam, err, mask, subsets, p.joint_aggregation,
                                empty))
        have_v = [r for r in results if 'vertex_mask' in r]
        if have_v:
            vmask = np.stack([
                r['vertex_mask'] if 'vertex_mask' in r else np.zeros(2, bool)
                for r in results
            ])
            for fam in VERTEX_FAMILIES[:4]:
                err = np.stack([
                    r[fam] if fam in r else np.zeros(2, np.float32)
                    for r in results
                ])
                metrics.update(
                    self._aggregate(fam, err[..., None], vmask[..., None],
                                    subsets, p.vertex_aggregation, empty))
            if any('MIAA' in r for r in results):
                mmask = np.stack(
                    [r.get('miaa_mask', np.zeros(2, bool)) for r in results])
                err = np.stack(
                    [r.get('MIAA', np.zeros(2, np.float32)) for r in results])
                metrics.update(
                    self._aggregate('MIAA', err[..., None], mmask[..., None],
                                    subsets, p.vertex_aggregation, empty))
        mr = np.array([r['mrrpe'] for r in results])
        mr_valid = np.array([r['mrrpe_valid'] for r in results])
        metrics['MRRPE'] = (
            float(mr[mr_valid].mean()) if mr_valid.any() else float(empty))
        err = np.stack([r['MPJPE'] for r in results])
        for name, sel in subsets.items():
            metrics[f'AUC_{name}'] = _nan_to(
                float(auc(err[sel], jmask[sel], *self.auc_range)), empty)
        values = pck(err, self.pck_thresholds, jmask)
        for t, v in zip(self.pck_thresholds, values.tolist()):
            metrics[f'PCK@{t:g}mm'] = _nan_to(v, empty)
        for name, sel in subsets.items():
            metrics[f'num_{name}'] = int(sel.sum())
        self._report(metrics, len(results))
        return metrics

    def _aggregate(self, fam, err, mask, subsets, mode, empty):
        out = {}
        if mode == 'per_joint':
            # InterWild: per-joint means per subset; "all" is the mean of the
            # SH and IH per-joint means together
            pj = {
                k: per_joint_means(err[subsets[k]], mask[subsets[k]])
                for k in ('SH', 'IH')
            }
            out[f'{fam}_all'] = mean_of_per_joint_means([pj['SH'], pj['IH']],
                                                        empty)
            out[f'{fam}_SH'] = mean_of_per_joint_means([pj['SH']], empty)
            out[f'{fam}_IH'] = mean_of_per_joint_means([pj['IH']], empty)
            return out
        for name, sel in subsets.items():
            out[f'{fam}_{name}'] = aggregate(err[sel], mask[sel], mode, empty)
        return out

    def _report(self, metrics: Dict[str, float], num: int) -> None:
        p = self.protocol
        fams = [
            f for f in JOINT_FAMILIES + VERTEX_FAMILIES + ('AUC', )
            if f'{f}_all' in metrics
        ]
        rows = [[f] + [metrics[f'{f}_{s}'] for s in SUBSETS] for f in fams]
        rows.append(['MRRPE', metrics['MRRPE'], '', ''])
        rows.append(['frames'] + [metrics[f'num_{s}'] for s in SUBSETS])
        table = format_table(
            f'TwoHandMetric, protocol {p.name!r} ({p.description}); mm, '
            'MIAA in px, AUC over '
            f'{self.auc_range[0]:g}-{self.auc_range[1]:g} mm:',
            ['metric'] + list(SUBSETS), rows)
        print_log('\n' + table, logger='current')
        report = dict(
            metric='TwoHandMetric',
            protocol=dataclasses.asdict(p),
            num_samples=num,
            metrics=metrics)
        path = self.out_file or default_json_path(
            f'{self.prefix or "two_hand"}_{p.name}.json')
        write_json(report, path)


def _nan_to(v: float, empty: float) -> float:
    return float(empty) if np.isnan(v) else float(v)


class _Batch:
    """The tensors of a batch of samples, with presence masks."""

    def __init__(self,
                 samples: List[dict],
                 protocol: EvalProtocol,
                 pred_keys: tuple = ('joints_3d', 'vertices')) -> None:
        self.pred_keys = pred_keys
        n = len(samples)
        self.n = n
        gj, gjv, hv, pj = [], [], [], []
        gv, gvv, pv, pvv, ks, hk, ht = [], [], [], [], [], [], []
        for i, s in enumerate(samples):
            g = get_field(s, 'gt_hands', 'joints_3d')
            p = get_field(s, 'pred_hands', self.pred_keys[0])
            if g is None or p is None:
                raise KeyError(
                    f'TwoHandMetric: sample {i} lacks gt_hands.joints_3d or '
                    'pred_hands.joints_3d (2, 21, 3)')
            _check(g, (2, NUM_JOINTS, 3), 'gt_hands.joints_3d', i)
            _check(p, (2, NUM_JOINTS, 3), 'pred_hands.joints_3d', i)
            v = get_field(s, 'gt_hands', 'joints_3d_valid')
            v = torch.ones(2, NUM_JOINTS, dtype=torch.bool) if v is None \
                else v.reshape(2, NUM_JOINTS) > 0
            h = get_field(s, 'gt_hands', 'hand_valid')
            h = v.any(-1) if h is None else h.reshape(2).bool()
            gj.append(g)
            gjv.append(v)
            hv.append(h)
            pj.append(p)
            gvert = get_field(s, 'gt_hands', 'vertices')
            pvert = get_field(s, 'pred_hands', self.pred_keys[1])
            if gvert is not None:
                _check(gvert, (2, None, 3), 'gt_hands.vertices', i)
                mv = get_field(s, 'gt_hands', 'mano_valid')
                gvv.append(
                    torch.ones(2, dtype=torch.bool) if mv is
                    None else mv.reshape(2).bool())
            else:
                gvv.append(torch.zeros(2, dtype=torch.bool))
            pvv.append(torch.full((2, ), pvert is not None, dtype=torch.bool))
            if pvert is not None:
                _check(pvert, (2, None, 3), 'pred_hands.vertices', i)
                if gvert is not None and gvert.shape != pvert.shape:
                    raise ValueError(
                        f'TwoHandMetric: sample {i}: gt_hands.vertices '
                        f'{tuple(gvert.shape)} and pred_hands.vertices '
                        f'{tuple(pvert.shape)} differ in shape')
            gv.append(gvert)
            pv.append(pvert)
            k = s.get('cam_intrinsics')
            hk.append(k is not None)
            if k is not None:
                k = torch.as_tensor(np.asarray(k), dtype=torch.float64)
                _check(k, (3, 3), 'cam_intrinsics', i)
            ks.append(k)
            t = s.get('hand_type')
            if t not in HAND_TYPES:
                raise ValueError(
                    f'TwoHandMetric: sample {i} has hand_type {t!r}; '
                    f'expected one of {sorted(HAND_TYPES)}')
            ht.append(HAND_TYPES[t])
        self.gt_joints = torch.stack(gj)
        self.gt_joints_valid = torch.stack(gjv)
        self.hand_valid = torch.stack(hv)
        self.pred_joints = torch.stack(pj)
        self.hand_type = torch.tensor(ht)
        nv = next((x.shape[1] for x in gv + pv if x is not None), 778)
        zeros = torch.zeros(2, nv, 3, dtype=torch.float64)
        for lst in (gv, pv):
            for i, x in enumerate(lst):
                if x is not None and x.shape[1] != nv:
                    raise ValueError(
                        f'TwoHandMetric: sample {i} has {x.shape[1]} '
                        f'vertices per hand, others {nv}')
        self.gt_verts = torch.stack([zeros if x is None else x for x in gv])
        self.pred_verts = torch.stack([zeros if x is None else x for x in pv])
        self.gt_verts_valid = torch.stack(gvv)
        self.pred_verts_valid = torch.stack(pvv)
        self.has_intrinsics = torch.tensor(hk, dtype=torch.bool)
        eye = torch.eye(3, dtype=torch.float64)
        self.intrinsics = torch.stack([eye if k is None else k for k in ks])


def _check(t: torch.Tensor, shape, name: str, i: int) -> None:
    ok = t.dim() == len(shape) and all(s is None or t.shape[j] == s
                                       for j, s in enumerate(shape))
    if not ok:
        want = ', '.join('V' if s is None else str(s) for s in shape)
        raise ValueError(f'TwoHandMetric: sample {i}: {name} must have shape '
                         f'({want}), got {tuple(t.shape)}')

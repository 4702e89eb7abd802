# Copyright (c) mmhand2p contributors. All rights reserved.
"""Named evaluation protocols of two-hand papers.

A protocol fixes every choice that changes the numbers: the root joint of
the alignment, bone-length scaling, where joints and mesh roots come from,
how errors are aggregated, which frames count for MRRPE, and what an empty
subset reports. The sources of each field are listed in
``docs/evaluation.md``. ``TwoHandMetric(protocol='interwild')`` picks one;
``protocol=dict(type='dir', root_joint=9)`` overrides fields of a named one.
"""
import dataclasses
from dataclasses import dataclass
from typing import Dict, Union

from ..functional.aggregation import AGGREGATIONS

__all__ = ['EvalProtocol', 'PROTOCOLS', 'get_protocol']

_JOINT_SOURCES = ('annotation', 'mesh')
_VERTEX_ROOTS = ('joints', 'mesh')
_MRRPE_FRAMES = ('interacting', 'both_valid')
_MIAA_TRANSLATIONS = ('predicted', 'gt_root')


@dataclass(frozen=True)
class EvalProtocol:
    """One evaluation protocol.

    Attributes:
        name (str): the protocol's name.
        root_joint (int): joint subtracted from each hand (0 wrist, 9 middle
            MCP) for MPJPE / MPVPE and their XY / Z variants.
        bone_scaling (bool): multiply each root-relative predicted hand by
            ``|gt[9] - gt[0]| / |pred[9] - pred[0]|`` (IntagHand, DIR).
        joints_source (str): ``'annotation'`` uses ``joints_3d`` of the data
            samples; ``'mesh'`` regresses the 21 joints of both GT and
            prediction from their vertices with the MANO joint regressor
            plus fingertip vertices (IntagHand / DIR do this, so their GT
            joints are MANO joints, not the dataset's annotation).
        vertex_root (str): the point subtracted from each mesh:
            ``'joints'`` the root joint of the same hand's joints,
            ``'mesh'`` the root joint regressed from that mesh (InterWild:
            ``sh_joint_regressor`` applied to GT and predicted meshes).
        joint_aggregation (str): see
            :mod:`mmhand2p.evaluation.functional.aggregation`.
        vertex_aggregation (str): same, for per-hand mean vertex errors.
        sh_vertices_own_hand_only (bool): on single-hand frames, evaluate
            only the mesh of the hand named by ``hand_type`` (InterWild).
        mrrpe_frames (str): ``'interacting'`` (hand_type interacting and
            both roots valid) or ``'both_valid'`` (any frame whose two roots
            are valid).
        mrrpe_root (int, optional): root joint of MRRPE; ``None`` means
            ``root_joint``.
        miaa_translation (str): ``'predicted'`` projects the predicted
            camera-frame mesh; ``'gt_root'`` projects the root-aligned (and
            scaled) prediction placed at the GT root (DIR's 2D errors).
        empty_value (float): what a subset without valid entries reports
            (``nan``; mmpose's ``keypoint_epe`` returns 0).
        description (str): one line for logs.
    """
    name: str
    root_joint: int = 0
    bone_scaling: bool = False
    joints_source: str = 'annotation'
    vertex_root: str = 'mesh'
    joint_aggregation: str = 'pooled'
    vertex_aggregation: str = 'pooled'
    sh_vertices_own_hand_only: bool = False
    mrrpe_frames: str = 'interacting'
    mrrpe_root: Union[int, None] = None
    miaa_translation: str = 'predicted'
    empty_value: float = float('nan')
    description: str = ''

    def __post_init__(self) -> None:
        checks = (('joints_source', _JOINT_SOURCES), ('vertex_root',
                                                      _VERTEX_ROOTS),
                  ('joint_aggregation', AGGREGATIONS), ('vertex_aggregation',
                                                        AGGREGATIONS),
                  ('mrrpe_frames', _MRRPE_FRAMES), ('miaa_translation',
                                                    _MIAA_TRANSLATIONS))
        for field, valid in checks:
            if getattr(self, field) not in valid:
                raise ValueError(
                    f'protocol {self.name!r}: {field}='
                    f'{getattr(self, field)!r} is not valid; valid: {valid}')
        for field in ('root_joint', 'mrrpe_root'):
            v = getattr(self, field)
            if v is not None and not (isinstance(v, int) and 0 <= v < 21):
                raise ValueError(f'protocol {self.name!r}: {field} must be a '
                                 f'joint index in [0, 21), got {v!r}')

    @property
    def mrrpe_joint(self) -> int:
        return self.root_joint if self.mrrpe_root is None else self.mrrpe_root

    @property
    def needs_regressor(self) -> bool:
        """Whether the MANO joint regressor is needed."""
        return self.joints_source == 'mesh' or self.vertex_root == 'mesh'


#: the named protocols (sources in docs/evaluation.md)
PROTOCOLS: Dict[str, EvalProtocol] = {
    p.name: p
    for p in (
        EvalProtocol(
            name='interwild',
            root_joint=0,
            joints_source='annotation',
            vertex_root='mesh',
            joint_aggregation='per_joint',
            vertex_aggregation='pooled',
            sh_vertices_own_hand_only=True,
            mrrpe_frames='both_valid',
            description='InterWild (Moon, CVPR 2023) '
            'data/InterHand26M/InterHand26M.py evaluate/print_eval_result: '
            'wrist root, no scaling, per-joint means, SH/IH'),
        EvalProtocol(
            name='intaghand',
            root_joint=9,
            bone_scaling=True,
            joints_source='mesh',
            vertex_root='joints',
            joint_aggregation='hand_average',
            vertex_aggregation='hand_average',
            mrrpe_frames='both_valid',
            description='IntagHand (Li et al., CVPR 2022) '
            'apps/eval_interhand.py: middle-MCP root, GT/pred '
            'wrist-to-middle-MCP length scaling, (left + right) / 2'),
        EvalProtocol(
            name='dir',
            root_joint=0,
            bone_scaling=True,
            joints_source='mesh',
            vertex_root='joints',
            joint_aggregation='hand_average',
            vertex_aggregation='hand_average',
            mrrpe_frames='both_valid',
            miaa_translation='gt_root',
            description='DIR (Ren et al., ICCV 2023) apps/eval.py: wrist '
            'root (root_joint=9 available), GT/pred wrist-to-middle-MCP '
            'length scaling, (left + right) / 2'),
        EvalProtocol(
            name='mmpose',
            root_joint=0,
            joints_source='annotation',
            vertex_root='mesh',
            joint_aggregation='pooled',
            vertex_aggregation='pooled',
            mrrpe_frames='interacting',
            empty_value=0.0,
            description='mmpose 1.x InterHandMetric '
            '(mmpose/evaluation/metrics/hand_metric.py): wrist root, '
            'keypoint_epe pooled over valid joints, MRRPE on interacting '
            'frames with both wrists visible'),
        EvalProtocol(
            name='a2p',
            root_joint=0,
            joints_source='annotation',
            vertex_root='mesh',
            joint_aggregation='pooled',
            vertex_aggregation='pooled',
            mrrpe_frames='interacting',
            description='A2P (Han et al., arXiv 2503.17788) as stated in '
            'the paper: root-joint alignment, MRRPE, IH/SH, XY/Z split; '
            'aggregation not stated (pooled here)'),
    )
}


def get_protocol(protocol: Union[str, dict, EvalProtocol]) -> EvalProtocol:
    """A protocol from its name, a dict ``dict(type=name, **overrides)`` or
    an :class:`EvalProtocol`.

    Raises:
        ValueError: for an unknown name or field, listing the valid ones.
    """
    if isinstance(protocol, EvalProtocol):
        return protocol
    overrides = {}
    if isinstance(protocol, dict):
        overrides = dict(protocol)
        if 'type' not in overrides:
            raise ValueError('a protocol dict needs a `type` naming the base '
                             f'protocol, one of {sorted(PROTOCOLS)}; got '
                             f'{protocol}')
        name = overrides.pop('type')
    elif isinstance(protocol, str):
        name = protocol
    else:
        raise TypeError('protocol must be a name, a dict or an EvalProtocol, '
                        f'got {type(protocol).__name__}')
    if name not in PROTOCOLS:
        raise ValueError(f'unknown evaluation protocol {name!r}; valid '
                         f'protocols: {sorted(PROTOCOLS)}')
    fields = {f.name for f in dataclasses.fields(EvalProtocol)} - {'name'}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f'unknown protocol field(s) {unknown}; valid fields: '
                         f'{sorted(fields)}')
    base = PROTOCOLS[name]
    if not overrides:
        return base
    return dataclasses.replace(base, **overrides)

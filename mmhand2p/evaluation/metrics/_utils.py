# Copyright (c) mmhand2p contributors. All rights reserved.
"""Helpers shared by the metrics: reading data samples, the MANO joint
regressor, tables and the JSON report."""
import json
import math
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import MMLogger, print_log

__all__ = [
    'sample_dict', 'get_field', 'sample_name', 'mano_joint_regressor',
    'mano_faces', 'format_table', 'write_json', 'default_json_path'
]

HAND_TYPES = {'right': 0, 'left': 1, 'interacting': 2}


def sample_dict(sample: Any) -> dict:
    """A data sample as the nested dict mmengine passes to metrics."""
    if hasattr(sample, 'to_dict'):
        return sample.to_dict()
    if not isinstance(sample, dict):
        raise TypeError('metrics expect data samples as dicts (mmengine calls '
                        'HandDataSample.to_dict()), got '
                        f'{type(sample).__name__}')
    return sample


def get_field(sample: dict, group: str, key: str) -> Optional[torch.Tensor]:
    """``sample[group][key]`` as a CPU float64/bool tensor, or None."""
    g = sample.get(group)
    if g is None:
        return None
    if not isinstance(g, dict):
        g = g.to_dict() if hasattr(g, 'to_dict') else dict(g)
    v = g.get(key)
    if v is None:
        return None
    t = torch.as_tensor(np.asarray(v) if not torch.is_tensor(v) else v)
    t = t.detach().cpu()
    return t if t.dtype == torch.bool else t.double()


def sample_name(sample: dict, index: int) -> str:
    """What to call a sample in error messages."""
    for key in ('img_path', 'img_id', 'id'):
        if sample.get(key) is not None:
            return f'{key}={sample[key]}'
    return f'index {index} of the batch'


def mano_layer(mano_model_path: Optional[str] = None):
    """The registered body model ``MANOLayer`` of both hands.

    Looked up by name in ``MODELS`` (whose lazy ``locations`` import
    ``mmhand2p.models`` on first use): evaluation and models sit side by
    side and meet only through the registry; the body model pulls smplx and
    is only needed by some protocols.
    """
    from mmhand2p.registry import MODELS
    return MODELS.get('MANOLayer')(mano_model_path)


_mano_layer = mano_layer


def mano_joint_regressor(mano_model_path: Optional[str] = None
                         ) -> torch.Tensor:
    """``(2, 21, 778)`` regressor of the wrist-first 21 joints (16 MANO
    joints + 5 fingertip vertices) of the right and left MANO models."""
    layer = _mano_layer(mano_model_path)
    regs = []
    for model in (layer.right, layer.left):
        j16 = model.J_regressor.double()
        tips = torch.zeros(
            len(layer.fingertip_ids), j16.shape[1], dtype=torch.float64)
        tips[torch.arange(len(tips)), layer.fingertip_ids] = 1.0
        regs.append(torch.cat([j16, tips])[layer.joint_map])
    return torch.stack(regs)


def mano_faces(mano_model_path: Optional[str] = None) -> np.ndarray:
    """``(2, 1538, 3)`` outward faces of the right and left MANO models."""
    return _mano_layer(mano_model_path).faces.cpu().numpy()


def _fmt(v) -> str:
    if isinstance(v, float):
        return 'nan' if math.isnan(v) else f'{v:.3f}'
    return str(v)


def format_table(title: str, header: Sequence[str],
                 rows: List[Sequence]) -> str:
    """A plain-text table."""
    cells = [list(map(str, header))] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
    out = [title, line]
    for i, r in enumerate(cells):
        out.append('| ' + ' | '.join(
            c.rjust(w) if j else c.ljust(w)
            for j, (c, w) in enumerate(zip(r, widths))) + ' |')
        if i == 0:
            out.append(line)
    out.append(line)
    return '\n'.join(out)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def default_json_path(filename: str) -> Optional[str]:
    """``filename`` in the folder of the current log file (the run's
    ``work_dir/<timestamp>/``), or None when no log file is set up."""
    try:
        log_file = MMLogger.get_current_instance().log_file
    except Exception:  # pragma: no cover - no logger
        return None
    if not log_file:
        return None
    return osp.join(osp.dirname(log_file), filename)


def write_json(report: Dict, path: Optional[str]) -> Optional[str]:
    """Write the report (nan -> null); returns the path written."""
    if path is None:
        return None
    dirname = osp.dirname(osp.abspath(path))
    if not osp.isdir(dirname):
        import os
        os.makedirs(dirname, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(_jsonable(report), f, indent=2)
    print_log(f'evaluation report written to {path}', logger='current')
    return path

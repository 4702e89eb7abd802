# Copyright (c) mmhand2p contributors. All rights reserved.
"""The inference model of a config: what is deployed, without the
training-only prior teachers."""
import copy
import os.path as osp
from typing import List, Tuple

from mmengine.config import Config

__all__ = ['inference_model_cfg', 'build_inference_model', 'TEACHER_KEYS']


#: config keys of training-only prior teachers
TEACHER_KEYS = ('teachers', 'teacher')


def inference_model_cfg(model_cfg: dict) -> Tuple[dict, List[str]]:
    """The inference version of a model config.

    - ``teachers`` / ``teacher`` entries are set to None (prior teachers are
      training-only), except in a component with ``prior_source='teacher'``
      (the starred variant runs its teachers at inference);
    - a ``MANOLayer`` whose ``model_path`` does not exist falls back to the
      bundled hand model (same topology; the layer has no parameters, so
      neither FLOPs nor parameter counts change).

    Returns:
        tuple: the new config (a copy) and notes saying what was changed.
    """
    notes: List[str] = []

    def visit(node, path):
        if isinstance(node, dict):
            if node.get('prior_source') != 'teacher':
                for key in TEACHER_KEYS:
                    if node.get(key):
                        node[key] = None
                        notes.append(f'{path}.{key}: dropped (training only)')
            if str(node.get('type', '')).endswith('MANOLayer') and \
                    node.get('model_path') and \
                    not osp.exists(node['model_path']):
                notes.append(f"{path}.model_path: {node['model_path']} not "
                             'found, the bundled hand model is used')
                node['model_path'] = None
            for key, value in node.items():
                visit(value, f'{path}.{key}')
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                visit(value, f'{path}[{i}]')

    cfg = copy.deepcopy(model_cfg)
    visit(cfg, 'model')
    return cfg, notes


def build_inference_model(cfg: Config, test_mode: bool = True):
    """``cfg.model`` built in the config's default scope, in eval mode.

    Args:
        cfg (Config): the config.
        test_mode (bool): build :func:`inference_model_cfg` of the model.

    Returns:
        tuple: the model and the notes of :func:`inference_model_cfg`.
    """
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmhand2p'))
    model_cfg, notes = cfg.model, []
    if test_mode:
        model_cfg, notes = inference_model_cfg(cfg.model)
    model = MODELS.build(model_cfg)
    model.eval()
    return model, notes

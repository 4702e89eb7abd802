# Copyright (c) mmhand2p contributors. All rights reserved.
"""Configs and checkpoints of a composite model's separately trained parts
(``DetectThenReconstruct``: a detector and a reconstructor).

Pure helpers on mmengine configs and state dicts: nothing here builds a
model, so models, tools and apis can all use them. Weights load through the
package's one strict loader,
:func:`mmhand2p.utils.checkpoint.load_state_dict_strict`.
"""
import copy
import logging
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from .checkpoint import (CheckpointError, load_state_dict_strict,
                         read_state_dict, strip_prefix)

__all__ = [
    'TEACHER_KEYS', 'inference_model_cfg', 'find_config', 'part_config',
    'test_transform', 'read_part_state_dict', 'load_part',
    'merge_part_checkpoints'
]


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


def _repo_root() -> str:
    import mmhand2p
    return osp.dirname(osp.dirname(osp.abspath(mmhand2p.__file__)))


def find_config(path: str, what: str,
                owner: str = 'DetectThenReconstruct') -> str:
    """An existing config file: ``path`` as given, else relative to the
    repository root.

    Raises:
        FileNotFoundError: neither exists (both places named).
    """
    tried = [osp.abspath(path)]
    if not osp.isabs(path):
        tried.append(osp.join(_repo_root(), path))
    for p in tried:
        if osp.isfile(p):
            return p
    raise FileNotFoundError(
        f'{owner}: {what} config file {path!r} not found (looked at '
        f'{tried}); give a model dict or an existing config file')


def part_config(cfg: Union[dict, str],
                what: str,
                owner: str = 'DetectThenReconstruct'
                ) -> Tuple[ConfigDict, Optional[Config]]:
    """The model dict of a part and, if ``cfg`` is a file, the whole config
    (to read its test pipeline).

    Args:
        cfg (dict | str): a model dict or a config file (see
            :func:`find_config`).
        what (str): the part's name in messages, e.g. ``'detector'``.

    Returns:
        tuple: a deep-copied ``ConfigDict`` of the model (mmdet reads its
        ``test_cfg`` by attribute) and the file's ``Config`` or None.
    """
    if isinstance(cfg, str):
        full = Config.fromfile(find_config(cfg, what, owner))
        if full.get('model') is None:
            raise KeyError(f'{owner}: the {what} config {cfg!r} has no '
                           '"model"')
        return ConfigDict(copy.deepcopy(full.model)), full
    if not isinstance(cfg, dict):
        raise TypeError(f'{owner}: {what} must be a model dict or a config '
                        f'file path, got {type(cfg).__name__}')
    return ConfigDict(copy.deepcopy(cfg)), None


def test_transform(full: Optional[Config],
                   name: Union[str, Sequence[str]]) -> Optional[dict]:
    """The first transform of type ``name`` (scope prefixes ignored) in a
    config's test pipeline (``test_dataloader``, ``val_dataloader``, also
    wrapped datasets, then ``test_pipeline`` / ``val_pipeline``).

    ``name`` may be several types (e.g. ``('TwoHandCropAffine',
    'HandwiseCropAffine')``): the first transform of any of them."""
    if full is None:
        return None
    names = (name, ) if isinstance(name, str) else tuple(name)
    pipelines = []
    for key in ('test_dataloader', 'val_dataloader'):
        dataset = (full.get(key) or {}).get('dataset') or {}
        pipelines.append(dataset.get('pipeline'))
        pipelines.append((dataset.get('dataset') or {}).get('pipeline'))
    pipelines += [full.get('test_pipeline'), full.get('val_pipeline')]
    for pipeline in pipelines:
        for t in pipeline or []:
            if isinstance(t, dict) and str(t.get('type',
                                                 '')).split('.')[-1] in names:
                return t
    return None


# not a pytest test despite its name
test_transform.__test__ = False


def read_part_state_dict(path: str,
                         what: str,
                         owner: str = 'DetectThenReconstruct'
                         ) -> Dict[str, object]:
    """The weights of a part's checkpoint file (``module.`` removed).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: an empty, truncated or non-checkpoint file.
    """
    if '://' not in path and not osp.isfile(path):
        raise FileNotFoundError(
            f'{owner}: {what} checkpoint {path!r} does not exist')
    return read_state_dict(path, f'{owner}: {what} checkpoint')


def load_part(module,
              path: str,
              what: str,
              prefix: str,
              allow_missing: Sequence[str] = (),
              owner: str = 'DetectThenReconstruct') -> None:
    """Load a separately trained part (or the part of a combined checkpoint,
    keys ``<prefix>...``) into ``module`` strictly: every weight of the part
    must be there except those under ``allow_missing``; unused weights of
    the file are logged. ``init_weights()`` leaves the module alone
    afterwards.

    Raises:
        CheckpointError: missing weights or other shapes (named).
    """
    state = strip_prefix(read_part_state_dict(path, what, owner), prefix)
    try:
        unexpected = load_state_dict_strict(module, state, path, what,
                                            allow_missing)
    except CheckpointError as e:
        raise CheckpointError(f'{owner}: {e}') from e
    if unexpected:
        print_log(
            f'{owner}: {len(unexpected)} weight(s) of {path!r} are not used '
            f'by the {what} (e.g. {unexpected[:3]})',
            logger='current',
            level=logging.WARNING)
    module._is_init = True  # init_weights() must not overwrite them
    print_log(f'{owner}: {what} weights loaded from {path}', logger='current')


def merge_part_checkpoints(detector_checkpoint: str,
                           reconstructor_checkpoint: str,
                           out_file: str) -> str:
    """Write one checkpoint of a ``DetectThenReconstruct`` from the
    checkpoints of its separately trained parts.

    The keys become ``detector.<key>`` and ``reconstructor.<key>``, so the
    file loads with ``tools/test.py CONFIG OUT_FILE`` (``load_from``) or
    ``mmengine.runner.load_checkpoint(model, OUT_FILE)``.

    Args:
        detector_checkpoint (str): e.g. a ``configs/rtmdet_hand`` run's
            checkpoint (EMA weights when trained with the EMA hook).
        reconstructor_checkpoint (str): e.g. a ``configs/a2p`` run's.
        out_file (str): where to write.

    Returns:
        str: ``out_file``.
    """
    state = {}
    for prefix, path, what in (('detector.', detector_checkpoint, 'detector'),
                               ('reconstructor.', reconstructor_checkpoint,
                                'reconstructor')):
        part = strip_prefix(read_part_state_dict(path, what), prefix)
        state.update({prefix + k: v for k, v in part.items()})
    meta = dict(
        detector_checkpoint=osp.abspath(detector_checkpoint),
        reconstructor_checkpoint=osp.abspath(reconstructor_checkpoint))
    # atomic (temporary file, fsync, rename): a kill never leaves a partial
    # out_file, and an earlier out_file stays until the new one is complete
    from .fileio import atomic_torch_save
    atomic_torch_save(dict(state_dict=state, meta=meta), out_file)
    return out_file

#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Parameters of a config's model per top-level submodule.

For each top-level submodule (backbone, neck, head, refiner, ...) prints the
trainable and frozen (``requires_grad=False``) parameter counts. Parameters
under an attribute named ``teachers`` / ``teacher`` (training-only prior
extractors) get rows of their own and are left out of the **deployed**
count, the size of the inference model; modules kept outside the module
tree (built on demand, not in ``state_dict``, e.g. the teachers of
``FusionAlignmentNeck``) are not parameters of the model and are listed
apart when they exist. The model is built as configured; when that needs
files that are absent (teacher checkpoints, MANO files) or with
``--test-mode``, its inference version is built instead (see
``get_flops.py``'s ``test_mode_model_cfg``)::

    python tools/analysis_tools/count_params.py CONFIG [--test-mode]
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, List, Tuple

from mmengine.config import Config, DictAction
from torch import nn

TEACHER_ATTRS = ('teachers', 'teacher')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Parameters per submodule, trainable vs frozen')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--test-mode',
        action='store_true',
        help='build the inference model (teachers dropped from the config, '
        'as get_flops.py does); by default the model is built as '
        'configured, and in test mode only when that needs files that are '
        'missing (teacher checkpoints, MANO files)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    return parser.parse_args(argv)


def _group(name: str) -> Tuple[str, bool]:
    """Row of a parameter: its top-level module, or the path up to a
    ``teachers`` attribute; and whether it is a teacher's."""
    parts = name.split('.')
    for i, p in enumerate(parts[:-1]):
        if p in TEACHER_ATTRS:
            return '.'.join(parts[:i + 1]), True
    return (parts[0] if len(parts) > 1 else '(model itself)'), False


def _unregistered(model: nn.Module) -> Dict[str, int]:
    """Modules held in plain attributes (lists, dicts, ...) of the model's
    modules, outside the module tree: name -> parameter count."""
    found = OrderedDict()
    registered = {id(m) for m in model.modules()}
    for prefix, module in model.named_modules():
        for attr, value in vars(module).items():
            if attr in ('_modules', '_parameters', '_buffers'):
                continue
            items = []
            if isinstance(value, nn.Module):
                items = [(attr, value)]
            elif isinstance(value, (list, tuple)):
                items = [(f'{attr}[{i}]', v) for i, v in enumerate(value)]
            elif isinstance(value, dict):
                items = [(f'{attr}[{k!r}]', v) for k, v in value.items()]
            for key, mod in items:
                if isinstance(mod, nn.Module) and id(mod) not in registered:
                    name = f'{prefix}.{key}' if prefix else key
                    found[name] = sum(p.numel() for p in mod.parameters())
    return found


def count_parameters(model: nn.Module) -> dict:
    """Parameter counts of ``model``.

    Returns:
        dict: ``rows`` (list of dicts: ``name``, ``type``, ``trainable``,
        ``frozen``, ``teacher``), ``total``, ``trainable``, ``frozen``,
        ``teachers``, ``deployed`` (total minus teachers) and
        ``unregistered`` (``{name: count}``, not included anywhere else).
    """
    rows: Dict[str, dict] = OrderedDict()
    children = dict(model.named_children())
    for name in children:
        rows[name] = dict(
            name=name,
            type=type(children[name]).__name__,
            trainable=0,
            frozen=0,
            teacher=name in TEACHER_ATTRS)
    seen = set()
    for pname, param in model.named_parameters():
        if id(param) in seen:  # shared parameters count once
            continue
        seen.add(id(param))
        group, is_teacher = _group(pname)
        if group not in rows:
            mod_type = ''
            if group != '(model itself)':
                mod_type = type(model.get_submodule(group)).__name__
            rows[group] = dict(
                name=group,
                type=mod_type,
                trainable=0,
                frozen=0,
                teacher=is_teacher)
        key = 'trainable' if param.requires_grad else 'frozen'
        rows[group][key] += param.numel()
    out_rows = list(rows.values())
    trainable = sum(r['trainable'] for r in out_rows)
    frozen = sum(r['frozen'] for r in out_rows)
    teachers = sum(r['trainable'] + r['frozen'] for r in out_rows
                   if r['teacher'])
    total = trainable + frozen
    return dict(
        rows=out_rows,
        total=total,
        trainable=trainable,
        frozen=frozen,
        teachers=teachers,
        deployed=total - teachers,
        unregistered=_unregistered(model))


def _fmt(n: int) -> str:
    for div, unit in ((1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if n >= div:
            return f'{n:,} ({n / div:.2f}{unit})'
    return f'{n:,}'


def format_table(result: dict, title: str = '') -> str:
    header = ('module', 'type', 'trainable', 'frozen', 'total')
    lines: List[Tuple[str, ...]] = []
    for r in result['rows']:
        name = r['name'] + (' [teacher]' if r['teacher'] else '')
        lines.append((name, r['type'], _fmt(r['trainable']), _fmt(r['frozen']),
                      _fmt(r['trainable'] + r['frozen'])))
    footer = [
        ('all registered', '', _fmt(result['trainable']),
         _fmt(result['frozen']), _fmt(result['total'])),
        ('deployed (no teachers)', '', '', '', _fmt(result['deployed'])),
    ]
    widths = [
        max(len(x[i]) for x in [header] + lines + footer)
        for i in range(len(header))
    ]
    sep = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

    def fmt_row(cells):
        out = []
        for i, (c, w) in enumerate(zip(cells, widths)):
            out.append(f' {c:<{w}} ' if i < 2 else f' {c:>{w}} ')
        return '|' + '|'.join(out) + '|'

    text = ([title] if title else []) + [sep, fmt_row(header), sep]
    text += [fmt_row(x) for x in lines] + [sep]
    text += [fmt_row(x) for x in footer] + [sep]
    if result['unregistered']:
        text.append('not registered as submodules (not in state_dict, not '
                    'counted above):')
        text += [
            f'  {k}: {_fmt(v)}' for k, v in result['unregistered'].items()
        ]
    return '\n'.join(text)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mmengine.registry import MODELS, init_default_scope

    from mmhand2p.utils import register_all_modules
    register_all_modules(init_default_scope=False)

    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmhand2p'))
    from mmhand2p.apis import build_inference_model as build_test_model
    if args.test_mode:
        model, notes = build_test_model(cfg)
    else:
        try:
            model, notes = MODELS.build(cfg.model), []
        except FileNotFoundError as e:
            model, notes = build_test_model(cfg)
            notes.insert(
                0, f'the configured model cannot be built here ({e}); '
                'counting its inference model')
    for note in notes:
        print(f'note: {note}', file=sys.stderr)
    result = count_parameters(model)
    result['notes'] = notes
    print(
        format_table(result,
                     f'{osp.basename(args.config)}: {type(model).__name__}'))
    return result


if __name__ == '__main__':
    main()

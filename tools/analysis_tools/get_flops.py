#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""FLOPs and parameters of a config's model at a given input size.

Builds the inference model of ``cfg.model`` in eval mode (training-only
teachers are dropped from the config, see :func:`test_mode_model_cfg`),
feeds a random ``(1, C, H, W)`` network input (already normalised: the data
preprocessor is not counted) through ``forward(mode='tensor')`` (the network
up to the head's raw outputs: decoding, the MANO layer and a test-time
refiner are not counted) and counts with mmengine's
``get_model_complexity_info`` (fvcore's convention: one fused multiply-add =
one FLOP; operators without a counting rule are skipped with a warning)::

    python tools/analysis_tools/get_flops.py CONFIG --shape 256 256
    python tools/analysis_tools/get_flops.py CONFIG --shape 256 --show-table
"""
import argparse
import inspect
import os.path as osp
import sys
from typing import Any, List

from mmengine.config import Config, DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='FLOPs and parameters of a model at an input size')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[256, 256],
        help='network input height and width (one value: square); default '
        '256 256')
    parser.add_argument(
        '--in-channels', type=int, default=3, help='input channels')
    parser.add_argument(
        '--show-table',
        action='store_true',
        help='also print mmengine\'s per-module FLOPs table')
    parser.add_argument(
        '--show-arch',
        action='store_true',
        help='also print the model with FLOPs per module')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if len(args.shape) == 1:
        args.shape = [args.shape[0], args.shape[0]]
    elif len(args.shape) != 2:
        parser.error(f'--shape takes H W or one size, got {args.shape}')
    return args


def _flatten_tensors(out: Any) -> List[Any]:
    """Every tensor of a nested output (dicts, sequences, data elements),
    so that jit tracing sees plain tensors."""
    import torch
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _flatten_tensors(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in _flatten_tensors(v)]
    if hasattr(out, 'to_dict'):  # mmengine BaseDataElement
        return _flatten_tensors(out.to_dict())
    return []


from mmhand2p.apis.inference_model import \
    build_inference_model as build_test_model  # noqa: E402
from mmhand2p.apis.inference_model import \
    inference_model_cfg as test_mode_model_cfg  # noqa: E402,F401


def tensor_forward(model):
    """Make ``model(x)`` run ``forward(x, mode='tensor')`` (when the model
    has modes) and return a tuple of tensors."""
    forward = model.forward
    has_mode = 'mode' in inspect.signature(forward).parameters

    def _forward(inputs):
        out = forward(inputs, mode='tensor') if has_mode else forward(inputs)
        tensors = _flatten_tensors(out)
        if not tensors:
            raise RuntimeError(
                f'{type(model).__name__}.forward(mode="tensor") returned no '
                'tensor; nothing to count')
        return tuple(tensors)

    model.forward = _forward
    return model


def _table(rows) -> str:
    wk = max(len(k) for k, _ in rows)
    wv = max(len(v) for _, v in rows)
    line = '+' + '-' * (wk + 2) + '+' + '-' * (wv + 2) + '+'
    body = [f'| {k:<{wk}} | {v:>{wv}} |' for k, v in rows]
    return '\n'.join([line, *body, line])


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch
    from mmengine.analysis import get_model_complexity_info

    from mmhand2p.utils import register_all_modules
    register_all_modules(init_default_scope=False)

    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    model, notes = build_test_model(cfg)
    for note in notes:
        print(f'note: {note}', file=sys.stderr)
    model = tensor_forward(model)
    h, w = args.shape
    shape = (1, args.in_channels, h, w)
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device('cpu')
    inputs = (torch.randn(shape, device=device), )
    with torch.no_grad():
        info = get_model_complexity_info(
            model,
            inputs=inputs,
            show_table=args.show_table,
            show_arch=args.show_arch)
    rows = [('config', osp.basename(args.config)),
            ('model', type(model).__name__), ('input shape', str(shape)),
            ('FLOPs', f"{info['flops_str']} ({info['flops']:,})"),
            ('params', f"{info['params_str']} ({info['params']:,})"),
            ('activations', info['activations_str'])]
    print(_table(rows))
    if args.show_table:
        print(info['out_table'])
    if args.show_arch:
        print(info['out_arch'])
    print(
        'FLOPs count one multiply-add as one operation; params count every '
        'registered parameter (see count_params.py for the split).',
        file=sys.stderr)
    return dict(info, input_shape=shape)


if __name__ == '__main__':
    main()

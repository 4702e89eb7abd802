#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Assemble the demo's embedded checkpoint from three separately trained
parts (docs/model_zoo.md says how each was trained).

The detector (a ``configs/rtmdet_hand`` run), the stage-1 reconstructor
(a ``configs/a2p`` run) and the diffusion refiner (a ``configs/diffusion``
refiner run) become one ``DetectThenReconstruct`` state dict (keys
``detector.*``, ``reconstructor.*``, ``reconstructor.refiner.*``), floating
tensors stored as float16 (they are cast back to float32 on load). The
result must load *strictly* into the model of ``--config``: a key that is
missing or left over, or a shape that differs, stops the tool before
anything is written. The file is written atomically
(:func:`mmhand2p.utils.fileio.atomic_torch_save`: a temporary name in the
output folder, ``fsync``, rename), so a kill leaves the previous file or the
new one, never a partial file::

    python tools/misc/make_demo_checkpoints.py \\
        --detector work_dirs/rtmdet_hand_nano/iter_N.pth \\
        --reconstructor work_dirs/a2p_res18w32_demo/iter_N.pth \\
        --refiner work_dirs/refiner_syn/iter_10000.pth \\
        --out demo/resources/checkpoints/hand2p_default_synthetic.pth
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'configs/detect_reconstruct/'
                          'hand2p_default_synthetic.py')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--detector', required=True, help='detector checkpoint')
    p.add_argument(
        '--reconstructor', required=True, help='stage-1 checkpoint')
    p.add_argument('--refiner', help='refiner checkpoint (optional)')
    p.add_argument('--config', default=DEFAULT_CONFIG)
    p.add_argument('--out', required=True)
    p.add_argument(
        '--fp32', action='store_true', help='keep float32 (default fp16)')
    return p.parse_args(argv)


def assemble(detector: str, reconstructor: str, refiner=None) -> OrderedDict:
    """One ``DetectThenReconstruct`` state dict from the parts' files."""
    from mmhand2p.utils.config_parts import read_part_state_dict as read_state
    out = OrderedDict()
    for k, v in read_state(detector, 'detector').items():
        out['detector.' + k] = v
    for k, v in read_state(reconstructor, 'reconstructor').items():
        if k.startswith('refiner.'):
            continue  # the refiner comes from its own file
        out['reconstructor.' + k] = v
    if refiner is not None:
        for k, v in read_state(refiner, 'refiner').items():
            out['reconstructor.refiner.' + k] = v
    return out


def check_strict(state: dict, config: str) -> int:
    """Load ``state`` strictly into the config's inference model.

    Returns:
        int: the number of parameters and buffers loaded.
    """
    from mmengine.config import Config

    from mmhand2p.apis import build_inference_model
    from mmhand2p.utils import register_all_modules
    register_all_modules()
    model, _ = build_inference_model(Config.fromfile(config))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = [
        f'{k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)}'
        for k in set(state) & set(expected)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or extra or shapes:
        raise RuntimeError(
            f'the parts do not match the model of {config}:\n'
            f'  missing ({len(missing)}): {missing[:8]}\n'
            f'  unexpected ({len(extra)}): {extra[:8]}\n'
            f'  shape mismatches: {shapes[:8]}')
    model.load_state_dict(state, strict=True)
    return sum(v.numel() for v in state.values())


def main(argv=None) -> int:
    args = parse_args(argv)
    state = assemble(args.detector, args.reconstructor, args.refiner)
    n = check_strict(state, args.config)
    if not args.fp32:
        state = OrderedDict(
            (k, v.half() if v.is_floating_point() else v)
            for k, v in state.items())
    meta = dict(
        config=osp.relpath(osp.abspath(args.config), REPO),
        parts=dict(
            detector=args.detector,
            reconstructor=args.reconstructor,
            refiner=args.refiner),
        dtype='float32' if args.fp32 else 'float16')
    from mmhand2p.utils.fileio import atomic_torch_save
    atomic_torch_save(dict(state_dict=state, meta=meta), args.out)
    size = osp.getsize(args.out) / 2**20
    print(f'{args.out}: {n / 1e6:.2f}M values, {size:.1f} MiB '
          f'({meta["dtype"]})')
    return 0


if __name__ == '__main__':
    sys.exit(main())

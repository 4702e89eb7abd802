#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Turn a training checkpoint into a release file.

Keeps only ``state_dict`` (the weights; with ``EMAHook`` these are the EMA
weights) and ``meta`` (config, dataset_meta, iteration...), drops the
optimizer, parameter schedulers, message hub and the EMA hook's copy of the
raw weights, optionally stores floating-point tensors as float16, and names
the file after the first 8 hex digits of its sha256, as OpenMMLab's release
files are (``name-1a2b3c4d.pth``)::

    python tools/model_converters/publish_model.py \\
        work_dirs/rtmdet_hand_nano/iter_300.pth \\
        work_dirs/rtmdet_hand_nano/published/rtmdet-nano_hand.pth --fp16

writes ``work_dirs/rtmdet_hand_nano/published/rtmdet-nano_hand-<sha8>.pth``.
A float16 file loads into a float32 model as usual
(``mmengine.runner.load_checkpoint``, ``tools/test.py``, ``load_from``): the
values are cast back to the parameters' dtype on copy. The file is written
through :func:`mmhand2p.utils.fileio.atomic_write` (a temporary name in the
output folder, ``fsync``, rename): a kill at any moment leaves either no
release file or a complete one, and nothing else is removed or replaced.
"""
import argparse
import hashlib
import io
import os
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, Optional

import torch

try:
    from mmhand2p.utils.fileio import atomic_write_bytes
except ImportError:  # running from a source checkout without installing
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    from mmhand2p.utils.fileio import atomic_write_bytes

#: the checkpoint entries a release keeps
KEPT_KEYS = ('state_dict', 'meta')


def _human_size(num_bytes: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    if num_bytes < 1024:
        return f'{num_bytes} B'
    size = float(num_bytes)
    for unit in ('KiB', 'MiB', 'GiB'):
        size /= 1024
        if size < 1024 or unit == 'GiB':
            break
    return f'{size:.1f} {unit}'


def load_training_checkpoint(path: str) -> dict:
    """``torch.load`` a training checkpoint with ``weights_only=True``.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        KeyError: it has no ``state_dict``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} not found: give the .pth '
                                'written by tools/train.py')
    # allow-lists what mmengine's message hub pickles (HistoryBuffer, numpy)
    from mmhand2p.engine import register_checkpoint_safe_globals
    register_checkpoint_safe_globals()
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt:
        keys = list(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise KeyError(f'{path} has no "state_dict" (found {keys}); is it a '
                       'checkpoint written by mmengine?')
    return ckpt


def strip_checkpoint(ckpt: dict, fp16: bool = False) -> dict:
    """The release subset of a training checkpoint.

    Args:
        ckpt (dict): as saved by mmengine (``state_dict``, ``meta``,
            ``optimizer``, ``message_hub``, ``param_schedulers``,
            ``ema_state_dict``...).
        fp16 (bool): store floating-point tensors of ``state_dict`` as
            float16 (integer buffers such as BN's ``num_batches_tracked``
            keep their dtype).

    Returns:
        dict: ``{'state_dict': ..., 'meta': ...}`` (``meta`` only if
        present); tensors are new objects, ``ckpt`` is not modified.
    """
    state_dict: Dict[str, torch.Tensor] = OrderedDict()
    for key, value in ckpt['state_dict'].items():
        if fp16 and torch.is_tensor(value) and value.is_floating_point():
            value = value.to(torch.float16)
        state_dict[key] = value
    out = {'state_dict': state_dict}
    if 'meta' in ckpt:
        out['meta'] = dict(ckpt['meta'])
        if fp16:
            out['meta']['publish_dtype'] = 'float16'
    return out


def publish_checkpoint(in_file: str,
                       out_file: str,
                       fp16: bool = False,
                       verbose: bool = True) -> str:
    """Write the release file of ``in_file``; return its final path.

    Args:
        in_file (str): training checkpoint.
        out_file (str): output path without the hash, e.g.
            ``published/rtmdet-nano_hand.pth``; ``-<sha256[:8]>`` is inserted
            before the extension (``.pth`` when it has none).
        fp16 (bool): store floating-point weights as float16.
        verbose (bool): print the sizes before and after.

    Returns:
        str: the written file, ``<out_file stem>-<sha8>.pth``.
    """
    ckpt = load_training_checkpoint(in_file)
    released = strip_checkpoint(ckpt, fp16=fp16)
    dropped = sorted(k for k in ckpt if k not in KEPT_KEYS)

    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    stem, ext = osp.splitext(osp.basename(out_file))
    ext = ext or '.pth'
    # the name holds the hash of the bytes: serialise first, then write
    # them atomically (temporary file in out_dir, fsync, rename)
    with io.BytesIO() as buf:
        torch.save(released, buf)
        data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    final = osp.join(out_dir, f'{stem}-{sha[:8]}{ext}')
    atomic_write_bytes(final, data)
    del data
    if verbose:
        before, after = osp.getsize(in_file), osp.getsize(final)
        print(f'{in_file}: {_human_size(before)}')
        print(f'dropped: {", ".join(dropped) if dropped else "nothing"}'
              f'{"; weights stored as float16" if fp16 else ""}')
        print(f'{final}: {_human_size(after)} '
              f'({100.0 * after / max(before, 1):.1f}% of the input), '
              f'sha256 {sha}')
    return final


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Strip a training checkpoint for release (state_dict + '
        'meta), optionally in float16, named with its sha256 prefix')
    parser.add_argument('in_file', help='training checkpoint (.pth)')
    parser.add_argument(
        'out_file',
        help='output path without the hash, e.g. published/model.pth '
        '(written as published/model-<sha8>.pth)')
    parser.add_argument(
        '--fp16',
        action='store_true',
        help='store floating-point weights as float16 (half the size; '
        'loads into float32 models unchanged)')
    return parser.parse_args(argv)


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    try:
        publish_checkpoint(args.in_file, args.out_file, fp16=args.fp16)
    except (FileNotFoundError, KeyError) as e:
        print(f'error: {e.args[0] if e.args else e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

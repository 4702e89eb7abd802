#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Two-hand 3D reconstruction of images, folders and videos.

With no arguments it runs the shipped model on the shipped sample photo::

    python demo/image_demo.py

and otherwise on whatever it is given (``docs/demo.md``)::

    python demo/image_demo.py photo.jpg more_photos/ clip.mp4 \\
        --config configs/detect_reconstruct/hand2p_default_synthetic.py \\
        --checkpoint demo/resources/checkpoints/hand2p_default_synthetic.pth \\
        --out-dir outputs/demo

Per image it writes ``{stem}_overlay.jpg``, ``{stem}_side.jpg``,
``{stem}_hand{i}_{right|left}.obj`` and ``{stem}.json`` into ``--out-dir``
and prints what it found and how long each stage took. An image that fails
(unreadable, not an image...) is reported, leaves no files (and the files
of an earlier run as they were), and makes the exit code 1 once the others
are done. Bad options, an output folder that cannot be written, a missing,
broken or mismatching checkpoint stop it before any image is processed,
with exit code 2.
"""
import argparse
import math
import os.path as osp
import sys
from typing import List, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the embedded defaults, relative to the repository root (any cwd works)
DEFAULT_INPUT = 'demo/resources/sample_two_hands.jpg'
DEFAULT_CONFIG = 'configs/detect_reconstruct/hand2p_default_synthetic.py'
DEFAULT_CHECKPOINT = ('demo/resources/checkpoints/'
                      'hand2p_default_synthetic.pth')
DEFAULT_OUT_DIR = 'outputs/demo'

#: exit codes
EXIT_OK, EXIT_IMAGE_FAILED, EXIT_SETUP = 0, 1, 2


def _repo_path(rel: str) -> str:
    return osp.join(REPO_ROOT, rel)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description='mmhand2p demo: reconstruct both hands (MANO meshes, 3D '
        'joints) in images, folders and videos',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument(
        'inputs',
        nargs='*',
        help='image files, folders (their images and videos) or video '
        f'files; none: the sample photo {DEFAULT_INPUT}')
    p.add_argument(
        '--config',
        default=None,
        help=f'model config; default: {DEFAULT_CONFIG}')
    p.add_argument(
        '--checkpoint',
        default=None,
        help='model weights; default: '
        f'{DEFAULT_CHECKPOINT} with the default config, none (random '
        'weights, with a warning) with another config')
    p.add_argument('--device', default='cpu', help="e.g. 'cpu', 'cuda:0'")
    p.add_argument(
        '--no-refine',
        action='store_true',
        help='skip the test-time refinement of penetrating hands')
    p.add_argument(
        '--det-score-thr',
        type=float,
        default=None,
        help="minimal detection score (default: the config's)")
    p.add_argument(
        '--out-dir', default=DEFAULT_OUT_DIR, help='where outputs go')
    p.add_argument(
        '--no-side-view', action='store_true', help='no side-view picture')
    p.add_argument('--no-mesh', action='store_true', help='no OBJ mesh files')
    p.add_argument(
        '--batch-size', type=int, default=1, help='images per model call')
    p.add_argument(
        '--intrinsics',
        type=float,
        nargs=4,
        metavar=('FX', 'FY', 'CX', 'CY'),
        default=None,
        help='camera intrinsics (pixels) of every input; default: assumed '
        "from the image size (the config's focal_factor)")
    p.add_argument(
        '--max-vis-size',
        type=int,
        default=1280,
        help='longer side of the written pictures (larger photos are '
        'downscaled for drawing only); 0: no limit')
    p.add_argument(
        '--no-strict',
        action='store_true',
        help='load a checkpoint that does not match the config exactly '
        '(only the matching weights; the others are listed in a warning)')
    args = p.parse_args(argv)
    for message in _check_args(args):
        p.error(message)  # exit code 2, with the usage
    return args


def _check_args(args: argparse.Namespace) -> List[str]:
    """What is wrong with the numeric options (empty: nothing)."""
    errors = []
    if args.batch_size < 1:
        errors.append(f'--batch-size must be >= 1, got {args.batch_size}')
    if args.max_vis_size < 0:
        errors.append('--max-vis-size must be >= 0 (pixels; 0: no limit), '
                      f'got {args.max_vis_size}')
    thr = args.det_score_thr
    if thr is not None and not 0.0 <= thr <= 1.0:  # NaN fails too
        errors.append('--det-score-thr must be a detection score in [0, 1],'
                      f' got {thr:g}')
    if args.intrinsics is not None:
        fx, fy, cx, cy = args.intrinsics
        if not all(math.isfinite(v) for v in args.intrinsics):
            errors.append('--intrinsics FX FY CX CY must be finite numbers '
                          f'(pixels), got {fx:g} {fy:g} {cx:g} {cy:g}')
        elif fx <= 0 or fy <= 0:
            errors.append('--intrinsics: the focal lengths FX and FY must be '
                          f'> 0 (pixels), got FX={fx:g} FY={fy:g}')
    return errors


def _check_device(device: str) -> Optional[str]:
    """An error message if ``device`` cannot be used, else None."""
    import torch
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        return f"--device {device!r} is not a device ({e}); use e.g. 'cpu' " \
            "or 'cuda:0'"
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            return (f'--device {device}: CUDA is not available on this '
                    "machine; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return (f'--device {device}: there are '
                    f'{torch.cuda.device_count()} CUDA device(s) (0-'
                    f'{torch.cuda.device_count() - 1})')
    return None


def _resolve(args: argparse.Namespace):
    """Inputs, config and checkpoint with the defaults filled in, or an
    error message (str) if a default is missing."""
    inputs = list(args.inputs)
    if not inputs:
        default_input = _repo_path(DEFAULT_INPUT)
        if not osp.exists(default_input):
            return (f'the sample photo {default_input} is missing: give '
                    'images to process, or regenerate it with '
                    'python tools/misc/make_demo_sample.py')
        inputs = [default_input]
    config, checkpoint = args.config, args.checkpoint
    if config is None:
        config = _repo_path(DEFAULT_CONFIG)
        if not osp.isfile(config):
            return (f'the default config {config} does not exist: pass '
                    '--config (e.g. a file in configs/detect_reconstruct/)')
        if checkpoint is None:
            checkpoint = _repo_path(DEFAULT_CHECKPOINT)
            if not osp.isfile(checkpoint):
                return (f'the default checkpoint {checkpoint} does not '
                        'exist: pass --checkpoint (weights for '
                        f'{DEFAULT_CONFIG}, see docs/demo.md)')
    elif not osp.isfile(config):
        return f'config file not found: {config}'
    if checkpoint is not None and not osp.isfile(checkpoint):
        return f'checkpoint file not found: {checkpoint}'
    return inputs, config, checkpoint


def _summary(rec: dict, out_dir: str) -> str:
    """Lines printed for one processed image."""
    pred = rec['prediction']
    hands = pred['hands']
    label = rec['name'] if rec['frame'] is None else \
        f"{rec['name']} (frame {rec['frame']})"
    if hands:
        found = ', '.join(f"{h['handedness']} {h['score']:.2f}" +
                          (' refined' if h['refined'] else '') for h in hands)
        text = (f'{label}: {len(hands)} hand(s) [{found}] in '
                f"{len(pred['pairs'])} pair(s)")
    else:
        text = f'{label}: no hands found'
    t = pred['timing_ms']
    parts = ' | '.join(f'{k} ' + ('-' if t[k] is None else f'{t[k]:.1f}')
                       for k in ('detector', 'reconstruction', 'refinement',
                                 'rendering', 'total'))
    lines = [text, f'    timing (ms): {parts}']
    if rec['files']:
        names = ', '.join(osp.basename(f) for f in rec['files'])
        lines.append(f'    wrote {names} to {out_dir}')
    if pred['camera']['assumed']:
        k = pred['camera']['intrinsics']
        lines.append(f'    camera assumed: focal {k[0][0]:.1f} px, principal '
                     f'point ({k[0][2]:.1f}, {k[1][2]:.1f})')
    return '\n'.join(lines)


def _one_line(err: BaseException) -> str:
    return ' '.join(str(err).split())


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; returns the exit code (0 ok, 1 some image failed, 2
    setup error; a bad option exits with 2 from argparse)."""
    for stream in (sys.stdout, sys.stderr):  # any file name can be printed
        if hasattr(stream, 'reconfigure'):
            stream.reconfigure(errors='backslashreplace')
    args = parse_args(argv)
    resolved = _resolve(args)
    if isinstance(resolved, str):
        print(f'error: {resolved}', file=sys.stderr)
        return EXIT_SETUP
    inputs, config, checkpoint = resolved

    # everything that can be checked is checked before the model is built
    from mmhand2p.apis.io import check_out_dir
    try:
        out_dir = check_out_dir(args.out_dir)
    except ValueError as e:
        print(f'error: --out-dir: {_one_line(e)}', file=sys.stderr)
        return EXIT_SETUP
    message = _check_device(args.device)
    if message is not None:
        print(f'error: {message}', file=sys.stderr)
        return EXIT_SETUP
    if checkpoint is None:
        print(
            'warning: no --checkpoint: the model has random weights and its '
            'outputs are meaningless',
            file=sys.stderr)

    import numpy as np

    from mmhand2p.apis import Hand2PInferencer
    from mmhand2p.utils.checkpoint import CheckpointError
    try:
        inferencer = Hand2PInferencer(
            config,
            weights=checkpoint,
            device=args.device,
            refine=not args.no_refine,
            det_score_thr=args.det_score_thr,
            batch_size=args.batch_size,
            show_progress=False,
            max_vis_size=args.max_vis_size or None,
            strict=not args.no_strict)
    except CheckpointError as e:
        print(
            f'error: cannot load the checkpoint: {_one_line(e)}',
            file=sys.stderr)
        return EXIT_SETUP
    except (FileNotFoundError, ValueError, KeyError, TypeError,
            RuntimeError) as e:
        print(
            f'error: cannot build the model: {_one_line(e)}', file=sys.stderr)
        return EXIT_SETUP
    intrinsics = None
    if args.intrinsics is not None:
        fx, fy, cx, cy = args.intrinsics
        intrinsics = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    done = failed = 0
    for rec in inferencer.iterate(
            inputs,
            out_dir=out_dir,
            save_mesh=not args.no_mesh,
            save_json=True,
            side_view=not args.no_side_view,
            skip_errors=True,
            cam_intrinsics=intrinsics):
        if rec['error'] is not None:
            failed += 1
            where = rec['path'] or rec['name']
            kept = ('no files written; earlier outputs of this image left '
                    'as they were') if rec['previous_kept'] else \
                'earlier outputs NOT all restored, see the error'
            print(f'FAILED {where}: {rec["error"]} ({kept})', file=sys.stderr)
            continue
        done += 1
        print(_summary(rec, out_dir), flush=True)
    if done + failed == 0:
        print(f'error: no images or videos found in {inputs}', file=sys.stderr)
        return EXIT_IMAGE_FAILED
    print(f'{done} image(s) processed, {failed} failed; outputs in {out_dir}')
    return EXIT_IMAGE_FAILED if failed else EXIT_OK


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Convert released MANO pickles (chumpy inside) into chumpy-free ``.npz``.

Usage::

    # both hands of a mano_v1_2/models folder, with the left shapedirs fix
    python tools/misc/convert_mano.py path/to/mano_v1_2/models data/mano
    # a single file
    python tools/misc/convert_mano.py MANO_RIGHT.pkl data/mano/MANO_RIGHT.npz

The outputs load with ``MANOLayer(model_path='data/mano')`` and with
``smplx.MANO('data/mano', ext='npz')``; chumpy is not needed. Either every
output is written or none is.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
import tempfile

try:
    from mmhand2p.conventions.mano_io import (ManoFileError, convert_mano_file,
                                              resolve_mano_path)
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    from mmhand2p.conventions.mano_io import (ManoFileError, convert_mano_file,
                                              resolve_mano_path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert MANO .pkl model files to chumpy-free .npz')
    parser.add_argument(
        'src', help='MANO_RIGHT.pkl / MANO_LEFT.pkl, or the folder with both')
    parser.add_argument(
        'dst', help='output .npz (for a file) or folder (for a folder)')
    parser.add_argument(
        '--no-left-fix',
        action='store_true',
        help='keep the released left shapedirs as they are (by default '
        'shapedirs[:, 0, :] of the left model is negated when it equals '
        'the right one, smplx issue 48)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if osp.isdir(args.src):
            jobs = []
            right = resolve_mano_path(args.src, is_rhand=True)
            left = resolve_mano_path(args.src, is_rhand=False)
            jobs.append((right, 'MANO_RIGHT.npz', None))
            jobs.append((left, 'MANO_LEFT.npz',
                         None if args.no_left_fix else right))
            out_dir = args.dst
        else:
            if not osp.isfile(args.src):
                raise FileNotFoundError(f'{args.src!r} does not exist')
            jobs = [(args.src, osp.basename(args.dst), None)]
            out_dir = osp.dirname(osp.abspath(args.dst))
        # write into a scratch folder first: all outputs or none
        os.makedirs(out_dir, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix='.convert_mano-', dir=out_dir)
        try:
            infos = [
                convert_mano_file(src, osp.join(scratch, name), right_src)
                for src, name, right_src in jobs
            ]
            for (src, name, _), info in zip(jobs, infos):
                os.replace(osp.join(scratch, name), osp.join(out_dir, name))
                note = ''
                if info['left_shapedirs_fixed']:
                    note = (' (left shapedirs equalled the right ones: '
                            'negated shapedirs[:, 0, :])')
                print(f'{src} -> {osp.join(out_dir, name)}: '
                      f'{info["num_vertices"]} vertices{note}')
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    except (FileNotFoundError, ManoFileError) as e:
        print(f'convert_mano: error: {e}', file=sys.stderr)
        if osp.isdir(args.dst) and not os.listdir(args.dst):
            os.rmdir(args.dst)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

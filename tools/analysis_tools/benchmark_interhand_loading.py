#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Time and peak memory of loading an InterHand2.6M-sized annotation set.

Writes (once) annotation files in the release format with as many images as
the 30 fps training split (1,361,062 by default) spread over ``--frames``
time instants, then loads them with ``InterHand26MDataset`` in a fresh
process and reports wall time and peak resident memory::

    python tools/analysis_tools/benchmark_interhand_loading.py \
        --out /tmp/ih_bench --images 1361062 --frames 20000
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

import numpy as np


def write_files(root: str, num_images: int, num_frames: int,
                num_cams: int) -> None:
    """Stream the JSON out (no giant Python object)."""
    ann_dir = osp.join(root, 'annotations', 'train')
    os.makedirs(ann_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    base = osp.join(ann_dir, 'InterHand2.6M_train_')
    cams = {
        'campos': {},
        'camrot': {},
        'focal': {},
        'princpt': {}
    }
    for c in range(num_cams):
        cams['campos'][str(400000 + c)] = (rng.normal(size=3) * 500).tolist()
        cams['camrot'][str(400000 + c)] = np.eye(3).tolist()
        cams['focal'][str(400000 + c)] = [1200.0, 1200.0]
        cams['princpt'][str(400000 + c)] = [256.0, 256.0]
    with open(base + 'camera.json', 'w') as f:
        json.dump({'0': cams}, f)
    world = (rng.normal(size=(42, 3)) * 50 + [0, 0, 1000]).round(3).tolist()
    with open(base + 'joint_3d.json', 'w') as f:
        f.write('{"0":{')
        for i in range(num_frames):
            f.write(('' if i == 0 else ',') + f'"{i}":' + json.dumps(
                dict(
                    world_coord=world,
                    joint_valid=[1] * 42,
                    hand_type='interacting',
                    hand_type_valid=1)))
        f.write('}}')
    valid = json.dumps([[1]] * 42)
    with open(base + 'data.json', 'w') as f:
        f.write('{"images":[')
        for i in range(num_images):
            frame, cam = i // num_cams % num_frames, i % num_cams
            f.write(('' if i == 0 else ',') + json.dumps(
                dict(
                    id=i,
                    file_name=f'Capture0/0000_seq/cam{400000 + cam}/'
                    f'image{frame}.jpg',
                    width=334,
                    height=512,
                    capture=0,
                    subject=0,
                    seq_name='0000_seq',
                    camera=str(400000 + cam),
                    frame_idx=frame)))
        f.write('],"annotations":[')
        for i in range(num_images):
            f.write(('' if i == 0 else ',') +
                    f'{{"id":{i},"image_id":{i},"bbox":[10.5,20.25,100.0,'
                    f'120.0],"joint_valid":{valid},"hand_type":"interacting",'
                    '"hand_type_valid":1}')
        f.write(']}')


def load_in_this_process(root: str) -> None:
    from mmhand2p.datasets import InterHand26MDataset
    t0 = time.time()
    ds = InterHand26MDataset(data_root=root, split='train', mano_file='')
    t1 = time.time()
    info = ds.get_data_info(len(ds) - 1)
    assert info['joints_3d'].shape == (2, 21, 3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    index_mb = sum(v.nbytes for v in ds._col.values()) / 1024**2
    print(json.dumps(
        dict(
            samples=len(ds),
            load_s=round(t1 - t0, 1),
            peak_rss_gb=round(peak, 2),
            index_mb=round(index_mb, 1))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='/tmp/ih_bench')
    parser.add_argument('--images', type=int, default=1361062)
    parser.add_argument('--frames', type=int, default=20000)
    parser.add_argument('--cams', type=int, default=80)
    parser.add_argument('--load-only', action='store_true')
    args = parser.parse_args()
    if args.load_only:
        load_in_this_process(args.out)
        return
    data = osp.join(args.out, 'annotations', 'train',
                    'InterHand2.6M_train_data.json')
    if not osp.isfile(data):
        print(f'writing {args.images} images / {args.frames} frames to '
              f'{args.out} ...', flush=True)
        t0 = time.time()
        write_files(args.out, args.images, args.frames, args.cams)
        print(f'written in {time.time() - t0:.0f} s '
              f'({osp.getsize(data) / 1024**2:.0f} MB data.json)', flush=True)
    print('loading in a fresh process ...', flush=True)
    subprocess.run([sys.executable, __file__, '--out', args.out,
                    '--load-only'], check=True)


if __name__ == '__main__':
    main()

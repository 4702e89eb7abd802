#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Write the demo's sample photo: two interacting hands, rendered.

The image is one frame of the synthetic two-hand set
(:func:`~mmhand2p.synthetic.generate_synthetic_interhand`, bundled
hand model, one camera), generated in a temporary folder and copied out, so
it is a function of ``--seed`` and ``--size`` only::

    python tools/misc/make_demo_sample.py                 # the shipped file
    python tools/misc/make_demo_sample.py --hands right --out /tmp/one.jpg

``demo/resources/sample_two_hands.jpg`` is
``python tools/misc/make_demo_sample.py`` (defaults: seed 0, 640x480, JPEG
quality 90). :func:`make_sample` also returns the ground-truth hand boxes
and the camera, which the tests use to force detections.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import tempfile
from typing import Dict, Optional, Tuple

import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_OUT = osp.join(REPO_ROOT, 'demo', 'resources', 'sample_two_hands.jpg')
DEFAULT_SEED = 0
#: --hands -> the generator's hand_type_probs (interacting, right, left)
HAND_PROBS = {
    'two': (1.0, 0.0, 0.0),
    'right': (0.0, 1.0, 0.0),
    'left': (0.0, 0.0, 1.0),
}


def make_sample(out_file: str,
                hands: str = 'two',
                seed: int = DEFAULT_SEED,
                image_size: Tuple[int, int] = (480, 640),
                quality: int = 90) -> Dict[str, Optional[np.ndarray]]:
    """Render one synthetic photo with two, one or no hands.

    Args:
        out_file (str): the JPEG to write (folders are created).
        hands (str): ``'two'`` (interacting), ``'right'``, ``'left'`` or
            ``'none'`` (a background of the generator's kind, no hands).
        seed (int): the image is a function of ``(seed, hands,
            image_size)``.
        image_size (tuple): ``(H, W)`` pixels.
        quality (int): JPEG quality.

    Returns:
        dict: ``path``; ``bboxes`` ``(N, 4)`` x1, y1, x2, y2 of the hands in
        pixels (COCO convention, from the generator's hand-box file) and
        ``labels`` ``(N,)`` (0 right, 1 left); ``intrinsics`` ``(3, 3)`` of
        the camera (None for ``'none'``).
    """
    import cv2
    h, w = int(image_size[0]), int(image_size[1])
    out_file = osp.abspath(out_file)
    os.makedirs(osp.dirname(out_file), exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    if hands == 'none':
        from mmhand2p.synthetic.generator import random_background
        rgb = random_background(np.random.default_rng(seed), h, w)
        if not cv2.imwrite(out_file, rgb[..., ::-1], params):
            raise IOError(f'could not write {out_file!r}')
        return dict(
            path=out_file,
            bboxes=np.zeros((0, 4)),
            labels=np.zeros(0, np.int64),
            intrinsics=None)
    if hands not in HAND_PROBS:
        raise ValueError(f"hands must be one of {list(HAND_PROBS) + ['none']}"
                         f', got {hands!r}')
    from mmhand2p.synthetic import generate_synthetic_interhand
    tmp = tempfile.mkdtemp(prefix='mmhand2p_demo_sample_')
    try:
        info = generate_synthetic_interhand(
            tmp,
            'test',
            num_frames=1,
            num_cams=1,
            image_size=(h, w),
            seed=seed,
            hand_type_probs=HAND_PROBS[hands])
        with open(info['files']['coco_boxes'], encoding='utf-8') as f:
            coco = json.load(f)
        with open(info['files']['camera'], encoding='utf-8') as f:
            cams = json.load(f)
        image = coco['images'][0]
        src = osp.join(tmp, 'images', 'test', image['file_name'])
        img = cv2.imread(src, cv2.IMREAD_COLOR)
        if not cv2.imwrite(out_file, img, params):
            raise IOError(f'could not write {out_file!r}')
        boxes = np.array([a['bbox'] for a in coco['annotations']],
                         np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        labels = np.array([a['category_id'] - 1 for a in coco['annotations']],
                          np.int64)
        # {capture: {'focal': {camera: [fx, fy]}, 'princpt': {...}, ...}}
        cam = next(iter(cams.values()))
        fx, fy = next(iter(cam['focal'].values()))
        cx, cy = next(iter(cam['princpt'].values()))
        k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dict(path=out_file, bboxes=boxes, labels=labels, intrinsics=k)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Write the demo sample image (synthetic hands)')
    p.add_argument('--out', default=DEFAULT_OUT, help='output JPEG')
    p.add_argument(
        '--hands',
        default='two',
        choices=['two', 'right', 'left', 'none'],
        help='two interacting hands, one hand or none')
    p.add_argument('--seed', type=int, default=DEFAULT_SEED)
    p.add_argument(
        '--size', default='640x480', help='WxH in pixels (default 640x480)')
    p.add_argument('--quality', type=int, default=90, help='JPEG quality')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    w, _, h = args.size.lower().partition('x')
    if not (w.isdigit() and h.isdigit()):
        print(
            f'--size expects WxH, e.g. 640x480; got {args.size!r}',
            file=sys.stderr)
        return 2
    info = make_sample(args.out, args.hands, args.seed, (int(h), int(w)),
                       args.quality)
    size_kb = osp.getsize(info['path']) / 1024.0
    print(f"wrote {info['path']} ({size_kb:.0f} KB, {len(info['labels'])} "
          'hands)')
    for box, label in zip(info['bboxes'], info['labels']):
        side = 'right' if label == 0 else 'left'
        print(f'  {side:5s} box x1 y1 x2 y2 = '
              f"{' '.join(f'{v:.1f}' for v in box)}")
    return 0


if __name__ == '__main__':
    sys.exit(main())

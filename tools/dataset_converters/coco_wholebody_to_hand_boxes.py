#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""COCO-format right/left hand boxes from COCO-WholeBody annotations.

COCO-WholeBody (Jin et al., ECCV 2020; format: github.com/jin-s13/
COCO-WholeBody, ``data_format.md``) stores the hands inside each *person*
annotation: ``righthand_box`` / ``lefthand_box`` (``[x, y, w, h]``, pixels)
with ``righthand_valid`` / ``lefthand_valid`` flags. mmdet's ``CocoDataset``
reads one box per annotation, so this tool writes one annotation per valid
hand, with the categories every hand-box file of mmhand2p uses:
``1 = right_hand``, ``2 = left_hand`` (labels 0 and 1 in a config with
``metainfo=dict(classes=('right_hand', 'left_hand'))``). Left and right are
the person's own (COCO-WholeBody's left-hand keypoints hang off the body's
``left_wrist``), the same as MANO's left and right hands.

All images are kept, also those without a valid hand (negatives for
evaluation; mmdet drops them from training with ``filter_empty_gt``). Hands
of crowd annotations (``iscrowd=1``) are left out::

    python tools/dataset_converters/coco_wholebody_to_hand_boxes.py \\
        data/coco/annotations/coco_wholebody_train_v1.0.json \\
        data/coco/annotations/coco_wholebody_train_v1.0_hand_boxes.json

(and the same for ``coco_wholebody_val_v1.0.json``).
"""
import argparse
import json
import os.path as osp
import sys
from typing import List, Optional

#: (side prefix in COCO-WholeBody, category id, category name)
HAND_SIDES = (('righthand', 1, 'right_hand'), ('lefthand', 2, 'left_hand'))
HAND_CATEGORIES = [
    dict(id=cat_id, name=name, supercategory='hand')
    for _, cat_id, name in HAND_SIDES
]


def _valid_box(box, min_size: float) -> Optional[List[float]]:
    """``[x, y, w, h]`` as floats if both sides are >= ``min_size`` and > 0.
    """
    if box is None or len(box) != 4:
        return None
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0 or w < min_size or h < min_size:
        return None
    return [x, y, w, h]


def wholebody_to_hand_boxes(wholebody: dict, min_size: float = 0.0) -> dict:
    """Convert a loaded COCO-WholeBody annotation dict.

    Args:
        wholebody (dict): the json of ``coco_wholebody_{split}_v1.0.json``
            (``images``, ``annotations`` with ``{left,right}hand_box`` and
            ``{left,right}hand_valid``).
        min_size (float): drop hand boxes with a side below this (pixels).

    Returns:
        dict: COCO detection json: ``images`` (all, unchanged),
        ``annotations`` (one per valid hand: ``bbox``, ``area``,
        ``category_id`` 1 right / 2 left, ``iscrowd`` 0, ``person_id`` = the
        id of the person annotation it came from), ``categories``.
    """
    for key in ('images', 'annotations'):
        if key not in wholebody:
            raise KeyError(f'not a COCO-WholeBody annotation file: no '
                           f'"{key}" (found {sorted(wholebody)})')
    annotations = []
    for person in wholebody['annotations']:
        if person.get('iscrowd', 0):
            continue
        for side, cat_id, _ in HAND_SIDES:
            if not person.get(f'{side}_valid', False):
                continue
            box = _valid_box(person.get(f'{side}_box'), min_size)
            if box is None:
                continue
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=person['image_id'],
                    category_id=cat_id,
                    bbox=box,
                    area=box[2] * box[3],
                    iscrowd=0,
                    person_id=person.get('id')))
    info = dict(wholebody.get('info') or {})
    info['description'] = ('right/left hand boxes from COCO-WholeBody '
                           '(tools/dataset_converters/'
                           'coco_wholebody_to_hand_boxes.py)')
    out = dict(
        info=info,
        images=wholebody['images'],
        annotations=annotations,
        categories=HAND_CATEGORIES)
    if 'licenses' in wholebody:
        out['licenses'] = wholebody['licenses']
    return out


def _write_json_atomic(obj: dict, path: str) -> None:
    from mmhand2p.utils.fileio import atomic_write_json
    atomic_write_json(path, obj)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description='COCO-format right/left hand boxes from COCO-WholeBody')
    p.add_argument('in_file', help='coco_wholebody_{train,val}_v1.0.json')
    p.add_argument('out_file', help='output COCO json')
    p.add_argument(
        '--min-size',
        type=float,
        default=0.0,
        help='drop hand boxes with a side below this, px (default: keep '
        'every valid box)')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.in_file):
        print(
            f'error: {args.in_file} not found (the COCO-WholeBody '
            'annotation file, e.g. coco_wholebody_train_v1.0.json)',
            file=sys.stderr)
        return 1
    with open(args.in_file) as f:
        wholebody = json.load(f)
    out = wholebody_to_hand_boxes(wholebody, min_size=args.min_size)
    _write_json_atomic(out, args.out_file)
    counts = {c['name']: 0 for c in HAND_CATEGORIES}
    names = {c['id']: c['name'] for c in HAND_CATEGORIES}
    for ann in out['annotations']:
        counts[names[ann['category_id']]] += 1
    print(f'{len(out["images"])} images, {counts} -> {args.out_file}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""COCO hand-box annotations of an InterHand2.6M-format set, for training an
mmdet (RTMDet) hand detector on the same images.

One box per present hand per image: the projected MANO mesh when the hand
has a MANO annotation, else its projected joints enlarged by 20%; clipped to
the image, in COCO's pixel convention. Category ids: ``1 = right_hand``,
``2 = left_hand`` (an mmdet config with ``metainfo=dict(classes=('right_hand',
'left_hand'))`` gets labels 0 = right, 1 = left). The generator writes this
file already (unless ``--no-coco-boxes``); this tool (re)makes it, also for
the real release (give its MANO model with ``--mano-model-path``)::

    python tools/dataset_converters/synthetic_to_coco_boxes.py \\
        --data-root data/synthetic_interhand --splits train,val,test

writes ``annotations/{split}/hand_boxes_{split}_coco.json``.
"""
import argparse
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--data-root', default='data/synthetic_interhand')
    p.add_argument(
        '--splits',
        default='train,val,test',
        help='comma-separated splits (default train,val,test)')
    p.add_argument(
        '--out',
        default=None,
        help='output file (one split only; default '
        'annotations/{split}/hand_boxes_{split}_coco.json)')
    p.add_argument(
        '--mano-model-path',
        default=None,
        help='MANO model of the annotations (default: the bundled model, '
        'the one the synthetic set is generated with)')
    p.add_argument(
        '--min-size',
        type=float,
        default=2.0,
        help='drop boxes with a side below this, px')
    p.add_argument(
        '--min-inside',
        type=float,
        default=0.2,
        help='drop boxes with less than this fraction inside the image')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    splits = [s.strip() for s in args.splits.split(',') if s.strip()]
    if args.out and len(splits) != 1:
        print('error: --out needs exactly one split', file=sys.stderr)
        return 1
    from xtcocotools.coco import COCO

    from mmhand2p.synthetic import write_coco_hand_boxes
    for split in splits:
        path = write_coco_hand_boxes(
            args.data_root,
            split,
            out_file=args.out,
            mano_model_path=args.mano_model_path,
            min_size=args.min_size,
            min_inside=args.min_inside)
        coco = COCO(path)
        per_cat = {
            c['name']: len(coco.getAnnIds(catIds=[c['id']]))
            for c in coco.loadCats(coco.getCatIds())
        }
        print(f'[{split}] {len(coco.getImgIds())} images, {per_cat} -> '
              f'{path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

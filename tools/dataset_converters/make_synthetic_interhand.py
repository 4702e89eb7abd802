#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Generate the synthetic two-hand set in InterHand2.6M's file format.

Renders MANO hands (the bundled hand model by default) with the package's CPU
renderer and writes images, segmentation / depth maps and the release's
annotation files (plus COCO hand boxes for a detector), one split at a time,
each atomically (``docs/datasets.md``)::

    python tools/dataset_converters/make_synthetic_interhand.py \\
        --out data/synthetic_interhand --splits train:500,val:50,test:50 \\
        --num-cams 4 --image-size 256 --seed 0 --workers 2

Split sizes are frames (time instants); each frame gives ``--num-cams``
images, so the command above writes 2000 / 200 / 200 images.
"""
import argparse
import os.path as osp
import sys
import time


def parse_splits(text: str):
    out = []
    for item in text.split(','):
        name, _, num = item.partition(':')
        name = name.strip()
        if name not in ('train', 'val', 'test') or not num.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f'--splits expects name:frames items with names train, val, '
                f'test, e.g. train:500,val:50; got {item!r}')
        if int(num) < 1:
            raise argparse.ArgumentTypeError(f'{name}: frames must be >= 1')
        out.append((name, int(num)))
    return out


def parse_size(text: str):
    if 'x' in text.lower():
        w, _, h = text.lower().partition('x')
        if w.isdigit() and h.isdigit():
            return int(h), int(w)
    elif text.isdigit():
        return int(text), int(text)
    raise argparse.ArgumentTypeError(
        f'--image-size expects S or WxH (e.g. 256 or 640x480), got {text!r}')


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Generate the synthetic two-hand dataset in '
        "InterHand2.6M's format")
    p.add_argument(
        '--out',
        default='data/synthetic_interhand',
        help='dataset root (images/ and annotations/ go here)')
    p.add_argument(
        '--splits',
        type=parse_splits,
        default=parse_splits('train:500,val:50,test:50'),
        help='name:frames items (default train:500,val:50,test:50)')
    p.add_argument(
        '--num-cams',
        type=int,
        default=4,
        help='cameras per '
        'capture = images per frame (default 4)')
    p.add_argument(
        '--image-size',
        type=parse_size,
        default=(256, 256),
        help='S (square) or WxH (default 256)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--workers',
        type=int,
        default=2,
        help='processes (0 = in this process; default 2)')
    p.add_argument(
        '--frames-per-capture',
        type=int,
        default=25,
        help='frames sharing one camera rig (default 25)')
    p.add_argument(
        '--mano-model-path',
        default=None,
        help='MANO folder (default: the bundled hand model); read the set '
        'with the same model')
    p.add_argument(
        '--no-coco-boxes',
        action='store_true',
        help='skip the COCO hand-box file')
    p.add_argument(
        '--overwrite',
        action='store_true',
        help='replace splits that already exist')
    return p.parse_args(argv)


class Progress:
    """A tqdm bar on a terminal, else a line every 10% (logs, CI)."""

    def __init__(self, split: str, total: int) -> None:
        self.split, self.total = split, total
        self.t0 = time.time()
        self.bar = None
        self.next_pct = 10
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=split, unit='frame')
            except ImportError:
                pass
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(done - self.done)
        else:
            pct = 100 * done // total
            if pct >= self.next_pct or done == total:
                rate = done / max(time.time() - self.t0, 1e-9)
                eta = (total - done) / max(rate, 1e-9)
                print(
                    f'[{self.split}] {done}/{total} frames ({pct}%), '
                    f'{rate:.2f} frames/s, ETA {eta:.0f} s',
                    flush=True)
                self.next_pct = (pct // 10 + 1) * 10
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmhand2p.synthetic import generate_synthetic_interhand
    out = osp.abspath(args.out)
    if not args.overwrite:  # refuse before generating anything
        existing = [
            split for split, _ in args.splits
            if osp.exists(osp.join(out, 'images', split))
            or osp.exists(osp.join(out, 'annotations', split))
        ]
        if existing:
            print(
                f'error: split(s) {existing} already exist in {out} '
                '(pass --overwrite to replace them)',
                file=sys.stderr)
            return 1
    for split, frames in args.splits:
        progress = Progress(split, frames)
        try:
            summary = generate_synthetic_interhand(
                out,
                split,
                frames,
                num_cams=args.num_cams,
                image_size=args.image_size,
                seed=args.seed,
                workers=args.workers,
                frames_per_capture=args.frames_per_capture,
                mano_model_path=args.mano_model_path,
                coco_boxes=not args.no_coco_boxes,
                overwrite=args.overwrite,
                progress=progress)
        except FileExistsError as e:
            progress.close()
            print(f'error: {e}', file=sys.stderr)
            return 1
        progress.close()
        types = ', '.join(f'{k} {v}' for k, v in summary['hand_types'].items())
        print(
            f"[{split}] {summary['num_frames']} frames, "
            f"{summary['num_images']} images in {summary['seconds']:.1f} s "
            f"({summary['frames_per_s']:.2f} frames/s, "
            f"{summary['images_per_s']:.1f} images/s, "
            f'{args.workers} workers); hand types: {types}; '
            f"{summary['penetrating']} frames with interpenetrating hands",
            flush=True)
    print(f'dataset root: {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

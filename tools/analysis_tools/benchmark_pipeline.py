#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Samples per second of the two-hand data pipeline on the synthetic set.

Builds the dataset and the training pipeline of a config (default: the
synthetic set's, 256 x 256 two-hand crops with flip, crop/scale/rotation,
colour jitter, motion blur, targets and packing), then times

* the dataset's ``__getitem__`` in this process, and
* a ``torch.utils.data.DataLoader`` with ``--workers`` worker processes and
  ``--batch-size`` (mmengine's ``pseudo_collate``), after its first batch::

    python tools/analysis_tools/benchmark_pipeline.py \\
        --data-root data/synthetic_interhand --split train \\
        --num-samples 1000 --workers 2

Generate the set first (``tools/dataset_converters/
make_synthetic_interhand.py``), or pass ``--generate N`` to render N
frames into ``--data-root`` when the split is missing.
"""
import argparse
import os.path as osp
import time

import numpy as np

DEFAULT_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    '_base_', 'datasets', 'synthetic_interhand.py')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--config', default=DEFAULT_CONFIG)
    p.add_argument('--data-root', default='data/synthetic_interhand')
    p.add_argument('--split', default='train')
    p.add_argument(
        '--pipeline',
        default='train',
        choices=('train', 'test'),
        help='which dataloader of the config to time')
    p.add_argument('--num-samples', type=int, default=1000)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument(
        '--generate',
        type=int,
        default=0,
        help='generate this many frames if the split is missing')
    p.add_argument(
        '--sharing-strategy',
        default=None,
        choices=('file_descriptor', 'file_system'),
        help="torch.multiprocessing's tensor sharing strategy for the "
        'DataLoader (default: torch\'s, file_descriptor on Linux)')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch
    from mmengine import Config
    from mmengine.dataset import pseudo_collate

    from mmhand2p.registry import DATASETS
    from mmhand2p.utils import register_all_modules
    register_all_modules()
    ann = osp.join(args.data_root, 'annotations', args.split)
    if not osp.isdir(ann):
        if not args.generate:
            raise SystemExit(
                f'{ann} does not exist: generate the set with tools/'
                'dataset_converters/make_synthetic_interhand.py or pass '
                '--generate N')
        from mmhand2p.synthetic import generate_synthetic_interhand
        s = generate_synthetic_interhand(
            args.data_root, args.split, args.generate, workers=args.workers)
        print(f"generated {s['num_images']} images in {s['seconds']:.1f} s")
    cfg = Config.fromfile(args.config)
    loader_cfg = cfg.train_dataloader if args.pipeline == 'train' \
        else cfg.test_dataloader
    ds_cfg = loader_cfg.dataset
    ds_cfg.update(data_root=args.data_root, split=args.split)
    dataset = DATASETS.build(ds_cfg)
    n = min(args.num_samples, len(dataset))
    print(f'{len(dataset)} samples in {args.data_root} ({args.split}); '
          f'timing {n} through the {args.pipeline} pipeline: ' +
          ' -> '.join(t['type'] for t in ds_cfg.pipeline))

    torch.set_num_threads(1)
    np.random.seed(args.seed)
    order = np.random.permutation(len(dataset))[:n]
    dataset[int(order[0])]  # warm-up (lazy imports)
    t0 = time.perf_counter()
    for i in order:
        out = dataset[int(i)]
    one = n / (time.perf_counter() - t0)
    shape = tuple(out['inputs'].shape)
    print(f'1 process: {one:.1f} samples/s (input {shape})', flush=True)

    if args.workers > 0:
        if args.sharing_strategy:
            torch.multiprocessing.set_sharing_strategy(args.sharing_strategy)
        sub = torch.utils.data.Subset(dataset, [int(i) for i in order])
        loader = torch.utils.data.DataLoader(
            sub,
            batch_size=args.batch_size,
            num_workers=args.workers,
            collate_fn=pseudo_collate,
            shuffle=False)
        it = iter(loader)
        first = len(next(it)['inputs'])
        t0 = time.perf_counter()
        count = 0
        for batch in it:
            count += len(batch['inputs'])
        dt = time.perf_counter() - t0
        if count:
            strategy = torch.multiprocessing.get_sharing_strategy()
            print(f'DataLoader, {args.workers} workers, batch '
                  f'{args.batch_size}, sharing {strategy}: '
                  f'{count / dt:.1f} samples/s ({count} samples after a '
                  f'first batch of {first})')


if __name__ == '__main__':
    main()

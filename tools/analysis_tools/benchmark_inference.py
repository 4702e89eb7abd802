#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Parameter count and latency of a reconstructor's inference model.

Teachers are not part of the inference model (they are built only for the
distillation loss), so they are dropped from the config; MANO falls back to
the bundled hand model when the configured files are absent::

    python tools/analysis_tools/benchmark_inference.py \
        configs/a2p/a2p_res50_4xb12-6e_interhand26m-256x256.py \
        --batch 1 --size 256 --runs 20 --threads 2
"""
import argparse
import statistics
import time

import numpy as np
import torch
from mmengine.config import Config

from mmhand2p.apis import build_inference_model
from mmhand2p.structures import HandDataSample
from mmhand2p.utils import register_all_modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    model, notes = build_inference_model(cfg)
    model = model.to(args.device).eval()
    for note in notes:
        print(f'note: {note}')
    total = sum(p.numel() for p in model.parameters())
    parts = {
        name: sum(p.numel() for p in child.parameters())
        for name, child in model.named_children()
    }
    s = args.size
    k = np.array([[s * 1.2, 0, (s - 1) / 2], [0, s * 1.2, (s - 1) / 2],
                  [0, 0, 1]], np.float32)
    samples = [
        HandDataSample(metainfo=dict(cam_intrinsics=k, input_size=(s, s)))
        for _ in range(args.batch)
    ]
    inputs = [
        torch.randint(0, 255, (3, s, s), dtype=torch.uint8)
        for _ in range(args.batch)
    ]
    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.runs):
            data = model.data_preprocessor(
                dict(inputs=inputs, data_samples=samples))
            if args.device.startswith('cuda'):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(**data, mode='predict')
            if args.device.startswith('cuda'):
                torch.cuda.synchronize()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f'config: {args.config}')
    print(f'parameters (inference model): {total / 1e6:.2f} M')
    for name, n in parts.items():
        print(f'  {name}: {n / 1e6:.2f} M')
    print(f'latency batch {args.batch} {s}x{s} on {args.device} '
          f'({torch.get_num_threads()} threads): median {med * 1000:.1f} ms '
          f'({args.batch / med:.1f} samples/s) over {args.runs} runs')


if __name__ == '__main__':
    main()

#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Images per second of the CPU mesh renderer for two MANO hands.

Renders scenes of the synthetic generator (two interacting hands, about half
the image, over a random background) with ``render_meshes`` at each size, in
one process and in ``--workers`` processes (throughput of all of them)::

    python tools/analysis_tools/benchmark_renderer.py \\
        --sizes 256x256,640x480 --num 200 --workers 2

Only ``render_meshes`` is timed (not the scene sampling, background, or
file writing).
"""
import argparse
import multiprocessing
import time

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument(
        '--sizes',
        default='256x256,640x480',
        help='comma-separated WxH (default 256x256,640x480)')
    p.add_argument(
        '--num', type=int, default=200, help='renders per size '
        'and setting')
    p.add_argument('--scenes', type=int, default=20)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def make_scenes(num: int, hw, seed: int):
    """``num`` (vertices, faces, intrinsics, background) render inputs."""
    import torch

    from mmhand2p.models.body_models import MANOLayer
    from mmhand2p.synthetic import generator as g
    from mmhand2p.synthetic.hand_model import hand_skeleton
    from mmhand2p.utils.mesh import boundary_loops, cap_boundary_loops
    torch.set_num_threads(1)
    layer = MANOLayer(flat_hand_mean=False).eval()
    faces = layer.faces.numpy()
    caps = []
    for h, model in enumerate((layer.right, layer.left)):
        _, capped = cap_boundary_loops(model.v_template.numpy(), faces[h])
        caps.append((boundary_loops(faces[h])[0], capped))
    rng = np.random.default_rng(seed)
    sk = hand_skeleton()
    cams = g.sample_camera_rig(rng, num, hw)
    scenes = []
    for cam in cams:
        scene = g.sample_hand_scene(
            rng, layer, caps, hand_type_probs=(1, 0, 0), skeleton=sk)
        verts = [g._world_to_cam(v, cam) for v in scene['vertices']]
        intr = (*cam['focal'], *cam['princpt'])
        bg = g.random_background(rng, *hw)
        scenes.append((verts, list(faces), intr, bg))
    return scenes


def _render_many(args):
    scenes, num = args
    from mmhand2p.visualization import render_meshes
    t0 = time.perf_counter()
    for i in range(num):
        verts, faces, intr, bg = scenes[i % len(scenes)]
        render_meshes(verts, faces, intrinsics=intr, background=bg)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    args = parse_args(argv)
    sizes = []
    for item in args.sizes.split(','):
        w, h = (int(v) for v in item.lower().split('x'))
        sizes.append((h, w))
    print(f'{"size":>9}  {"1 process":>14}  {f"{args.workers} processes":>16}')
    for hw in sizes:
        scenes = make_scenes(args.scenes, hw, args.seed)
        _render_many((scenes, 3))  # warm-up
        one = args.num / _render_many((scenes, args.num))
        many = float('nan')
        if args.workers > 1:
            ctx = multiprocessing.get_context('fork')
            per = args.num // args.workers
            with ctx.Pool(args.workers) as pool:
                pool.map(_render_many, [(scenes, 2)] * args.workers)
                t0 = time.perf_counter()
                pool.map(_render_many, [(scenes, per)] * args.workers)
                many = per * args.workers / (time.perf_counter() - t0)
        print(
            f'{hw[1]:>4}x{hw[0]:<4}  {one:>8.1f} img/s  {many:>10.1f} img/s',
            flush=True)


if __name__ == '__main__':
    main()

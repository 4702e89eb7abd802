# Copyright (c) mmhand2p contributors. All rights reserved.
"""Throughput of PenetrationMetric (PenVol + PenDist) against manifold3d's
own single-core rate on the same meshes, and against one process per pair
(the pattern of InterHandGen's ``eval/evaluate.py``).

Pairs of hands of the bundled (or given) MANO model: random PCA finger
poses, palms facing each other with small random rotations, the left hand
placed at a random distance (``--gap``) below the right one, so that a
realistic share of pairs penetrate. Example::

    python tools/analysis_tools/benchmark_penetration.py --num-pairs 10000 \
        --workers 2 --out /tmp/penetration_benchmark.json
"""
import argparse
import json
import multiprocessing
import os
import sys
import time

import numpy as np
import torch


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-pairs', type=int, default=10000)
    parser.add_argument(
        '--workers',
        type=int,
        default=None,
        help='PenVol worker processes (default: usable cores)')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument(
        '--gap',
        type=float,
        nargs=2,
        default=(0.045, 0.09),
        help='range (m) of the distance between the hands\' centroids')
    parser.add_argument(
        '--per-process-pairs',
        type=int,
        default=500,
        help='pairs for the one-process-per-pair comparison (0 to skip)')
    parser.add_argument('--mano-dir', default=None)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--torch-threads', type=int, default=1)
    parser.add_argument('--out', default=None, help='JSON report')
    return parser.parse_args()


def log(msg):
    print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)


def make_pairs(layer, num, seed, gap, chunk=500):
    """``(num, 2, 778, 3)`` float32 camera-frame hands (right, left)."""
    from mmhand2p.utils.geometry import (axis_angle_to_matrix,
                                         matrix_to_axis_angle)
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in range(0, num, chunk):
        n = min(chunk, num - s)
        coeffs = torch.randn(n, 2, 6, generator=g)
        small = 0.3 * (torch.rand(n, 2, 3, generator=g) * 2 - 1)
        # the left hand turned by pi about z: palms face each other
        flip = axis_angle_to_matrix(torch.tensor([0.0, 0.0, np.pi]))
        orient = torch.stack([
            small[:, 0],
            matrix_to_axis_angle(flip @ axis_angle_to_matrix(small[:, 1]))
        ], 1)
        with torch.no_grad():
            v = layer(pose_pca=coeffs, global_orient=orient).vertices.double()
        c = v.mean(2)
        dist = gap[0] + (gap[1] - gap[0]) * torch.rand(n, generator=g)
        xz = 0.01 * torch.randn(n, 2, generator=g)
        target = c[:, 0] + torch.stack([xz[:, 0], -dist, xz[:, 1]], -1)
        v[:, 1] += (target - c[:, 1])[:, None]
        v += torch.tensor([0.0, 0.0, 0.5],
                          dtype=v.dtype)  # in front of a camera
        out.append(v.float().numpy())
        log(f'generated {s + n}/{num} pairs')
    return np.concatenate(out)


def closed(verts, faces):
    from mmhand2p.evaluation.functional import closed_hand_faces
    capped, loops = closed_hand_faces(faces)
    v = verts.astype(np.float64)
    centres = np.stack([v[:, loop].mean(1) for loop in loops], 1)
    return np.concatenate([v, centres], 1), capped


def library_rate(va, fa, vb, fb):
    """manifold3d alone, one core: build both solids, intersect, volume."""
    import manifold3d as m3d
    fa = np.ascontiguousarray(fa, dtype=np.uint64)
    fb = np.ascontiguousarray(fb, dtype=np.uint64)
    n = len(va)
    vols = np.zeros(n)
    t0 = time.perf_counter()
    c0 = time.process_time()
    for i in range(n):
        a = m3d.Manifold(m3d.Mesh64(np.ascontiguousarray(va[i]), fa))
        b = m3d.Manifold(m3d.Mesh64(np.ascontiguousarray(vb[i]), fb))
        vols[i] = (a ^ b).volume()
        if (i + 1) % 1000 == 0 or i + 1 == n:
            log(f'manifold3d alone: {i + 1}/{n} pairs, '
                f'{(i + 1) / (time.perf_counter() - t0):.1f} pairs/s')
    cpu_ms = 1e3 * (time.process_time() - c0) / n
    return n / (time.perf_counter() - t0), vols, cpu_ms


def _child(conn, core, va, fa, vb, fb):
    if core is not None:
        os.sched_setaffinity(0, {core})  # before manifold3d starts threads
    conn.send(library_rate(va, fa, vb, fb))
    conn.close()


def library_rate_in_child(va, fa, vb, fb, one_core=True):
    """:func:`library_rate` in a child process; with ``one_core`` the child
    is restricted to one core from its start, so that manifold3d's thread
    pool (sized to the usable cores) has one thread: the library's own
    single-core rate. (A child also keeps manifold3d's threads out of this
    process, which forks the metric's workers later.)"""
    ctx = multiprocessing.get_context('fork')
    parent, child = ctx.Pipe()
    core = sorted(os.sched_getaffinity(0))[0] if one_core else None
    proc = ctx.Process(target=_child, args=(child, core, va, fa, vb, fb))
    proc.start()
    out = parent.recv()
    proc.join()
    return out


def metric_rate(verts, args, num_workers):
    """PenetrationMetric.process + evaluate on all pairs."""
    from mmhand2p.evaluation.metrics import PenetrationMetric
    metric = PenetrationMetric(
        mano_model_path=args.mano_dir,
        num_workers=num_workers,
        out_file=os.devnull)
    n = len(verts)
    t0 = time.perf_counter()
    c0 = os.times()
    for s in range(0, n, args.batch_size):
        batch = [
            dict(
                img_path=f'pair_{i}',
                hand_type='interacting',
                pred_hands=dict(vertices=torch.from_numpy(verts[i])))
            for i in range(s, min(n, s + args.batch_size))
        ]
        metric.process(None, batch)
        done = s + len(batch)
        if done % (20 * args.batch_size) < args.batch_size or done == n:
            log(f'PenetrationMetric ({num_workers} workers): {done}/{n} '
                f'pairs, {done / (time.perf_counter() - t0):.1f} pairs/s')
    metrics = metric.evaluate(n)  # also stops (and reaps) the workers
    rate = n / (time.perf_counter() - t0)
    c1 = os.times()
    cpu = dict(
        main_ms_per_pair=1e3 * (c1.user - c0.user + c1.system - c0.system) / n,
        workers_ms_per_pair=1e3 * (c1.children_user - c0.children_user +
                                   c1.children_system - c0.children_system) /
        n)
    return rate, metrics, cpu


_PP_DATA = None


def _one_pair(i, fa, fb, out):
    import manifold3d as m3d
    va, vb = _PP_DATA
    a = m3d.Manifold(m3d.Mesh64(np.ascontiguousarray(va[i]), fa))
    b = m3d.Manifold(m3d.Mesh64(np.ascontiguousarray(vb[i]), fb))
    out[i] = (a ^ b).volume()


def per_process_rate(va, fa, vb, fb):
    """One multiprocessing.Process per pair, all started, then joined, with
    a Manager dict for the results (InterHandGen's eval/evaluate.py)."""
    global _PP_DATA
    _PP_DATA = (va, vb)
    fa = np.ascontiguousarray(fa, dtype=np.uint64)
    fb = np.ascontiguousarray(fb, dtype=np.uint64)
    ctx = multiprocessing.get_context('fork')
    t0 = time.perf_counter()
    manager = ctx.Manager()
    out = manager.dict()
    jobs = [
        ctx.Process(target=_one_pair, args=(i, fa, fb, out))
        for i in range(len(va))
    ]
    for p in jobs:
        p.start()
    for k, p in enumerate(jobs):
        p.join()
        if (k + 1) % 100 == 0:
            log(f'one process per pair: {k + 1}/{len(va)} joined')
    rate = len(va) / (time.perf_counter() - t0)
    vols = np.array([out[i] for i in range(len(va))])
    manager.shutdown()
    return rate, vols


def main():
    args = parse_args()
    torch.set_num_threads(args.torch_threads)
    from mmhand2p.evaluation.functional import default_num_workers
    from mmhand2p.models.body_models import MANOLayer
    workers = default_num_workers() if args.workers is None else args.workers
    log(f'{args.num_pairs} pairs, {workers} workers, cores usable: '
        f'{default_num_workers()}, load average {os.getloadavg()}')
    layer = MANOLayer(args.mano_dir)
    faces = layer.faces.numpy()
    verts = make_pairs(layer, args.num_pairs, args.seed, args.gap)
    va, fa = closed(verts[:, 0], faces[0])
    vb, fb = closed(verts[:, 1], faces[1])

    log('manifold3d alone, in a process restricted to one core:')
    lib_rate, lib_vols, lib_cpu = library_rate_in_child(va, fa, vb, fb)
    log(f'manifold3d alone, 1 core: {lib_rate:.1f} pairs/s '
        f'({lib_cpu:.3f} ms CPU per pair)')
    log('manifold3d alone, free to use every core (its own threads):')
    free_rate, _, free_cpu = library_rate_in_child(
        va, fa, vb, fb, one_core=False)
    log(f'manifold3d alone, all cores: {free_rate:.1f} pairs/s '
        f'({free_cpu:.3f} ms CPU per pair)')
    rate, metrics, cpu = metric_rate(verts, args, workers)
    total_cpu = cpu['main_ms_per_pair'] + cpu['workers_ms_per_pair']
    log(f'PenetrationMetric, {workers} workers: {rate:.1f} pairs/s '
        f'({rate / lib_rate:.2f}x manifold3d alone on 1 core); CPU per '
        f'pair: {cpu["main_ms_per_pair"]:.3f} ms here (PenDist, batching) + '
        f'{cpu["workers_ms_per_pair"]:.3f} ms in the workers (PenVol) = '
        f'{total_cpu:.3f} ms, {total_cpu / lib_cpu:.2f}x the library\'s')
    report = dict(
        command=' '.join([sys.executable] + sys.argv),
        num_pairs=args.num_pairs,
        workers=workers,
        gap_m=list(args.gap),
        torch_threads=args.torch_threads,
        load_average_start=os.getloadavg(),
        library_single_core_pairs_per_s=lib_rate,
        library_cpu_ms_per_pair=lib_cpu,
        library_all_cores_pairs_per_s=free_rate,
        library_all_cores_cpu_ms_per_pair=free_cpu,
        metric_pairs_per_s=rate,
        metric_cpu_ms_per_pair=cpu,
        speedup_vs_library_single_core=rate / lib_rate,
        metrics=metrics,
        library_mean_volume_cm3=float(lib_vols.mean() * 1e6))
    if args.per_process_pairs > 0:
        n = min(args.per_process_pairs, args.num_pairs)
        pp_rate, pp_vols = per_process_rate(va[:n], fa, vb[:n], fb)
        diff = float(np.abs(pp_vols - lib_vols[:n]).max())
        log(f'one process per pair ({n} pairs): {pp_rate:.1f} pairs/s; '
            f'PenetrationMetric is {rate / pp_rate:.1f}x faster '
            f'(volumes agree to {diff:.2e} m^3)')
        report.update(
            per_process_pairs=n,
            per_process_pairs_per_s=pp_rate,
            speedup_vs_per_process=rate / pp_rate)
    report['load_average_end'] = os.getloadavg()
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2)
        log(f'written {args.out}')


if __name__ == '__main__':
    main()

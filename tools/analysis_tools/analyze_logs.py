# Copyright (c) mmhand2p contributors. All rights reserved.
"""Learning curves and training time from mmengine's ``scalars.json`` logs.

Every run of ``tools/train.py`` writes ``<work_dir>/<timestamp>/vis_data/
scalars.json``: one JSON object per line, training records (with ``iter``)
and validation records (metrics such as ``two_hand/MPJPE_all``). A run may
be given as that file, as its timestamp folder or as the work dir (the
newest timestamp folder that has the file is used).

Validation records are placed at the training iteration logged just
before them, so iteration-based runs get the right x axis whatever
``log_metric_by_epoch`` is (mmengine then writes ``step: 0``).

Examples::

    # validation MPJPE and training loss of two runs, one panel per key
    python tools/analysis_tools/analyze_logs.py plot_curve \\
        work_dirs/ablation_w32/baseline work_dirs/ablation_w32/full \\
        --keys two_hand/MPJPE_all loss --legend baseline full \\
        --smooth 5 --out curves.png
    # iterations, wall time and seconds per iteration of a run
    python tools/analysis_tools/analyze_logs.py cal_train_time \\
        work_dirs/ablation_w32/full
"""
import argparse
import glob
import json
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


def find_scalars(run: str) -> str:
    """The ``scalars.json`` of a run given as the file, its ``vis_data``
    folder, its timestamp folder or the work dir.

    Raises:
        FileNotFoundError: naming the path when there is none.
    """
    if osp.isfile(run):
        return run
    if not osp.isdir(run):
        raise FileNotFoundError(f'{run}: no such file or folder')
    for direct in (osp.join(run, 'scalars.json'),
                   osp.join(run, 'vis_data', 'scalars.json')):
        if osp.isfile(direct):
            return direct
    found = sorted(glob.glob(osp.join(run, '*', 'vis_data', 'scalars.json')))
    if not found:
        raise FileNotFoundError(
            f'{run}: no vis_data/scalars.json in it or in its timestamp '
            'folders (was the run started with tools/train.py?)')
    return found[-1]


def load_scalars(path: str) -> Tuple[List[dict], List[dict]]:
    """Training and validation records of one ``scalars.json``.

    Returns:
        tuple[list[dict], list[dict]]: training records (with ``iter``) and
        validation records, each with ``x`` (training iteration).

    Raises:
        ValueError: naming the file and line of a malformed record.
    """
    train, val = [], []
    last_iter = 0
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f'{path}:{n}: not a JSON record ({e})')
            if not isinstance(rec, dict):
                raise ValueError(f'{path}:{n}: not a JSON object')
            if 'iter' in rec:
                last_iter = int(rec['iter'])
                train.append(dict(rec, x=last_iter))
            else:
                val.append(dict(rec, x=last_iter))
    return train, val


def series(records: Sequence[dict], key: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of ``key`` over the records that have it."""
    pts = [(r['x'], float(r[key])) for r in records
           if isinstance(r.get(key), (int, float))]
    if not pts:
        return np.zeros(0), np.zeros(0)
    x, y = zip(*pts)
    return np.asarray(x, float), np.asarray(y, float)


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (shorter at the
    start), so a curve is not shifted ahead of its data."""
    if window <= 1 or len(y) == 0:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_curve(runs: Sequence[str],
               keys: Sequence[str],
               out: str,
               legend: Optional[Sequence[str]] = None,
               smooth_window: int = 1,
               title: Optional[str] = None) -> Dict[str, Dict[str, int]]:
    """One panel per key, one line per run; writes ``out`` atomically.

    Returns:
        dict: ``{key: {run label: number of points}}``.

    Raises:
        ValueError: a key that no run logged (the available keys are
        listed), or a legend of the wrong length.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    if legend is not None and len(legend) != len(runs):
        raise ValueError(f'--legend has {len(legend)} names for '
                         f'{len(runs)} runs')
    labels = list(legend) if legend else list(runs)
    logs = [load_scalars(find_scalars(r)) for r in runs]
    available = sorted({
        k
        for tr, va in logs for r in tr + va for k, v in r.items()
        if isinstance(v, (int, float)) and k not in ('x', 'step', 'iter')
    })
    counts: Dict[str, Dict[str, int]] = {}
    fig, axes = plt.subplots(
        1, len(keys), figsize=(4.8 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        counts[key] = {}
        for label, (tr, va) in zip(labels, logs):
            x, y = series(tr, key)
            is_val = len(x) == 0
            if is_val:
                x, y = series(va, key)
            counts[key][label] = len(x)
            if not len(x):
                continue
            y = y if is_val else smooth(y, smooth_window)
            ax.plot(x, y, marker='o' if is_val else None, ms=3, label=label)
        if not any(counts[key].values()):
            plt.close(fig)
            raise ValueError(f'no run logged {key!r}; available keys: '
                             f'{", ".join(available)}')
        ax.set_xlabel('iteration')
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    from mmhand2p.utils.fileio import atomic_write
    ext = osp.splitext(out)[1] or '.png'
    try:
        with atomic_write(out, 'wb') as f:
            fig.savefig(f, dpi=110, format=ext[1:])
    finally:
        plt.close(fig)
    return counts


def train_time(run: str) -> dict:
    """Iterations, mean / median seconds per iteration (the ``time`` of
    the logged windows) and the slowest logged window of a run."""
    train, _ = load_scalars(find_scalars(run))
    t = np.asarray([r['time'] for r in train if 'time' in r], float)
    if not len(t):
        raise ValueError(f'{run}: no training record with a time')
    return dict(
        last_iter=int(train[-1]['iter']),
        mean_s_per_iter=float(t.mean()),
        median_s_per_iter=float(np.median(t)),
        slowest_window_s_per_iter=float(t.max()),
        est_train_hours=float(t.mean() * train[-1]['iter'] / 3600.0))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='task', required=True)
    pc = sub.add_parser('plot_curve', help='plot logged keys of runs')
    pc.add_argument('runs', nargs='+', help='scalars.json or work dirs')
    pc.add_argument('--keys', nargs='+', default=['loss'])
    pc.add_argument('--legend', nargs='+', help='one name per run')
    pc.add_argument(
        '--smooth',
        type=int,
        default=1,
        help='moving average over this many logged training points '
        '(validation points are never smoothed)')
    pc.add_argument('--title')
    pc.add_argument('--out', required=True, help='image file to write')
    tt = sub.add_parser('cal_train_time', help='speed of runs')
    tt.add_argument('runs', nargs='+')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.task == 'plot_curve':
            counts = plot_curve(args.runs, args.keys, args.out, args.legend,
                                args.smooth, args.title)
            for key, per_run in counts.items():
                print(f'{key}: ' + ', '.join(f'{k} {n} points'
                                             for k, n in per_run.items()))
            print(f'wrote {args.out}')
        else:
            for run in args.runs:
                s = train_time(run)
                print(f'{run}: {s["last_iter"]} iterations, '
                      f'{s["mean_s_per_iter"]:.3f} s/iter mean, '
                      f'{s["median_s_per_iter"]:.3f} median, slowest '
                      f'window {s["slowest_window_s_per_iter"]:.3f}, '
                      f'about {s["est_train_hours"]:.2f} h of training')
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

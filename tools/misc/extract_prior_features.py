#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Run a config's frozen prior teachers once over a dataset split and store
their features on disk, so that A2P stage-1 training can read them instead
of running the teachers every iteration (``docs/a2p.md``)::

    python tools/misc/extract_prior_features.py \\
        configs/a2p/synthetic/a2p_res18_1xb16-cpu_synthetic-128x128.py \\
        --split train --out data/prior_cache/synthetic_res18_train

then train with the cache: the ``LoadPriorFeatures`` transform, after
``PackTwoHandInputs`` in the training pipeline, puts each sample's cached
features into its data sample, and the neck's distillation loss reads them
from there (``warp``: what to do with augmented crops, see
``LoadPriorFeatures`` and ``docs/a2p.md``; ``none`` is the better
approximation for the synthetic-world teachers)::

    dict(type='LoadPriorFeatures', root='data/prior_cache/...',
         priors=model['neck']['priors'], teachers=teachers, warp='none')

``--train-config OUT.py`` writes that config for you (``_base_`` = CONFIG,
its training pipeline with the transform appended)::

    python tools/misc/extract_prior_features.py CONFIG --split train \\
        --out data/prior_cache/synthetic_res18_train \\
        --train-config work_dirs/a2p_cached.py --warp none
    python tools/train.py work_dirs/a2p_cached.py

(``--cfg-options model.neck.prior_cache.root=... model.neck.prior_cache.
warp=none``, the neck reading the cache itself, still works but is
deprecated.)

What is computed: the teachers of ``model.neck.teachers`` (one per prior of
``model.neck.priors``) on the *deterministic* crop of every sample of the
split's dataset: the split's pipeline with its ``TwoHandCropAffine`` in
``test_mode`` (no shift / scale / rotation), without photometric
augmentation, and - with ``--flip both`` (the default) - a second time on
the flipped image (``RandomTwoHandFlip(prob=1)``), so that flipped training
samples get exact targets. The features are stored as float16 at the
teachers' own resolution together with each crop's affine, which lets the
neck resample them onto an augmented crop
(:mod:`mmhand2p.utils.feature_cache`).

All-or-nothing: the cache is written into a hidden temporary folder next to
``--out`` (every file ``fsync``-ed, ``index.json`` last) and renamed into
place when every sample is done; an error, Ctrl-C or SIGTERM deletes the
temporary folder (a SIGKILL leaves it, hidden, and the next run for the same
``--out`` removes it). With ``--overwrite`` the old cache stays in place
until the new one is complete; a SIGKILL between moving the old one aside
and the new one in is repaired by the next run or the first training that
opens the cache (the complete new cache is put in place). There is no
resuming:
the synthetic training split (6000 images, 2 variants) took 30 minutes on
a busy 2-core CPU; for InterHand2.6M-size sets run it on a GPU.
"""
import argparse
import copy
import os
import os.path as osp
import signal
import sys
import time

from mmengine.config import Config, DictAction

try:
    import mmhand2p  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmhand2p.utils.fileio import file_sha256  # noqa: E402

SPLIT_LOADERS = dict(
    train='train_dataloader', val='val_dataloader', test='test_dataloader')


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Cache the frozen A2P prior teachers\' features of a '
        'dataset split')
    p.add_argument('config', help='the training config (model.neck.teachers)')
    p.add_argument(
        '--split',
        default='train',
        choices=sorted(SPLIT_LOADERS),
        help='whose dataloader\'s dataset to run on (default train)')
    p.add_argument('--out', required=True, help='cache folder to create')
    p.add_argument(
        '--flip',
        default='both',
        choices=('both', 'none'),
        help='also cache the flipped image of every sample (default both; '
        'needed when the training pipeline has RandomTwoHandFlip)')
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument(
        '--num-workers', type=int, default=2, help='dataloader workers')
    p.add_argument(
        '--device',
        default=None,
        help='cpu / cuda (default: cuda when available)')
    p.add_argument(
        '--overwrite',
        action='store_true',
        help='replace an existing cache (kept until the new one is done)')
    p.add_argument(
        '--no-progress', action='store_true', help='no progress bar')
    p.add_argument(
        '--train-config',
        default=None,
        help='also write a training config (CONFIG + LoadPriorFeatures '
        'reading this cache) to this .py file')
    p.add_argument(
        '--warp',
        default='affine',
        choices=('affine', 'none', 'refuse'),
        help='LoadPriorFeatures(warp=...) of --train-config (default affine)')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='config overrides key=value (mmengine DictAction syntax)')
    return p.parse_args(argv)


def _crop_step(pipeline):
    crops = [dict(s) for s in pipeline if s.get('type') == 'TwoHandCropAffine']
    if len(crops) != 1:
        raise ValueError(
            'extract_prior_features: the split\'s pipeline must have exactly '
            f'one TwoHandCropAffine (found {len(crops)}): the cache stores '
            'the features of its deterministic crop')
    return crops[0]


def deterministic_pipeline(pipeline, flip: bool):
    """The split's pipeline reduced to load -> (flip) -> test-mode crop ->
    pack.

    Args:
        pipeline (list[dict]): the split's pipeline configs.
        flip (bool): flip every image (the cache's second variant).

    Returns:
        tuple: the pipeline (list of dicts) and the crop's config.
    """
    crop = _crop_step(pipeline)
    crop['test_mode'] = True
    load = [dict(s) for s in pipeline if s.get('type') == 'LoadTwoHandImage']
    steps = load or [dict(type='LoadTwoHandImage')]
    if flip:
        steps.append(dict(type='RandomTwoHandFlip', prob=1.0))
    steps += [crop, dict(type='PackTwoHandInputs')]
    return steps, crop


def _dataset_cfg(cfg, split):
    key = SPLIT_LOADERS[split]
    if key not in cfg or 'dataset' not in cfg[key]:
        raise KeyError(f'extract_prior_features: the config has no '
                       f'{key}.dataset (needed for --split {split})')
    ds = copy.deepcopy(cfg[key]['dataset'])
    if 'pipeline' not in ds or 'datasets' in ds or 'dataset' in ds:
        raise ValueError(
            f'extract_prior_features: {key}.dataset is a wrapper '
            f'({ds.get("type")}); the cache is keyed by img_id, unique within '
            'one dataset only: extract and train one dataset at a time')
    return ds


def training_config(cfg, config_path: str, root: str,
                    warp: str = 'affine') -> str:
    """The text of a training config that inherits ``config_path`` and
    appends ``LoadPriorFeatures`` (reading the cache at ``root``) to its
    training pipeline.

    Args:
        cfg (Config): the loaded ``config_path`` (with any overrides).
        config_path (str): the config file (``_base_`` of the new one).
        root (str): the cache folder.
        warp (str): ``LoadPriorFeatures(warp=...)``.

    Returns:
        str: Python config text.
    """
    import pprint
    ds = _dataset_cfg(cfg, 'train')
    neck = cfg.model.get('neck') or {}
    if not neck.get('priors') or not neck.get('teachers'):
        raise ValueError('extract_prior_features: model.neck has no priors '
                         '/ teachers: nothing to distil from a cache')
    pipeline = [dict(t) for t in ds['pipeline']]
    if not any(t.get('type') == 'PackTwoHandInputs' for t in pipeline):
        raise ValueError('extract_prior_features: the training pipeline has '
                         'no PackTwoHandInputs to put LoadPriorFeatures after')
    pipeline.append(
        dict(
            type='LoadPriorFeatures',
            root=osp.abspath(root),
            priors=tuple(neck['priors']),
            teachers={k: dict(v)
                      for k, v in neck['teachers'].items()},
            teacher_channels=neck.get('teacher_channels'),
            warp=warp))
    plain = Config(dict(p=pipeline)).to_dict()['p']
    return ('# written by tools/misc/extract_prior_features.py: the '
            'teachers\'\n# features are read from the cache by '
            'LoadPriorFeatures\n'
            f'_base_ = [{osp.abspath(config_path)!r}]\n'
            'train_dataloader = dict(dataset=dict(pipeline=' +
            pprint.pformat(plain, indent=1, width=76, sort_dicts=False) +
            '))\n')


def _config_sha256(path):
    if path is None or not osp.isfile(path):
        return None
    return file_sha256(path)


def extract(cfg,
            split: str,
            out: str,
            flip: str = 'both',
            batch_size: int = 32,
            num_workers: int = 0,
            device=None,
            overwrite: bool = False,
            progress: bool = True,
            config_path=None,
            on_batch=None) -> str:
    """Compute and store the teachers' features (see the module docstring).

    Args:
        cfg (mmengine.Config): the training config.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        out (str): the cache folder.
        flip (str): ``'both'`` or ``'none'``.
        batch_size / num_workers: the dataloader's.
        device: torch device (default: cuda when available).
        overwrite (bool): replace an existing cache.
        progress (bool): show a progress bar.
        config_path (str, optional): recorded with its SHA-256.
        on_batch (callable, optional): ``on_batch(done, total)`` after every
            batch (tests interrupt the extraction with it).

    Returns:
        str: the cache folder.
    """
    import numpy as np
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.utils import ProgressBar
    from torch.utils.data import DataLoader

    from mmhand2p.registry import DATASETS, MODELS
    from mmhand2p.utils import register_all_modules
    from mmhand2p.utils.feature_cache import (PriorFeatureCacheWriter,
                                              _jsonable, now_iso,
                                              teacher_checkpoint_hashes,
                                              teacher_config_hash)

    register_all_modules(init_default_scope=True)
    if flip not in ('both', 'none'):
        raise ValueError(f"flip must be 'both' or 'none', got {flip!r}")
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    neck_cfg = cfg.model.get('neck') or {}
    priors = tuple(neck_cfg.get('priors', ()))
    teacher_cfgs = dict(neck_cfg.get('teachers') or {})
    if not priors:
        raise ValueError('extract_prior_features: model.neck.priors is empty '
                         '(nothing to distil)')
    missing = [p for p in priors if p not in teacher_cfgs]
    if missing:
        raise ValueError(f'extract_prior_features: model.neck.teachers has no '
                         f'teacher for {missing}')
    t0 = time.time()
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pop('refiner', None)  # not needed, may need its own files
    model = MODELS.build(model_cfg).to(device).eval()
    neck = model.neck
    teachers = neck.teachers(torch.device(device))
    rgb_of = getattr(model, '_rgb', None)
    hashes = {p: teacher_config_hash(teacher_cfgs[p]) for p in priors}
    ckpts = teacher_checkpoint_hashes(teacher_cfgs, priors)

    ds_cfg = _dataset_cfg(cfg, split)
    variants = [False, True] if flip == 'both' else [False]
    datasets = []
    crop = None
    for v in variants:
        c = copy.deepcopy(ds_cfg)
        c['pipeline'], crop = deterministic_pipeline(ds_cfg['pipeline'], v)
        datasets.append(DATASETS.build(c))
    num = len(datasets[0])
    if num == 0:
        raise ValueError(f'extract_prior_features: the {split} dataset is '
                         'empty')
    data_root = getattr(datasets[0], 'data_root', '') or ''
    input_size = tuple(int(s) for s in crop.get('input_size', (256, 256)))

    # feature shapes from one forward pass on a blank crop
    with torch.no_grad():
        probe = torch.zeros(1, 3, input_size[1], input_size[0], device=device)
        shapes = {
            p: tuple(t(probe).shape[1:])
            for p, t in zip(priors, teachers)
        }
    bad = {p: s for p, s in shapes.items() if s[0] != neck.teacher_channels}
    if bad:
        raise ValueError(f'extract_prior_features: teacher channels {bad} '
                         f'differ from teacher_channels='
                         f'{neck.teacher_channels}')

    total = num * len(variants)
    bar = ProgressBar(total) if progress else None
    done = 0
    with PriorFeatureCacheWriter(
            out, num, priors, shapes, len(variants),
            overwrite=overwrite) as writer:
        for v, ds in enumerate(datasets):
            loader = DataLoader(
                ds,
                batch_size=batch_size,
                shuffle=False,
                num_workers=num_workers,
                collate_fn=pseudo_collate)
            start = 0
            for batch in loader:
                data = model.data_preprocessor(batch, training=False)
                inputs = data['inputs']
                if rgb_of is not None:
                    rgb = rgb_of(inputs)
                else:  # packed images are BGR
                    rgb = inputs.flip(1).float()
                with torch.no_grad():
                    feats = {
                        p: t(rgb).float().cpu().numpy()
                        for p, t in zip(priors, teachers)
                    }
                metas = [ds_.metainfo for ds_ in data['data_samples']]
                b = len(metas)
                paths = [
                    osp.relpath(m['img_path'], data_root)
                    if data_root else m['img_path'] for m in metas
                ]
                writer.write(
                    range(start, start + b), v, feats,
                    np.stack([np.asarray(m['crop_affine']) for m in metas]),
                    [m['img_id'] for m in metas], paths)
                start += b
                done += b
                if bar is not None:
                    bar.update(b)
                if on_batch is not None:
                    on_batch(done, total)
            if start != num:
                raise RuntimeError(f'the dataloader gave {start} samples, the '
                                   f'dataset has {num}')
        meta = dict(
            input_size=list(input_size),
            crop=_jsonable(crop),
            feature_shapes={
                p: list(s)
                for p, s in shapes.items()
            },
            teacher_channels=int(neck.teacher_channels),
            teacher_cfgs=_jsonable(teacher_cfgs),
            teacher_cfg_hashes=hashes,
            teacher_checkpoints=ckpts,
            dataset=dict(
                type=ds_cfg.get('type'),
                data_root=data_root,
                split=ds_cfg.get('split', split),
                ann_file=getattr(datasets[0], 'ann_file', None),
                num_samples=num),
            config=dict(path=config_path, sha256=_config_sha256(config_path)),
            created=now_iso(),
            device=str(device),
            seconds=round(time.time() - t0, 1),
            torch=torch.__version__)
        root = writer.commit(meta)
    if bar is not None:
        sys.stdout.write('\n')
    return root


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    if args.train_config and args.split != 'train':
        raise SystemExit('extract_prior_features: --train-config needs '
                         f'--split train (got {args.split})')

    def _terminate(signum, frame):  # SIGTERM: clean up like Ctrl-C
        raise KeyboardInterrupt(f'signal {signum}')

    previous = signal.signal(signal.SIGTERM, _terminate)
    t0 = time.time()
    try:
        root = extract(
            cfg,
            args.split,
            args.out,
            flip=args.flip,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            device=args.device,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            config_path=args.config)
    finally:
        signal.signal(signal.SIGTERM, previous)
    size = sum(osp.getsize(osp.join(root, f))
               for f in os.listdir(root)) / 2**20
    print(f'prior feature cache written to {root} ({size:.1f} MiB, '
          f'{time.time() - t0:.1f} s)')
    if args.train_config:
        from mmhand2p.utils.fileio import atomic_write_bytes
        text = training_config(cfg, args.config, root, args.warp)
        atomic_write_bytes(args.train_config, text.encode('utf-8'))
        print(f'training config written to {args.train_config}')
    return root


if __name__ == '__main__':
    main()

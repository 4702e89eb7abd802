# Copyright (c) mmhand2p contributors. All rights reserved.
"""An on-disk cache of the frozen teachers' features (A2P stage 1).

The teachers of :class:`~mmhand2p.models.necks.FusionAlignmentNeck` are
frozen, so their features on a *fixed* crop of a sample never change:
``tools/misc/extract_prior_features.py`` computes them once, on the
deterministic (test-mode) crop of every sample, and training reads them back
instead of running the teachers: the data transform
``LoadPriorFeatures`` (after ``PackTwoHandInputs``) puts a sample's cached
features into its data sample, and ``FusionAlignmentNeck.loss`` turns them
into the distillation target with :func:`prior_target` (the deprecated
``FusionAlignmentNeck(prior_cache=...)`` reads the cache itself, with the
same function). This module is neutral (no import of ``mmhand2p.models``
or ``mmhand2p.datasets``), so both can use it.

What is exact and what is not
-----------------------------
* A training crop equal to the cached one (no geometric augmentation):
  the cached target equals the live teachers' up to float16 rounding.
* A flipped sample (``RandomTwoHandFlip``): the cache holds a second
  variant computed on the flipped image (``--flip both``, the default), so
  the flip is exact too; mirroring the unflipped features instead would be
  wrong (a segmentation teacher tells the right hand from the left one).
* A shifted / scaled / rotated crop: the neck either resamples the cached
  feature map (``grid_sample``) through the relative crop affine, cached
  crop -> current crop, both known from the metainfo (``crop_affine``;
  ``warp='affine'``), or uses it as it is (``warp='none'``), or refuses the
  sample (``warp='refuse'``). Both approximations have a cost: a network's
  features are not equivariant to rotation and scale, and a zoomed-out or
  shifted crop sees image regions the cached crop does not contain (those
  cells are masked out of the distillation loss with ``mask_outside``
  rather than filled in). Which is closer depends on the teachers: the
  resampling wins for a linear teacher on 8-pixel cells (the extraction
  tool's test), the unwarped features win for the synthetic-world CNN
  teachers on their 4 x 4 grid (``docs/a2p.md`` has the numbers).
  Photometric augmentation is not in the cache either: the target is the
  teacher on the un-jittered image.

File layout (all-or-nothing: written in a hidden temporary folder next to
the target and renamed into place when complete)::

    ROOT/
      index.json          format, version, priors, shapes, variants, hashes,
                          crop parameters, dataset, provenance
      img_ids.npy         (N,) int64 sample ids (``img_id`` of the metainfo)
      img_paths.txt       N lines: image paths relative to the data root
      crop_affine.npy     (N, V, 2, 3) float64 original image -> cached crop
      {prior}.npy         (N, V, C, h, w) float16 teacher features
                          (V variants: 0 = as loaded, 1 = flipped)

A cache is tied to its teachers: ``teacher_cfg_hashes`` (each teacher's
config without its checkpoint path) and the SHA-256 of every teacher
checkpoint file are checked when the cache is opened for training, so a
retrained or re-configured teacher cannot silently give stale targets.
"""
import hashlib
import json
import os
import os.path as osp
import shutil
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmhand2p.utils.fileio import atomic_write, file_sha256, fsync_dir
from mmhand2p.utils.letterbox import DOWNSAMPLE_MODES, resize_features

__all__ = [
    'CACHE_FORMAT', 'CACHE_VERSION', 'PriorFeatureCache',
    'PriorFeatureCacheWriter', 'teacher_config_hash', 'file_sha256',
    'teacher_checkpoint_hashes', 'relative_crop_theta', 'warp_feature_maps',
    'recover_interrupted_commit', 'WARP_MODES', 'prior_target'
]

CACHE_FORMAT = 'mmhand2p.prior_feature_cache'
#: 2: teachers letterbox their input by default (issue 19); a version-1
#: cache holds features of stretched inputs and is refused
CACHE_VERSION = 2
INDEX_FILE = 'index.json'
#: variant names by index (``--flip`` of the extraction tool)
VARIANTS = ('plain', 'flip')
#: what :func:`prior_target` does with a sample cropped unlike the cache
WARP_MODES = ('affine', 'none', 'refuse')


# ----------------------------------------------------------------------------
# hashing
# ----------------------------------------------------------------------------
def _jsonable(obj):
    """Config values as plain JSON (tuples as lists, keys sorted later)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def teacher_config_hash(teacher_cfg: dict) -> str:
    """SHA-256 of one teacher's config without its ``checkpoint`` path (the
    checkpoint is hashed by content, so moving the file does not invalidate
    a cache, retraining it does).

    Args:
        teacher_cfg (dict): e.g. ``dict(type='SapiensTeacher', prior=...)``.

    Returns:
        str: hex digest.
    """
    cfg = {k: v for k, v in dict(teacher_cfg).items() if k != 'checkpoint'}
    # the default changed (issue 19): hash what the teacher does
    cfg.setdefault('input_mode', 'letterbox')
    text = json.dumps(_jsonable(cfg), sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()


def teacher_checkpoint_hashes(teacher_cfgs: Dict[str, dict],
                              priors: Sequence[str]) -> Dict[str, dict]:
    """``{prior: {'path', 'sha256'}}`` of the teachers' checkpoint files
    (``sha256`` None for a teacher without one)."""
    out = {}
    for p in priors:
        path = dict(teacher_cfgs[p]).get('checkpoint')
        if path is None:
            out[p] = dict(path=None, sha256=None)
            continue
        path = osp.expanduser(str(path))
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'teacher checkpoint {path!r} (prior {p!r}) does not exist')
        out[p] = dict(path=str(path), sha256=file_sha256(path))
    return out


# ----------------------------------------------------------------------------
# geometry: cached crop -> current crop
# ----------------------------------------------------------------------------
def _pixel_to_norm(size_wh: Tensor) -> Tensor:
    """``(B, 3, 3)`` homogeneous map pixel -> ``align_corners=False``
    normalised coordinates of a ``(w, h)`` image (pixel centres at
    integers, the image spanning ``[-0.5, w - 0.5]`` -> ``[-1, 1]``)."""
    b = size_wh.shape[0]
    m = torch.zeros(b, 3, 3, dtype=torch.float64, device=size_wh.device)
    m[:, 0, 0] = 2.0 / size_wh[:, 0]
    m[:, 1, 1] = 2.0 / size_wh[:, 1]
    m[:, 0, 2] = (1.0 - size_wh[:, 0]) / size_wh[:, 0]
    m[:, 1, 2] = (1.0 - size_wh[:, 1]) / size_wh[:, 1]
    m[:, 2, 2] = 1.0
    return m


def _homogeneous(affine: Tensor) -> Tensor:
    a = torch.as_tensor(affine, dtype=torch.float64).reshape(-1, 2, 3)
    bottom = a.new_tensor([0.0, 0.0, 1.0]).expand(a.shape[0], 1, 3)
    return torch.cat([a, bottom], dim=1)


def relative_crop_theta(cache_affine, cache_size, target_affine,
                        target_size) -> Tensor:
    """The ``affine_grid`` matrix that reads a cached-crop feature map at the
    cells of the current crop.

    Both affines map the *original* image's pixels to their crop's pixels
    (``crop_affine`` of the metainfo, flips composed in). A current-crop
    pixel ``q`` is the cached-crop pixel ``A_c A_t^-1 q``; in the
    ``align_corners=False`` normalised coordinates of each crop (which a
    feature map of any size shares with its crop) that is
    ``theta = N_c A_c A_t^-1 N_t^-1``.

    Args:
        cache_affine: ``(B, 2, 3)`` original -> cached crop.
        cache_size: ``(B, 2)`` or ``(2,)`` cached crop ``(w, h)``.
        target_affine: ``(B, 2, 3)`` original -> current crop.
        target_size: ``(B, 2)`` or ``(2,)`` current crop ``(w, h)``.

    Returns:
        Tensor: ``(B, 2, 3)`` float64 (identity for the same crop).
    """
    a_c = _homogeneous(cache_affine)
    a_t = _homogeneous(target_affine).to(a_c.device)
    b = a_c.shape[0]
    cs = torch.as_tensor(cache_size, dtype=torch.float64).reshape(-1, 2)
    ts = torch.as_tensor(target_size, dtype=torch.float64).reshape(-1, 2)
    n_c = _pixel_to_norm(cs.expand(b, 2).to(a_c.device))
    n_t = _pixel_to_norm(ts.expand(b, 2).to(a_c.device))
    theta = n_c @ a_c @ torch.linalg.inv(a_t) @ torch.linalg.inv(n_t)
    return theta[:, :2]


def warp_feature_maps(feats: Tensor,
                      theta: Tensor,
                      size: Tuple[int, int],
                      eps: float = 1e-6) -> Tuple[Tensor, Tensor]:
    """Resample feature maps through ``theta`` onto an ``(h, w)`` grid.

    Bilinear, ``align_corners=False``, border padding. For the identity
    ``theta`` this is ``F.interpolate(feats, size, mode='bilinear',
    align_corners=False)`` (the neck's resize of live teacher features with
    ``downsample='bilinear'``; :func:`prior_target` area-pools first).

    Args:
        feats (Tensor): ``(B, C, h_in, w_in)``.
        theta (Tensor): ``(B, 2, 3)`` from :func:`relative_crop_theta`.
        size (tuple): output ``(h, w)``.
        eps (float): tolerance of the inside test.

    Returns:
        tuple: ``(B, C, h, w)`` features and ``(B, 1, h, w)`` float mask, 1
        where the cell centre falls inside the cached crop.
    """
    b, c = feats.shape[:2]
    grid = F.affine_grid(
        theta.to(torch.float64), (b, c, int(size[0]), int(size[1])),
        align_corners=False)
    inside = (grid.abs() <= 1.0 + eps).all(-1)[:, None]
    out = F.grid_sample(
        feats,
        grid.to(feats.dtype),
        mode='bilinear',
        padding_mode='border',
        align_corners=False)
    return out, inside.to(feats.dtype)


def prior_target(feats: Dict[str, Tensor],
                 cache_affine: Tensor,
                 cache_size: Sequence[int],
                 target_affine: Tensor,
                 target_size: Tensor,
                 size: Tuple[int, int],
                 warp: str = 'affine',
                 mask_outside: bool = True,
                 crop_tol: float = 1e-4,
                 names: Optional[Sequence] = None,
                 downsample: str = 'area'
                 ) -> Tuple[Tensor, Optional[Tensor]]:
    """The distillation target of a batch from cached teacher features:
    each prior resampled from the cached crop onto the sample's crop, then
    averaged over the priors.

    Args:
        feats (dict): ``{prior: (B, C, h', w') float32}`` cached features.
        cache_affine (Tensor): ``(B, 2, 3)`` original image -> cached crop.
        cache_size (Sequence[int]): the cached crop's ``(w, h)``.
        target_affine (Tensor): ``(B, 2, 3)`` original image -> the
            sample's crop (metainfo ``crop_affine``).
        target_size (Tensor): ``(B, 2)`` the sample's ``(w, h)`` (metainfo
            ``input_size``).
        size (tuple): output ``(h, w)`` (the grid of the features that are
            distilled).
        warp (str): for a sample cropped unlike the cache (shift / scale /
            rotation): ``'affine'`` resamples through the relative crop
            affine, ``'none'`` uses the cached crop as it is, ``'refuse'``
            raises.
        mask_outside (bool): return the weight of the cells the cached
            crop covers (``'affine'`` only).
        crop_tol (float): largest difference of the relative affine from
            the identity that counts as the same crop.
        names (Sequence, optional): per sample, how errors name it (e.g.
            ``img_id``).
        downsample (str): ``'area'`` first averages a cached map larger
            than ``size`` onto ``size`` cells (same normalised coordinates)
            and then resamples it through the crop affine; ``'bilinear'``
            (the old behaviour) resamples the cached map directly (a point
            sample of it).

    Returns:
        tuple: ``(B, C, h, w)`` target and ``(B, 1, h, w)`` loss weight
        (None without ``mask_outside`` or with ``warp='none'``).
    """
    if warp not in WARP_MODES:
        raise ValueError(f'prior feature cache: warp must be one of '
                         f'{WARP_MODES}, got {warp!r}')
    if downsample not in DOWNSAMPLE_MODES:
        raise ValueError(f'prior feature cache: downsample must be one of '
                         f'{DOWNSAMPLE_MODES}, got {downsample!r}')
    theta = relative_crop_theta(cache_affine, cache_size,
                                target_affine.to(cache_affine.device),
                                target_size)
    eye = torch.eye(2, 3, dtype=theta.dtype, device=theta.device)
    moved = (theta - eye).abs().flatten(1).amax(1) > crop_tol
    if moved.any() and warp == 'refuse':
        idx = moved.nonzero()[:, 0].tolist()
        bad = [names[i] for i in idx] if names is not None else idx
        raise ValueError(
            "prior feature cache (warp='refuse'): samples img_id="
            f'{bad[:5]} were cropped differently from the cached '
            'deterministic crop (geometric augmentation); use '
            'TwoHandCropAffine(test_mode=True) in the training pipeline '
            "or set warp='affine' or 'none'")
    if warp == 'none':
        theta = eye.expand_as(theta)
    warped, weight = [], None
    for f in feats.values():
        if downsample == 'area':
            f = resize_features(f, size, 'area')
        f, inside = warp_feature_maps(f, theta, size)
        warped.append(f)
        weight = inside
    target = torch.stack(warped).mean(0)
    if not mask_outside or warp == 'none':
        weight = None
    return target, weight


# ----------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------
def _temporaries(parent: str, name: str) -> List[Tuple[str, str]]:
    """``(entry, pid)`` of the writers' temporary folders for cache
    ``name`` in ``parent`` (``.NAME.tmp-PID`` and ``.NAME.tmp-PID.old``)."""
    prefix = f'.{name}.tmp-'
    if not osp.isdir(parent):
        return []
    out = []
    for entry in sorted(os.listdir(parent)):
        if entry.startswith(prefix):
            pid = entry[len(prefix):]
            out.append(
                (entry, pid[:-len('.old')] if pid.endswith('.old') else pid))
    return out


def _writer_alive(pid: str) -> bool:
    """Whether the writer process ``pid`` (a string) still runs (this
    process does not count: its own leftovers are stale)."""
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return True


def recover_interrupted_commit(root: str) -> Optional[str]:
    """Put back the cache at ``root`` when a writer was killed between
    the two renames of :meth:`PriorFeatureCacheWriter.commit`.

    With ``root`` missing, the newest complete (``index.json`` written) new
    cache ``.NAME.tmp-PID`` of a writer that no longer runs is renamed to
    ``root`` (and its writer's ``.NAME.tmp-PID.old`` removed); failing
    that, the replaced cache ``.NAME.tmp-PID.old``. A no-op when ``root``
    exists or nothing complete is left.

    Returns:
        str | None: the folder that was renamed to ``root``, if any.
    """
    root = osp.abspath(root)
    if osp.exists(root):
        return None
    parent, name = osp.split(root)
    new, old = [], []
    for entry, pid in _temporaries(parent, name):
        path = osp.join(parent, entry)
        if _writer_alive(pid) or not osp.isfile(osp.join(path, INDEX_FILE)):
            continue
        (old if entry.endswith('.old') else new).append(path)
    for candidates in (new, old):
        if candidates:
            chosen = max(candidates, key=osp.getmtime)
            os.rename(chosen, root)
            fsync_dir(parent)
            if candidates is new:
                # what the killed writer was about to delete
                shutil.rmtree(chosen + '.old', ignore_errors=True)
            return chosen
    return None


class PriorFeatureCacheWriter:
    """Write a cache all-or-nothing.

    Everything goes into a hidden temporary folder next to ``root``
    (``.NAME.tmp-PID``); :meth:`commit` ``fsync``-s every file, writes
    ``index.json`` last and renames the folder into place, :meth:`abort`
    (also called on any exception inside a ``with`` block,
    ``KeyboardInterrupt`` included) deletes it. A process killed outright
    leaves only the hidden folder, which is never read as a cache and which
    the next writer for the same ``root`` removes. Replacing a cache takes
    two renames (old -> ``.NAME.tmp-PID.old``, new -> ``root``); a kill
    between them is repaired by :func:`recover_interrupted_commit`, which
    the next writer and reader of ``root`` run: the complete new cache (or,
    failing that, the old one) is renamed into place.

    Args:
        root (str): the cache folder to create.
        num_samples (int): ``N``.
        priors (Sequence[str]): prior names (one ``.npy`` each).
        feature_shapes (dict): ``{prior: (C, h, w)}``.
        num_variants (int): 1 (as loaded) or 2 (and flipped).
        overwrite (bool): replace an existing cache at ``root`` (the old one
            stays in place until the new one is complete).
    """

    def __init__(self,
                 root: str,
                 num_samples: int,
                 priors: Sequence[str],
                 feature_shapes: Dict[str, Sequence[int]],
                 num_variants: int = 2,
                 overwrite: bool = False) -> None:
        self.root = osp.abspath(root)
        if osp.exists(self.root) and not overwrite:
            raise FileExistsError(
                f'{self.root} exists; pass --overwrite (overwrite=True) to '
                'replace it')
        if num_variants not in (1, 2):
            raise ValueError(f'num_variants must be 1 or 2, got '
                             f'{num_variants}')
        self.overwrite = overwrite
        self.num_samples = int(num_samples)
        self.priors = tuple(priors)
        self.num_variants = num_variants
        parent, name = osp.split(self.root)
        os.makedirs(parent, exist_ok=True)
        recover_interrupted_commit(self.root)
        self._remove_stale(parent, name)
        self.tmp = osp.join(parent, f'.{name}.tmp-{os.getpid()}')
        if osp.exists(self.tmp):
            shutil.rmtree(self.tmp)
        os.makedirs(self.tmp)
        self.features = {}
        for p in self.priors:
            shape = (self.num_samples, num_variants) + tuple(
                int(s) for s in feature_shapes[p])
            self.features[p] = np.lib.format.open_memmap(
                osp.join(self.tmp, f'{p}.npy'), 'w+', np.float16, shape)
        self.crop_affine = np.full((self.num_samples, num_variants, 2, 3),
                                   np.nan)
        self.img_ids = np.full(self.num_samples, -1, np.int64)
        self.img_paths: List[Optional[str]] = [None] * self.num_samples
        self._written = np.zeros((self.num_samples, num_variants), bool)
        self.done = False

    @staticmethod
    def _remove_stale(parent: str, name: str) -> None:
        """Remove temporary folders of killed writers for the same cache
        (after :func:`recover_interrupted_commit` has put back a cache whose
        commit was cut short)."""
        for entry, pid in _temporaries(parent, name):
            if not _writer_alive(pid):
                shutil.rmtree(osp.join(parent, entry), ignore_errors=True)

    def write(self, rows: Sequence[int], variant: int,
              feats: Dict[str, np.ndarray], crop_affine: np.ndarray,
              img_ids: Sequence[int], img_paths: Sequence[str]) -> None:
        """Store a batch.

        Args:
            rows (Sequence[int]): sample indices ``(B,)``.
            variant (int): 0 (as loaded) or 1 (flipped).
            feats (dict): ``{prior: (B, C, h, w)}`` float arrays.
            crop_affine (np.ndarray): ``(B, 2, 3)`` original -> crop.
            img_ids (Sequence[int]): ``(B,)``.
            img_paths (Sequence[str]): ``(B,)`` relative to the data root.
        """
        rows = np.asarray(rows, np.int64)
        for p in self.priors:
            f = np.asarray(feats[p], np.float32)
            big = np.abs(f).max() if f.size else 0.0
            if not np.isfinite(f).all() or big > 65504.0:
                raise ValueError(
                    f'teacher {p!r} gives values float16 cannot hold (max '
                    f'|x| = {big}) for samples {img_ids}')
            self.features[p][rows, variant] = f.astype(np.float16)
        self.crop_affine[rows,
                         variant] = np.asarray(crop_affine,
                                               np.float64).reshape(-1, 2, 3)
        for r, i, path in zip(rows.tolist(), img_ids, img_paths):
            if self.img_ids[r] >= 0 and self.img_ids[r] != int(i):
                raise ValueError(
                    f'sample {r}: img_id {i} in variant {variant} but '
                    f'{self.img_ids[r]} before: the dataset order changed '
                    'between variants')
            self.img_ids[r] = int(i)
            self.img_paths[r] = str(path)
        self._written[rows, variant] = True

    def commit(self, meta: dict) -> str:
        """Check completeness, write the index and move the cache into
        place.

        Args:
            meta (dict): the rest of ``index.json`` (hashes, crop, dataset,
                provenance).

        Returns:
            str: the cache folder.
        """
        if not self._written.all():
            missing = np.argwhere(~self._written)[:5].tolist()
            raise RuntimeError(f'cache incomplete: (row, variant) {missing} '
                               '... were never written')
        ids, counts = np.unique(self.img_ids, return_counts=True)
        if (counts > 1).any():
            raise ValueError(
                f'img_id {ids[counts > 1][:5].tolist()} occur more than once '
                'in the dataset: the cache is keyed by img_id')
        for p in self.priors:
            self.features[p].flush()
            del self.features[p]
        self.features = {}
        # every file on disk (fsync) before index.json marks the folder
        # complete; the memory-mapped features were flushed (msync) above
        with atomic_write(osp.join(self.tmp, 'crop_affine.npy')) as f:
            np.save(f, self.crop_affine)
        with atomic_write(osp.join(self.tmp, 'img_ids.npy')) as f:
            np.save(f, self.img_ids)
        with atomic_write(osp.join(self.tmp, 'img_paths.txt'), 'w') as f:
            f.write('\n'.join(self.img_paths) + '\n')
        index = dict(
            format=CACHE_FORMAT,
            version=CACHE_VERSION,
            num_samples=self.num_samples,
            priors=list(self.priors),
            variants=list(VARIANTS[:self.num_variants]),
            dtype='float16')
        index.update(_jsonable(meta))
        with atomic_write(osp.join(self.tmp, INDEX_FILE), 'w') as f:
            json.dump(index, f, indent=1)
        fsync_dir(self.tmp)
        parent = osp.dirname(self.root)
        old = None
        if osp.exists(self.root):
            # a kill between these two renames leaves no root: the next
            # writer or reader puts the complete new cache in place
            # (recover_interrupted_commit)
            old = f'{self.tmp}.old'
            os.rename(self.root, old)
        os.rename(self.tmp, self.root)
        fsync_dir(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self.done = True
        return self.root

    def abort(self) -> None:
        """Delete the temporary folder (nothing reaches ``root``)."""
        self.features = {}
        if not self.done:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> 'PriorFeatureCacheWriter':
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self.done:
            self.abort()


# ----------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------
class PriorFeatureCache:
    """Read a cache written by :class:`PriorFeatureCacheWriter`.

    Opening reads ``index.json`` and the small arrays; the feature files are
    memory-mapped (read per batch). :meth:`validate` checks the cache
    against the teachers it replaces.

    Args:
        root (str): the cache folder.
    """

    def __init__(self, root: str) -> None:
        self.root = osp.abspath(osp.expanduser(str(root)))
        self.index_file = osp.join(self.root, INDEX_FILE)
        if not osp.isfile(self.index_file):
            recover_interrupted_commit(self.root)
        if not osp.isfile(self.index_file):
            tmp = [
                e for e in os.listdir(osp.dirname(self.root))
                if e.startswith(f'.{osp.basename(self.root)}.tmp-')
            ] if osp.isdir(osp.dirname(self.root)) else []
            hint = (f' (an unfinished extraction left {tmp}; run the '
                    'extraction again)' if tmp else '')
            raise FileNotFoundError(
                f'prior feature cache: {self.index_file} does not exist'
                f'{hint}; make the cache with tools/misc/'
                'extract_prior_features.py CONFIG --split train --out '
                f'{self.root}')
        with open(self.index_file) as f:
            self.index = json.load(f)
        if self.index.get('format') != CACHE_FORMAT:
            raise ValueError(f'{self.index_file} is not a prior feature '
                             f'cache (format {self.index.get("format")!r})')
        if self.index.get('version') != CACHE_VERSION:
            raise ValueError(f'{self.index_file}: cache version '
                             f'{self.index.get("version")}, this code reads '
                             f'{CACHE_VERSION}; extract the cache again '
                             '(version 2: teachers letterbox their input '
                             "by default; input_mode='stretch' in a "
                             "teacher's config gives the old features)")
        self.priors = tuple(self.index['priors'])
        self.variants = tuple(self.index['variants'])
        self.num_samples = int(self.index['num_samples'])
        self.input_size = tuple(int(s) for s in self.index['input_size'])
        self.img_ids = np.load(self._file('img_ids.npy'))
        with open(self._file('img_paths.txt')) as f:
            self.img_paths = f.read().splitlines()
        self.crop_affine = np.load(self._file('crop_affine.npy'))
        if not (len(self.img_ids) == len(self.img_paths) == len(
                self.crop_affine) == self.num_samples):
            raise ValueError(f'{self.root}: img_ids.npy, img_paths.txt and '
                             'crop_affine.npy do not have num_samples='
                             f'{self.num_samples} rows; extract it again')
        self._row = {int(i): r for r, i in enumerate(self.img_ids.tolist())}
        self._features: Dict[str, np.ndarray] = {}

    def _file(self, name: str) -> str:
        path = osp.join(self.root, name)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'prior feature cache {self.root}: {name} is missing (the '
                'index lists it); extract the cache again')
        return path

    def features(self, prior: str) -> np.ndarray:
        """``(N, V, C, h, w)`` float16 memory map of one prior."""
        if prior not in self._features:
            if prior not in self.priors:
                raise KeyError(f'{self.index_file} holds priors '
                               f'{self.priors}, not {prior!r}')
            arr = np.load(self._file(f'{prior}.npy'), mmap_mode='r')
            expected = (self.num_samples, len(self.variants))
            if arr.shape[:2] != expected:
                raise ValueError(
                    f'{self.root}/{prior}.npy has shape {arr.shape}, the '
                    f'index says {expected} + (C, h, w); extract it again')
            self._features[prior] = arr
        return self._features[prior]

    # ------------------------------------------------------------------
    def validate(self,
                 priors: Sequence[str],
                 teacher_cfgs: Dict[str, dict],
                 teacher_channels: Optional[int] = None,
                 check_checkpoints: bool = True) -> None:
        """Raise unless the cache was made by these teachers.

        Checks the priors, the teachers' config hash (checkpoint paths
        excluded), the SHA-256 of each teacher checkpoint file and the
        channel count; every error names ``index.json``.

        Args:
            priors (Sequence[str]): the neck's priors.
            teacher_cfgs (dict): the neck's ``{prior: teacher config}``.
            teacher_channels (int, optional): the neck's teacher channels.
            check_checkpoints (bool): hash the checkpoint files (seconds for
                Sapiens-size files).
        """
        where = self.index_file
        priors = tuple(priors)
        missing = [p for p in priors if p not in self.priors]
        if missing:
            raise ValueError(f'{where}: the cache has priors {self.priors}, '
                             f'the model needs {priors} (missing {missing}); '
                             'extract the cache again')
        no_cfg = [p for p in priors if p not in teacher_cfgs]
        if no_cfg:
            raise ValueError(f'{where}: the model has no teacher config for '
                             f'{no_cfg}: the cache cannot be checked against '
                             'its teachers')
        stored_cfg = self.index.get('teacher_cfg_hashes', {})
        for p in priors:
            expected = teacher_config_hash(teacher_cfgs[p])
            if stored_cfg.get(p) != expected:
                raise ValueError(
                    f'{where}: stale cache: the {p} teacher was configured '
                    f'differently (config hash {stored_cfg.get(p)}, the '
                    f'model\'s is {expected}); extract the cache again with '
                    'the training config')
        if check_checkpoints:
            stored = self.index.get('teacher_checkpoints', {})
            current = teacher_checkpoint_hashes(teacher_cfgs, priors)
            for p in priors:
                old = (stored.get(p) or {}).get('sha256')
                new = current[p]['sha256']
                if old != new:
                    raise ValueError(
                        f'{where}: stale cache: the {p} teacher checkpoint '
                        f'{current[p]["path"]!r} has SHA-256 {new}, the cache'
                        f' was made from {stored.get(p)}; extract the cache '
                        'again')
        if teacher_channels is not None:
            for p in priors:
                c = int(self.index['feature_shapes'][p][0])
                if c != int(teacher_channels):
                    raise ValueError(
                        f'{where}: {p} features have {c} channels, the '
                        f'model\'s teacher_channels is {teacher_channels}')

    def rows(self,
             img_ids: Sequence[int],
             img_paths: Optional[Sequence[Optional[str]]] = None
             ) -> np.ndarray:
        """Cache rows of samples, by ``img_id`` (and, when given, a check
        that the stored relative image path ends the sample's path).

        Raises:
            KeyError: a sample is not in the cache (named, with the file).
            ValueError: the id is there but for another image.
        """
        out = np.empty(len(img_ids), np.int64)
        for n, i in enumerate(img_ids):
            if i is None or int(i) not in self._row:
                path = None if img_paths is None else img_paths[n]
                raise KeyError(
                    f'{self.index_file}: sample img_id={i} ({path}) is not in '
                    f'the cache ({self.num_samples} samples of '
                    f'{self.index.get("dataset", {}).get("split")!r}); was '
                    'it made for this dataset and split?')
            r = self._row[int(i)]
            if img_paths is not None and img_paths[n] is not None:
                want = self.img_paths[r].replace('\\', '/')
                have = str(img_paths[n]).replace('\\', '/')
                if not have.endswith(want):
                    raise ValueError(
                        f'{self.index_file}: img_id={i} is {want!r} in the '
                        f'cache but the sample is {have!r}: stale cache or '
                        'another dataset; extract the cache again')
            out[n] = r
        return out

    def variant_of(self, flip: bool) -> int:
        """Variant index of a (not) flipped sample."""
        v = VARIANTS.index('flip' if flip else 'plain')
        if v >= len(self.variants):
            raise ValueError(
                f'{self.index_file}: the sample is flipped but the cache has '
                f'no flipped variant (variants {self.variants}); extract it '
                'with --flip both, or remove RandomTwoHandFlip from the '
                'training pipeline')
        return v

    def load(self,
             rows: Sequence[int],
             variants: Sequence[int],
             priors: Optional[Sequence[str]] = None,
             device=None) -> Tuple[Dict[str, Tensor], Tensor]:
        """Features and cached crop affines of a batch.

        Args:
            rows (Sequence[int]): ``(B,)`` from :meth:`rows`.
            variants (Sequence[int]): ``(B,)`` from :meth:`variant_of`.
            priors (Sequence[str], optional): which priors (default all).
            device: target device.

        Returns:
            tuple: ``{prior: (B, C, h, w) float32}`` and ``(B, 2, 3)``
            float64 affines (original image -> cached crop).
        """
        rows = np.asarray(rows, np.int64)
        variants = np.asarray(variants, np.int64)
        feats = {
            p:
            torch.from_numpy(
                np.asarray(self.features(p)[rows, variants],
                           np.float32)).to(device)
            for p in (self.priors if priors is None else priors)
        }
        aff = torch.from_numpy(self.crop_affine[rows, variants]).to(device)
        return feats, aff

    def __deepcopy__(self, memo) -> 'PriorFeatureCache':
        # read-only: a model copy (e.g. an EMA model) shares it instead of
        # copying memory maps into memory
        return self

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['_features'] = {}  # memory maps are reopened on demand
        return state

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.root!r}, samples='
                f'{self.num_samples}, priors={self.priors}, variants='
                f'{self.variants})')


def now_iso() -> str:
    return time.strftime('%Y-%m-%dT%H:%M:%S')

# Copyright (c) mmhand2p contributors. All rights reserved.
"""InterHand2.6M (Moon et al., ECCV 2020) in its released file format.

Layout read (both releases)::

    data_root/
      images/{train,val,test}/Capture*/<seq>/cam*/image*.jpg
      annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d,
                                                 MANO_NeuralAnnot}.json
      # or the earlier layout with the annotation subset as a folder:
      annotations/{all,human_annot,machine_annot}/InterHand2.6M_{split}_*.json

Facts of the format used here (from the release's README and its reference
code, ``InterHand2.6M/data/InterHand2.6M/dataset.py`` and
``tool/MANO_render/render.py``):

* ``data.json`` is COCO-style: one image and one annotation per camera view;
  images carry ``capture``, ``camera``, ``frame_idx``, ``seq_name``,
  ``file_name``; annotations carry ``bbox`` (x, y, w, h, both hands),
  ``joint_valid`` (42 x [0/1]), ``hand_type`` and ``hand_type_valid``.
* ``camera.json``: ``{capture: {campos|camrot|focal|princpt: {camera: v}}}``
  with ``campos`` in mm (world), ``camrot`` world -> camera rotation, so
  ``X_cam = camrot @ (X_world - campos)``; ``focal`` / ``princpt`` in pixels.
* ``joint_3d.json``: ``{capture: {frame_idx: {world_coord: 42 x 3 (mm),
  joint_valid, hand_type, hand_type_valid}}}``; 42 joints, right hand 0-20
  then left 21-41, each tips first with the wrist last (see
  ``joint_conventions.py``).
* ``MANO_NeuralAnnot.json``: ``{capture: {frame_idx: {right|left: None |
  {pose: 48, shape: 10, trans: 3}}}}`` in the world frame, metres, for
  ``smplx`` MANO with ``use_pca=False`` and ``flat_hand_mean=False`` (the
  finger pose is relative to ``hands_mean``).
"""
import json
import logging
import os
import os.path as osp
import time
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmhand2p.conventions import (INTERHAND_TO_HAND21, JOINT_NAMES,
                                  NUM_HAND_JOINTS, SKELETON_PARENTS,
                                  load_mano_file, resolve_mano_path)
from mmhand2p.registry import DATASETS
from mmhand2p.utils.fileio import atomic_write

__all__ = ['InterHand26MDataset']

HAND_TYPES = ('right', 'left', 'interacting')
_IH21 = np.asarray(INTERHAND_TO_HAND21)
_IH42_TO_TWO_HANDS = np.concatenate([_IH21, _IH21 + NUM_HAND_JOINTS])


def _require_file(path: str, what: str) -> str:
    if not osp.isfile(path):
        raise FileNotFoundError(f'InterHand2.6M {what} file {path!r} does '
                                'not exist')
    return path


def _load_json(path: str, what: str):
    _require_file(path, what)
    try:
        with open(path, 'r') as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'InterHand2.6M {what} file {path!r} is not valid '
                         f'JSON: {e}') from e


#: names of skipped records a warning lists per reason
_NAMES_SHOWN = 3
#: largest |R R^T - I| of an accepted ``camrot`` (the release's rotations
#: are orthonormal to 1e-7)
_ROT_TOL = 1e-3
_MANO_MALFORMED = 'NaN/inf or malformed MANO parameters'


def _record_name(img_id: int, img: dict, frame_name: str = '') -> str:
    """How a warning names an image record: its id, file and frame."""
    parts = [f'image id {img_id}']
    if img.get('file_name'):
        parts.append(repr(str(img['file_name'])))
    if not frame_name and 'capture' in img and 'frame_idx' in img:
        frame_name = f"capture {img['capture']} frame {img['frame_idx']}"
    if frame_name:
        parts.append(frame_name)
    return ' '.join(parts)


def _image_shape(img: dict) -> Tuple[int, int]:
    """``(height, width)`` of an image record; ``ValueError`` naming the
    field when it is missing, not a number or below 1."""
    out = []
    for key in ('height', 'width'):
        try:
            v = float(img[key])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f'{key} is missing or not a number') from None
        if not (np.isfinite(v) and v >= 1):
            raise ValueError(f'{key} is not a positive number')
        out.append(int(round(v)))
    return out[0], out[1]


def _frame_joints(joints: dict, capture: str,
                  frame: str) -> Tuple[Optional[str], Optional[np.ndarray]]:
    """``(None, (42, 3) world joints in mm)`` of a frame of
    ``joint_3d.json``, or ``(why it cannot be used, None)``."""
    try:
        world = np.asarray(
            joints[capture][frame]['world_coord'], dtype=np.float64)
    except (KeyError, TypeError, ValueError, IndexError):
        return 'no joint_3d entry', None
    if world.shape != (42, 3):
        return 'world_coord is not 42 x 3', None
    if not np.isfinite(world).all():
        return 'NaN/inf in world_coord', None
    return None, world


def _frame_mano_entry(manos: Optional[dict], capture: str, frame: str):
    """A frame's entry of ``MANO_NeuralAnnot.json``: None where there is
    none, else what the file holds (checked by ``_mano_arrays``)."""
    if manos is None:
        return None
    per_capture = manos.get(capture)
    if isinstance(per_capture, dict):
        return per_capture.get(frame)
    return per_capture  # None, or malformed (not an object)


def _camera_row(cameras: dict, capture: str,
                camera: str) -> Tuple[Optional[str], Optional[np.ndarray]]:
    """``(None, row)`` with ``row`` = camrot (9), campos (3, mm), focal (2),
    princpt (2), or ``(why the camera cannot project, None)``: a missing or
    non-finite value, a focal length that is not positive, a ``camrot``
    that is not a rotation (singular, reflecting or not orthonormal)."""
    try:
        cam = cameras[capture]
        row = np.concatenate([
            np.asarray(cam['camrot'][camera], dtype=np.float64).reshape(9),
            np.asarray(cam['campos'][camera], dtype=np.float64).reshape(3),
            np.asarray(cam['focal'][camera], dtype=np.float64).reshape(2),
            np.asarray(cam['princpt'][camera], dtype=np.float64).reshape(2)
        ])
    except (KeyError, TypeError, ValueError, IndexError):
        return 'no camera entry', None
    if not np.isfinite(row).all():
        return 'NaN/inf in camera', None
    if not (row[12:14] > 0).all():
        return 'focal length is not positive', None
    rot = row[:9].reshape(3, 3)
    if (np.abs(rot @ rot.T - np.eye(3)).max() > _ROT_TOL
            or np.linalg.det(rot) <= 0):
        return 'camrot is not a rotation', None
    return None, row


class _MANOShapeRoot:
    """Root joint of the shaped rest mesh, J0(betas), for one hand model:
    ``J0 = J_regressor[0] @ (v_template + shapedirs @ betas)``."""

    def __init__(self, data: Dict[str, np.ndarray]):
        jr0 = np.asarray(data['J_regressor'], dtype=np.float64)[0]
        self.template = jr0 @ np.asarray(data['v_template'])
        self.dirs = np.einsum('v,vck->ck', jr0, np.asarray(data['shapedirs']))
        self.hands_mean = np.asarray(data['hands_mean'], dtype=np.float64)

    def __call__(self, betas: np.ndarray) -> np.ndarray:
        k = min(len(betas), self.dirs.shape[1])
        return self.template + self.dirs[:, :k] @ betas[:k]


@DATASETS.register_module()
class InterHand26MDataset(BaseDataset):
    """InterHand2.6M (and Re:InterHand / the synthetic set, same format).

    The dataset keeps a compact columnar index of the annotations (a few
    tens of bytes per image) and assembles each sample's data info
    (``docs/data_pipeline.md``) on demand, so the 1.36M-image training split
    loads without building millions of Python dicts.

    Args:
        data_root (str): dataset root (see the module docstring).
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        annot_subset (str): ``'all'``, ``'human_annot'`` or
            ``'machine_annot'`` (folders of the earlier release; the v1.0
            release has only ``'all'``).
        ann_file / camera_file / joint_file / mano_file (str, optional):
            explicit annotation files (relative to ``data_root`` or absolute),
            overriding the release layout. ``mano_file=''`` disables MANO.
        img_prefix (str, optional): image folder (default
            ``images/{split}``).
        hand_type (str | Sequence[str]): keep samples of these hand types:
            ``'right'``, ``'left'``, ``'interacting'``, ``'single'`` (right or
            left) or ``'all'``.
        require_mano (bool): drop samples where a present hand has no MANO
            annotation (otherwise ``mano_valid`` is False for it). MANO
            parameters that are there but malformed (NaN/inf, wrong sizes,
            not an object) are a fault: with True the sample is skipped and
            counted in ``num_skipped``; with False that hand's MANO is
            dropped (``mano_valid`` False), the sample kept and counted in
            ``num_mano_dropped``.
        mano_model_path (str, optional): MANO model (folder), used for
            ``hands_mean`` and the shaped root joint; None = bundled model.
        annot_flat_hand_mean (bool): the MANO annotations are flat-hand
            relative (True) or relative to ``hands_mean`` (False, the
            NeuralAnnot convention). Samples are always flat-hand relative.
        bbox_expand (float): per-hand boxes are the valid projected joints'
            extent times this factor.
        min_valid_joints (int): a hand with fewer valid joints is treated as
            absent.
        index_cache_dir (str, optional): where the compact index of the
            annotation files is cached (an ``.npz`` keyed by the files'
            paths, sizes and modification times), so only the first load
            parses the JSON; None disables the cache. On the 1.36M-image
            training split the first load takes about a minute and 8.6 GB,
            a cached one seconds (``docs/datasets.md``).
        **kwargs: ``pipeline``, ``test_mode``, ``lazy_init``, ``indices``,
            ``max_refetch``, ``metainfo`` of ``BaseDataset``.

    Attributes (after ``full_init``):
        num_skipped (int): annotation records that cannot make a sample
            (see :meth:`_load_index` for the list of faults), skipped when
            the index is built and named, the first three per reason, in one
            warning; a cached index gives the same count and warning.
        skip_counts (dict): ``num_skipped`` per reason.
        num_mano_dropped (int): kept samples whose present hand lost its
            malformed MANO parameters (``require_mano=False``).
    """

    METAINFO = dict(
        dataset_name='interhand26m',
        num_joints=NUM_HAND_JOINTS,
        joint_names=JOINT_NAMES,
        skeleton_parents=SKELETON_PARENTS,
        hand_axis=('right', 'left'))

    def __init__(self,
                 data_root: str = '',
                 split: str = 'test',
                 annot_subset: str = 'all',
                 ann_file: Optional[str] = None,
                 camera_file: Optional[str] = None,
                 joint_file: Optional[str] = None,
                 mano_file: Optional[str] = None,
                 img_prefix: Optional[str] = None,
                 hand_type: Union[str, Sequence[str]] = 'all',
                 require_mano: bool = False,
                 mano_model_path: Optional[str] = None,
                 annot_flat_hand_mean: bool = False,
                 bbox_expand: float = 1.2,
                 min_valid_joints: int = 1,
                 index_cache_dir: Optional[str] = '~/.cache/mmhand2p',
                 **kwargs) -> None:
        if split not in ('train', 'val', 'test'):
            raise ValueError(f"split must be 'train', 'val' or 'test', got "
                             f'{split!r}')
        if annot_subset not in ('all', 'human_annot', 'machine_annot'):
            raise ValueError("annot_subset must be 'all', 'human_annot' or "
                             f"'machine_annot', got {annot_subset!r}")
        self.split = split
        self.annot_subset = annot_subset
        self.hand_types = self._parse_hand_type(hand_type)
        self.require_mano = require_mano
        self.mano_model_path = mano_model_path
        self.annot_flat_hand_mean = annot_flat_hand_mean
        self.bbox_expand = bbox_expand
        self.min_valid_joints = min_valid_joints
        self.index_cache_dir = index_cache_dir
        self._files = self._resolve_files(data_root, ann_file, camera_file,
                                          joint_file, mano_file, img_prefix)
        kwargs.setdefault('serialize_data', False)
        super().__init__(
            ann_file=self._files['data'],
            data_root=data_root,
            data_prefix=dict(img=self._files['img']),
            **kwargs)

    # ------------------------------------------------------------------
    @staticmethod
    def _parse_hand_type(hand_type) -> tuple:
        names = [hand_type] if isinstance(hand_type, str) else list(hand_type)
        out = set()
        for name in names:
            if name == 'all':
                out.update(HAND_TYPES)
            elif name == 'single':
                out.update(('right', 'left'))
            elif name in HAND_TYPES:
                out.add(name)
            else:
                raise ValueError(
                    f'hand_type {name!r} is not one of right, left, '
                    'interacting, single, all')
        return tuple(t for t in HAND_TYPES if t in out)

    def _resolve_files(self, data_root, ann_file, camera_file, joint_file,
                       mano_file, img_prefix) -> Dict[str, Optional[str]]:

        def under_root(p):
            # absolute, so that BaseDataset does not join data_root again
            return osp.abspath(p if osp.isabs(p) else osp.join(data_root, p))

        split = self.split
        if ann_file is None:
            candidates = [
                osp.join('annotations', self.annot_subset,
                         f'InterHand2.6M_{split}_data.json')
            ]
            if self.annot_subset == 'all':
                candidates.append(
                    osp.join('annotations', split,
                             f'InterHand2.6M_{split}_data.json'))
            found = [c for c in candidates if osp.isfile(under_root(c))]
            if not found:
                raise FileNotFoundError(
                    'InterHand2.6M annotation file not found; looked for ' +
                    ', '.join(repr(under_root(c)) for c in candidates))
            ann_file = found[0]
        ann_dir = osp.dirname(ann_file)
        prefix = osp.basename(ann_file)[:-len('data.json')] \
            if ann_file.endswith('data.json') else f'InterHand2.6M_{split}_'

        def sibling(given, kind):
            if given is not None:
                return under_root(given) if given else None
            return under_root(osp.join(ann_dir, f'{prefix}{kind}.json'))

        files = dict(
            data=under_root(ann_file),
            camera=sibling(camera_file, 'camera'),
            joint=sibling(joint_file, 'joint_3d'),
            mano=sibling(mano_file, 'MANO_NeuralAnnot'),
            img=img_prefix if img_prefix is not None else osp.join(
                'images', split))
        if files['mano'] is not None and not osp.isfile(files['mano']):
            if self.require_mano:
                raise FileNotFoundError(
                    f"InterHand2.6M MANO file {files['mano']!r} does not "
                    'exist (require_mano=True)')
            files['mano'] = None
        return files

    # ------------------------------------------------------------------
    def full_init(self) -> None:
        """Load the annotation files into the columnar index."""
        if self._fully_initialized:
            return
        t0 = time.time()
        cache = self._cache_path()
        source = None
        if cache and osp.isfile(cache):
            try:
                self._load_cache(cache)
                source = 'cache ' + cache
            except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
                print_log(
                    f'InterHand26MDataset: the index cache {cache!r} is '
                    f'unreadable ({e!r}); rebuilding it from the annotation '
                    'files', logger='current', level=logging.WARNING)
        if source is None:
            self._load_index()
            if cache:
                self._save_cache(cache)
        self._prepare_mano_roots()
        self._filter()
        self._warn_skipped()
        if self._indices is not None:
            keep = np.asarray(self._indices, dtype=np.int64) if not isinstance(
                self._indices, int) else np.arange(self._indices)
            self._select(keep)
        self._fully_initialized = True
        print_log(
            f'InterHand26MDataset({self.split}): {len(self)} samples '
            f'({", ".join(self.hand_types)}) loaded in '
            f'{time.time() - t0:.1f} s from {source or self._files["data"]}',
            logger='current')

    def load_data_list(self) -> List[dict]:
        """Materialise every sample's data info (small datasets only)."""
        self.full_init()
        return [self.get_data_info(i) for i in range(len(self))]

    def __len__(self) -> int:
        if not self._fully_initialized:
            self.full_init()
        return len(self._col['img_id'])

    def _load_index(self) -> None:
        """Parse the annotation files into the columnar index.

        Every annotation record that cannot make a sample is skipped and
        remembered with its reason and name (``self._skipped``, cached with
        the index): no image record or a missing field (``capture``,
        ``camera``, ``frame_idx``, ``file_name``, ``joint_valid``,
        ``hand_type``), a ``width`` / ``height`` that is not a positive
        number, a ``joint_valid`` that is not 42 finite numbers, an unknown
        ``hand_type``, a frame without 42 finite world joints, a camera
        without finite ``camrot`` / ``campos`` / ``focal`` / ``princpt``,
        a focal length that is not positive or a ``camrot`` that is not a
        rotation. Malformed MANO parameters are marked per frame and hand
        (``_frame_mano['bad']``) and handled by :meth:`_filter`.
        """
        from xtcocotools.coco import COCO
        data_path = _require_file(self._files['data'], 'annotation')
        cameras = _load_json(self._files['camera'], 'camera')
        joints = _load_json(self._files['joint'], 'joint_3d')
        manos = _load_json(self._files['mano'],
                           'MANO') if self._files['mano'] else None
        for what, obj, path in (('camera', cameras, self._files['camera']),
                                ('joint_3d', joints, self._files['joint']),
                                ('MANO', manos, self._files['mano'])):
            if obj is not None and not isinstance(obj, dict):
                raise ValueError(
                    f'InterHand2.6M {what} file {path!r} must hold a JSON '
                    f'object keyed by capture, got {type(obj).__name__}')
        try:
            coco = COCO(data_path)
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f'InterHand2.6M annotation file {data_path!r} '
                             f'is not COCO-style: {e}') from e

        # per-frame tables: world joints (mm) and MANO (world) by key
        frame_keys: Dict[tuple, int] = {}
        frame_joints: List[np.ndarray] = []
        frame_mano: List[Optional[dict]] = []
        frame_names: List[str] = []
        cam_keys: Dict[tuple, int] = {}
        cam_rows: List[np.ndarray] = []
        # why a frame / camera cannot be used, found once per key
        bad_frames: Dict[tuple, str] = {}
        bad_cams: Dict[tuple, str] = {}

        cols = {k: [] for k in ('img_id', 'frame', 'cam', 'joint_valid',
                                'hand_type', 'file_name', 'ori_shape')}
        skipped: List[Tuple[str, int, str]] = []  # (reason, image id, name)
        for ann_id in coco.getAnnIds():
            ann = coco.anns[ann_id]
            rid = ann.get('image_id', ann_id)
            img = coco.imgs.get(rid)
            try:
                rid = int(rid)
            except (TypeError, ValueError):
                skipped.append(('image_id is not an integer', -1,
                                f'annotation id {ann_id}'))
                continue
            if not isinstance(img, dict):
                skipped.append(('no image record for its image_id', rid,
                                f'image id {rid}'))
                continue
            name = _record_name(rid, img)
            try:
                capture, camera, frame, file_name = (str(img[k]) for k in (
                    'capture', 'camera', 'frame_idx', 'file_name'))
                raw_valid = ann['joint_valid']
                hand_type = ann['hand_type']
            except KeyError as e:
                skipped.append((f'missing field {e}', rid, name))
                continue
            why = None
            try:
                shape = _image_shape(img)
            except ValueError as e:
                why = str(e)
            if why is None:
                try:
                    valid = np.asarray(raw_valid,
                                       dtype=np.float64).reshape(-1)
                except (TypeError, ValueError):
                    valid = None
                if valid is None or valid.shape != (42, ):
                    why = 'joint_valid is not 42 long'
                elif not np.isfinite(valid).all():
                    why = 'NaN/inf in joint_valid'
                elif hand_type not in HAND_TYPES:
                    why = 'unknown hand_type'
            fkey, ckey = (capture, frame), (capture, camera)
            if why is None and fkey not in frame_keys:
                why = bad_frames.get(fkey)
                if why is None:
                    why, world = _frame_joints(joints, capture, frame)
                    if why is None:
                        frame_keys[fkey] = len(frame_joints)
                        frame_joints.append(world)
                        frame_mano.append(
                            _frame_mano_entry(manos, capture, frame))
                        frame_names.append(f'capture {capture} frame {frame}')
                    else:
                        bad_frames[fkey] = why
            if why is None and ckey not in cam_keys:
                why = bad_cams.get(ckey)
                if why is None:
                    why, row = _camera_row(cameras, capture, camera)
                    if why is None:
                        cam_keys[ckey] = len(cam_rows)
                        cam_rows.append(row)
                    else:
                        bad_cams[ckey] = why
            if why is not None:
                skipped.append((why, rid, name))
                continue
            cols['img_id'].append(rid)
            cols['frame'].append(frame_keys[fkey])
            cols['cam'].append(cam_keys[ckey])
            cols['joint_valid'].append(valid.astype(np.uint8))
            cols['hand_type'].append(HAND_TYPES.index(hand_type))
            cols['file_name'].append(file_name)
            cols['ori_shape'].append(shape)
        del coco

        self._skipped = dict(
            reason=np.asarray([s[0] for s in skipped], dtype=np.str_),
            img_id=np.asarray([s[1] for s in skipped], dtype=np.int64),
            name=np.asarray([s[2] for s in skipped], dtype=np.str_))
        self._frame_joints = np.asarray(
            frame_joints, dtype=np.float32).reshape(-1, 42, 3)
        self._frame_mano = self._mano_arrays(frame_mano)
        self._frame_names = np.asarray(frame_names, dtype=np.str_)
        self._cams = np.asarray(cam_rows, dtype=np.float64).reshape(-1, 16)
        n = len(cols['img_id'])
        self._col = dict(
            img_id=np.asarray(cols['img_id'], dtype=np.int64),
            frame=np.asarray(cols['frame'], dtype=np.int32),
            cam=np.asarray(cols['cam'], dtype=np.int32),
            joint_valid=np.asarray(cols['joint_valid'],
                                   dtype=np.uint8).reshape(n, 42),
            hand_type=np.asarray(cols['hand_type'], dtype=np.uint8),
            file_name=np.asarray(cols['file_name'], dtype=np.bytes_),
            ori_shape=np.asarray(cols['ori_shape'],
                                 dtype=np.int32).reshape(n, 2))

    @staticmethod
    def _mano_arrays(
            frame_mano: List[Optional[dict]]) -> Dict[str, np.ndarray]:
        """Per-frame MANO annotations as arrays: ``valid`` where a hand has
        well-formed parameters, ``bad`` where it has parameters that are
        malformed (not an object, a key missing, wrong sizes, NaN/inf);
        neither where it has none (``None``, as the release writes it)."""
        n = len(frame_mano)
        out = dict(
            pose=np.zeros((n, 2, 48), np.float32),
            shape=np.zeros((n, 2, 10), np.float32),
            trans=np.zeros((n, 2, 3), np.float32),
            valid=np.zeros((n, 2), bool),
            bad=np.zeros((n, 2), bool))
        for i, mano in enumerate(frame_mano):
            if mano is None:
                continue
            if not isinstance(mano, dict):
                out['bad'][i] = True
                continue
            for hnd, side in enumerate(('right', 'left')):
                p = mano.get(side)
                if p is None:
                    continue
                try:
                    pose = np.asarray(p['pose'], np.float64).reshape(48)
                    shape = np.asarray(p['shape'], np.float64).reshape(-1)
                    trans = np.asarray(p['trans'], np.float64).reshape(3)
                except (KeyError, TypeError, ValueError, IndexError):
                    out['bad'][i, hnd] = True
                    continue
                if shape.size == 0 or not all(
                        np.isfinite(a).all() for a in (pose, shape, trans)):
                    out['bad'][i, hnd] = True
                    continue
                k = min(10, len(shape))
                out['pose'][i, hnd] = pose
                out['shape'][i, hnd, :k] = shape[:k]
                out['trans'][i, hnd] = trans
                out['valid'][i, hnd] = True
        return out

    def _prepare_mano_roots(self) -> None:
        self._mano_roots = None
        if self._frame_mano['valid'].any():
            self._mano_roots = [
                _MANOShapeRoot(
                    load_mano_file(
                        resolve_mano_path(self.mano_model_path, is_right)))
                for is_right in (True, False)
            ]

    # -- index cache -------------------------------------------------------
    # 2: malformed sizes, cameras and MANO are found at index time, the
    # skipped records (reason, id, name) and frame names are cached
    _CACHE_VERSION = 2

    def _cache_path(self) -> Optional[str]:
        if not self.index_cache_dir:
            return None
        import hashlib
        key = [str(self._CACHE_VERSION)]
        for name in ('data', 'camera', 'joint', 'mano'):
            path = self._files[name]
            if path and osp.isfile(path):
                st = os.stat(path)
                key += [osp.abspath(path), str(st.st_size),
                        str(st.st_mtime_ns)]
        digest = hashlib.sha1('|'.join(key).encode()).hexdigest()[:16]
        return osp.join(
            osp.expanduser(self.index_cache_dir),
            f'interhand26m_{self.split}_{digest}.npz')

    def _save_cache(self, path: str) -> None:
        arrays = {f'col_{k}': v for k, v in self._col.items()}
        arrays.update({f'mano_{k}': v for k, v in self._frame_mano.items()})
        arrays.update({f'skip_{k}': v for k, v in self._skipped.items()})
        arrays.update(
            frame_joints=self._frame_joints,
            frame_names=self._frame_names,
            cams=self._cams)
        try:
            with atomic_write(path, 'wb') as f:
                np.savez(f, **arrays)
        except OSError as e:  # a read-only cache dir must not stop training
            print_log(f'InterHand26MDataset: could not write the index '
                      f'cache {path!r} ({e})', logger='current',
                      level=logging.WARNING)

    def _load_cache(self, path: str) -> None:
        with np.load(path, allow_pickle=False) as z:
            col = {k[4:]: z[k] for k in z.files if k.startswith('col_')}
            mano = {k[5:]: z[k] for k in z.files if k.startswith('mano_')}
            skipped = {k[5:]: z[k] for k in z.files if k.startswith('skip_')}
            frame_joints = z['frame_joints']
            frame_names = z['frame_names']
            cams = z['cams']
        required = (
            ('col_', col, ('img_id', 'frame', 'cam', 'joint_valid',
                           'hand_type', 'file_name', 'ori_shape')),
            ('mano_', mano, ('pose', 'shape', 'trans', 'valid', 'bad')),
            ('skip_', skipped, ('reason', 'img_id', 'name')))
        for what, got, need in required:
            missing = [k for k in need if k not in got]
            if missing:
                raise KeyError(f'{what}{missing[0]}')
        self._col, self._frame_mano, self._skipped = col, mano, skipped
        self._frame_joints, self._frame_names = frame_joints, frame_names
        self._cams = cams

    def _hand_presence(self, hand_type: np.ndarray) -> np.ndarray:
        """(N, 2) bool: right / left present by the annotated hand type."""
        return np.stack([hand_type != 1, hand_type != 0], axis=1)

    def _filter(self) -> None:
        """Keep the samples of the wanted hand types (and, with
        ``require_mano``, with MANO for every present hand); account for
        malformed MANO parameters of present hands.

        With ``require_mano=True`` such a sample is skipped and counted in
        ``num_skipped``; otherwise it is kept with ``mano_valid`` False for
        that hand and counted in ``num_mano_dropped``. A hand without MANO
        (``None``) is no fault: ``require_mano`` filters it silently.
        """
        col = self._col
        keep = np.isin(col['hand_type'],
                       [HAND_TYPES.index(t) for t in self.hand_types])
        present = self._hand_presence(col['hand_type'])
        bad_mano = (self._frame_mano['bad'][col['frame']] & present).any(1)
        bad_idx = np.flatnonzero(bad_mano)
        bad_names = [
            _record_name(int(col['img_id'][i]),
                         dict(file_name=col['file_name'][i].decode()),
                         str(self._frame_names[col['frame'][i]]))
            for i in bad_idx[:_NAMES_SHOWN]
        ]
        reasons = [str(r) for r in self._skipped['reason']]
        names = [str(n) for n in self._skipped['name']]
        self.num_mano_dropped = 0
        self._mano_dropped = ([], [])
        if self.require_mano:
            has = self._frame_mano['valid']
            keep &= (has[col['frame']] | ~present).all(1)
            reasons += [_MANO_MALFORMED] * len(bad_idx)
            names += bad_names + [''] * (len(bad_idx) - len(bad_names))
        else:
            self.num_mano_dropped = len(bad_idx)
            self._mano_dropped = (bad_names, len(bad_idx))
        self.num_skipped = len(reasons)
        self.skip_counts: Dict[str, int] = {}
        self._skip_names: Dict[str, List[str]] = {}
        for why, name in zip(reasons, names):
            self.skip_counts[why] = self.skip_counts.get(why, 0) + 1
            shown = self._skip_names.setdefault(why, [])
            if len(shown) < _NAMES_SHOWN and name:
                shown.append(name)
        self._select(np.flatnonzero(keep))

    def _warn_skipped(self) -> None:
        """One warning naming the skipped records (the first few per
        reason), one for MANO parameters dropped from kept samples."""

        def listed(names, count):
            more = count - len(names)
            return ', '.join(names) + (f' and {more} more' if more else '')

        data_path = self._files['data']
        if self.num_skipped:
            detail = '; '.join(
                f'{why}: {n} ({listed(self._skip_names[why], n)})'
                for why, n in self.skip_counts.items())
            print_log(
                f'InterHand26MDataset: skipped {self.num_skipped} malformed '
                f'annotation record(s) of {data_path}: {detail}',
                logger='current',
                level=logging.WARNING)
        names, count = self._mano_dropped
        if count:
            print_log(
                f'InterHand26MDataset: {count} sample(s) of {data_path} '
                f'keep their joints but lose the {_MANO_MALFORMED} of a '
                f'present hand (mano_valid False; require_mano=True would '
                f'skip them): {listed(names, count)}',
                logger='current',
                level=logging.WARNING)

    def _select(self, idx: np.ndarray) -> None:
        self._col = {k: v[idx] for k, v in self._col.items()}

    # ------------------------------------------------------------------
    def get_data_info(self, idx: int) -> dict:
        """Assemble the data info of one sample (``docs/data_pipeline.md``).
        """
        col = self._col
        row = self._cams[col['cam'][idx]]
        rot = row[:9].reshape(3, 3)
        campos = row[9:12]
        fx, fy, cx, cy = row[12:16]
        k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
        world = self._frame_joints[col['frame'][idx]].astype(np.float64)
        cam_mm = (world - campos) @ rot.T
        joints_3d = (cam_mm / 1000.0)[_IH42_TO_TWO_HANDS].reshape(2, 21, 3)
        hand_type = int(col['hand_type'][idx])
        present = self._hand_presence(np.asarray([hand_type]))[0]
        valid = col['joint_valid'][idx].astype(np.float32)[
            _IH42_TO_TWO_HANDS].reshape(2, 21) * present[:, None]
        z = joints_3d[..., 2:3]
        uv = joints_3d[..., :2] / np.where(np.abs(z) < 1e-9, 1e-9, z)
        joints_2d = uv * np.array([fx, fy]) + np.array([cx, cy])
        h, w = (int(v) for v in col['ori_shape'][idx])
        inside = np.ones(valid.shape, dtype=bool)
        if h > 0 and w > 0:
            inside = ((joints_2d[..., 0] >= 0) & (joints_2d[..., 0] < w) &
                      (joints_2d[..., 1] >= 0) & (joints_2d[..., 1] < h))
        valid_2d = valid * inside * (z[..., 0] > 0)
        hand_valid = present & ((valid > 0).sum(1) >= self.min_valid_joints)
        bboxes = np.zeros((2, 4), dtype=np.float32)
        for hnd in range(2):
            m = valid_2d[hnd] > 0
            if hand_valid[hnd] and m.any():
                lo, hi = joints_2d[hnd, m].min(0), joints_2d[hnd, m].max(0)
                c, half = (lo + hi) / 2, (hi - lo) / 2 * self.bbox_expand
                bboxes[hnd] = np.concatenate([c - half, c + half])

        info = dict(
            sample_idx=idx,
            img_id=int(col['img_id'][idx]),
            img_path=osp.join(self.data_prefix['img'],
                              col['file_name'][idx].decode()),
            ori_shape=(h, w),
            hand_type=HAND_TYPES[hand_type],
            cam_intrinsics=k.astype(np.float32),
            joints_3d=joints_3d.astype(np.float32),
            joints_3d_valid=valid.astype(np.float32),
            joints_2d=joints_2d.astype(np.float32),
            joints_2d_valid=valid_2d.astype(np.float32),
            hand_valid=hand_valid,
            bboxes=bboxes,
        )
        info.update(self._mano_info(col['frame'][idx], rot, campos, present))
        return info

    def _mano_info(self, frame: int, rot: np.ndarray, campos_mm: np.ndarray,
                   present: np.ndarray) -> dict:
        pose = np.zeros((2, 16, 3), dtype=np.float32)
        betas = np.zeros((2, 10), dtype=np.float32)
        transl = np.zeros((2, 3), dtype=np.float32)
        root = np.zeros((2, 3), dtype=np.float32)
        valid = np.zeros(2, dtype=bool)
        fm = self._frame_mano
        for hnd in range(2):
            if not (self._mano_roots and fm['valid'][frame, hnd]
                    and present[hnd]):
                continue
            theta = fm['pose'][frame, hnd].astype(np.float64).reshape(16, 3)
            beta = fm['shape'][frame, hnd].astype(np.float64)
            t = fm['trans'][frame, hnd].astype(np.float64)
            model = self._mano_roots[hnd]
            if not self.annot_flat_hand_mean:
                theta[1:] += model.hands_mean.reshape(15, 3)
            j0 = model(beta)
            # world -> camera: X_c = R X_w - R campos, about MANO's root J0
            r_glob, _ = cv2.Rodrigues(rot @ cv2.Rodrigues(theta[0])[0])
            theta[0] = r_glob.reshape(3)
            t_cam = rot @ (j0 + t) - rot @ (campos_mm / 1000.0) - j0
            pose[hnd] = theta
            betas[hnd] = beta
            transl[hnd] = t_cam
            root[hnd] = j0
            valid[hnd] = True
        return dict(
            mano_pose=pose,
            mano_betas=betas,
            mano_transl=transl,
            mano_root_joint=root,
            mano_valid=valid)

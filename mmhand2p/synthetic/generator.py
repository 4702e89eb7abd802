# Copyright (c) mmhand2p contributors. All rights reserved.
"""A synthetic two-hand dataset in InterHand2.6M's exact file format.

The real datasets cannot be downloaded everywhere, so this module renders one
with the package's own hand model (:class:`MANOLayer`) and CPU renderer
(:func:`render_meshes`), writing the annotation files of the InterHand2.6M
release with :class:`InterHandFormatWriter`; :class:`InterHand26MDataset`
reads the result like the real thing. ``docs/datasets.md`` describes what is
generated and how fast.

Layout written under ``out_dir`` (the release's, plus three extras)::

    images/{split}/Capture{c}/{seq}/cam{cam}/image{frame}.jpg
    images/{split}/Capture{c}/{seq}/cam{cam}/image{frame}_seg.png    # extra
    images/{split}/Capture{c}/{seq}/cam{cam}/image{frame}_depth.png  # extra
    annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d,
                                               MANO_NeuralAnnot}.json
    annotations/{split}/synthetic_{split}_frames.json              # extra
    annotations/{split}/hand_boxes_{split}_coco.json               # extra

* ``_seg.png``: uint8 per-pixel hand id, 0 background, 1 right, 2 left
  (:data:`SEG_RIGHT`, :data:`SEG_LEFT`), of the visible surface.
* ``_depth.png``: uint16 camera ``z`` of the visible surface in millimetres,
  0 on the background.
* ``synthetic_{split}_frames.json``: the generator's settings and, per frame,
  the scene facts the release does not have (penetration counts, the gap
  between the hands, the palm configuration...).
* ``hand_boxes_{split}_coco.json``: COCO detection annotations, one box per
  hand and image, categories ``1 = right_hand``, ``2 = left_hand``
  (:func:`write_coco_hand_boxes`, which also converts the real release).

World frame (mm for joints and camera positions, metres for MANO, like the
release): ``+y`` down; the virtual subject faces ``-z``, so the cameras sit
on the ``-z`` side and the subject's right hand is on the ``-x`` side; its
torso is ``TORSO_DEPTH`` behind the hands. MANO annotations are in the world
frame with the finger pose relative to ``hands_mean`` (NeuralAnnot), and the
world joints are exactly ``MANOLayer(flat_hand_mean=False)`` of those
parameters, so every file agrees with every other one.

Modules: :mod:`.scene` samples the hands and cameras, :mod:`.render` draws
the images, :mod:`.writers` writes the annotation files; this module runs
them frame by frame (worker processes, the all-or-nothing split) and
re-exports their public names.

Determinism: every frame draws from its own generator seeded by ``(seed,
split, frame)`` and every capture's camera rig from one seeded by ``(seed,
split, capture)``, and torch runs single-threaded while generating, so the
output does not depend on ``workers``.
"""
import multiprocessing
import os
import os.path as osp
import shutil
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .render import (extra_paths, load_extras, random_background,  # noqa: F401
                     render_view)
from .scene import (COCO_CATEGORIES, DEFAULT_HAND_TYPE_PROBS,  # noqa: F401
                    FORWARD, GAP_MODES, GENERATOR_VERSION, HAND_TYPES,
                    OFFSET_MODE_PROBS, OFFSET_MODES, PALM_JOINTS,
                    PALM_MODE_PROBS, PALM_MODES, SEG_BACKGROUND, SEG_LEFT,
                    SEG_RIGHT, SKIN_TONES, SPLITS, TORSO_DEPTH, UP, _frame_rng,
                    _image_hw, _project, _rig_rng, _unit, _world_to_cam,
                    camera_name, capture_rig, count_inside, hand_contact,
                    hand_orientation, place_second_hand, sample_camera_rig,
                    sample_hand_orientations, sample_hand_scene,
                    sample_skin_tones)
from .writers import (_commit, _write_annotations,  # noqa: F401
                      coco_boxes_path, write_coco_hand_boxes)

__all__ = [
    'SPLITS', 'HAND_TYPES', 'SEG_BACKGROUND', 'SEG_RIGHT', 'SEG_LEFT',
    'COCO_CATEGORIES', 'DEFAULT_HAND_TYPE_PROBS', 'GAP_MODES',
    'sample_camera_rig', 'hand_orientation', 'sample_hand_orientations',
    'sample_skin_tones', 'random_background', 'place_second_hand',
    'count_inside', 'hand_contact', 'sample_hand_scene', 'render_view',
    'extra_paths', 'load_extras', 'generate_synthetic_interhand',
    'write_coco_hand_boxes', 'coco_boxes_path'
]


# ---------------------------------------------------------------------------
# frames (one per worker task)
# ---------------------------------------------------------------------------
class _FrameMaker:
    """Per-process state: the MANO layer, capped faces, rigs by capture."""

    def __init__(self, job: dict) -> None:
        import torch

        from mmhand2p.geometry import boundary_loops, cap_boundary_loops
        from mmhand2p.models.body_models import MANOLayer
        from .hand_model import hand_skeleton
        torch.set_num_threads(1)
        self.job = job
        self.layer = MANOLayer(
            model_path=job['mano_model_path'], flat_hand_mean=False).eval()
        self.faces = self.layer.faces.numpy()  # (2, F, 3), outward
        self.caps = []
        for h, model in enumerate((self.layer.right, self.layer.left)):
            loops = boundary_loops(self.faces[h])
            if len(loops) != 1:
                raise ValueError(
                    f'the hand model {self.layer.paths[h]!r} has '
                    f'{len(loops)} boundary loops; the synthetic generator '
                    'needs one (the wrist opening) for its inside test')
            _, capped = cap_boundary_loops(model.v_template.numpy(),
                                           self.faces[h])
            self.caps.append((loops[0], capped))
        self.skeleton = hand_skeleton()
        self._rigs: Dict[int, List[dict]] = {}

    def rig(self, capture: int) -> List[dict]:
        if capture not in self._rigs:
            self._rigs[capture] = capture_rig(self.job, capture)
        return self._rigs[capture]

    def make(self, index: int) -> dict:
        job = self.job
        h, w = job['image_hw']
        capture = index // job['frames_per_capture']
        cams = self.rig(capture)
        rng = _frame_rng(job['seed'], job['split'], index)
        center = np.asarray(job['center_mm']) / 1000.0
        for attempt in range(50):
            scene = sample_hand_scene(
                rng,
                self.layer,
                self.caps,
                center_m=center,
                hand_type_probs=job['hand_type_probs'],
                gap_modes=job['gap_modes'],
                skeleton=self.skeleton)
            ok = True
            for cam in cams:
                for hnd in np.flatnonzero(scene['present']):
                    pc = _world_to_cam(scene['joints'][hnd], cam)
                    uv = _project(pc, cam)
                    inside = ((uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) &
                              (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1))
                    if pc[:, 2].min() < 0.15 or inside.mean() < 0.8:
                        ok = False
            if ok:
                break
        scene['meta']['attempts'] = attempt + 1
        return self._render_frame(index, capture, cams, scene, rng)

    def _render_frame(self, index, capture, cams, scene, rng) -> dict:
        from mmhand2p.conventions import hand21_to_interhand
        job = self.job
        h, w = job['image_hw']
        present = scene['present']
        seq = f'{capture:04d}_synthetic'
        # world lighting, seen by every camera of the frame
        light = _unit(UP * rng.uniform(0.3, 1.0) +
                      FORWARD * rng.uniform(0.2, 1.0) +
                      rng.normal(0.0, 0.6, 3))
        ambient = rng.uniform(0.25, 0.5)
        diffuse = rng.uniform(0.5, 0.8)
        hands = np.flatnonzero(present)
        views = []
        for k, cam in enumerate(cams):
            cam_name = camera_name(k)
            rel = osp.join(f'Capture{capture}', seq, f'cam{cam_name}',
                           f'image{index}.jpg')
            verts_cam = [
                _world_to_cam(scene['vertices'][i], cam) for i in hands
            ]
            bg = random_background(rng, h, w)
            gain = rng.uniform(0.85, 1.15)
            img, seg, depth = render_view(
                verts_cam, [self.faces[i] for i in hands],
                [SEG_RIGHT if i == 0 else SEG_LEFT for i in hands],
                cam, (h, w),
                np.clip(scene['skin'][hands] * gain, 0, 1),
                cam['camrot'] @ light,
                bg,
                ambient=ambient,
                diffuse=diffuse,
                noise_std=rng.uniform(0.0, 4.0),
                rng=rng)
            path = osp.join(job['tmp_root'], 'images', job['split'], rel)
            os.makedirs(osp.dirname(path), exist_ok=True)
            quality = int(rng.integers(85, 96))
            _imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, quality])
            extras = extra_paths(path)
            _imwrite(extras['seg'], seg)
            _imwrite(extras['depth'], depth)
            uv = np.concatenate([_project(v, cam) for v in verts_cam])
            lo = np.clip(uv.min(0), 0, [w - 1, h - 1])
            hi = np.clip(uv.max(0), 0, [w - 1, h - 1])
            views.append(
                dict(
                    camera=cam_name,
                    file_name=rel.replace(os.sep, '/'),
                    bbox=[
                        float(lo[0]),
                        float(lo[1]),
                        float(hi[0] - lo[0]),
                        float(hi[1] - lo[1])
                    ],
                    hand_pixels=[
                        int((seg == SEG_RIGHT).sum()),
                        int((seg == SEG_LEFT).sum())
                    ]))
        import torch
        world_mm = hand21_to_interhand(
            torch.as_tensor(scene['joints'] * 1000.0)).numpy()
        valid = np.repeat(present.astype(np.int64), 21)
        world_mm = world_mm * valid[:, None]  # absent hand: zeros
        mano = {
            side: (dict(
                pose=scene['pose'][i].reshape(48).astype(np.float32),
                shape=scene['betas'][i].astype(np.float32),
                trans=scene['transl'][i].astype(np.float32))
                   if present[i] else None)
            for i, side in enumerate(('right', 'left'))
        }
        meta = dict(scene['meta'])
        meta['skin_rgb'] = np.round(scene['skin'], 4).tolist()
        return dict(
            index=index,
            capture=capture,
            seq=seq,
            hand_type=scene['hand_type'],
            world_mm=world_mm,
            joint_valid=valid,
            mano=mano,
            views=views,
            meta=meta)


def _imwrite(path: str, img: np.ndarray, params=None) -> None:
    ok = cv2.imwrite(path, img, params or [])
    if not ok:
        raise IOError(f'could not write {path!r}')


_WORKER: Dict[str, _FrameMaker] = {}


def _init_worker(job: dict) -> None:
    _WORKER['maker'] = _FrameMaker(job)


def _run_chunk(indices: Sequence[int]) -> List[dict]:
    maker = _WORKER['maker']
    return [maker.make(i) for i in indices]


# ---------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_tmp(out_dir: str, split: str) -> None:
    prefix = f'.tmp_synthetic_{split}_'
    for name in os.listdir(out_dir):
        if not name.startswith(prefix):
            continue
        try:
            pid = int(name[len(prefix):].split('_')[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(osp.join(out_dir, name), ignore_errors=True)


def generate_synthetic_interhand(
        out_dir: str,
        split: str,
        num_frames: int,
        num_cams: int = 4,
        image_size: Union[int, Tuple[int, int]] = 256,
        seed: int = 0,
        workers: int = 0,
        frames_per_capture: int = 25,
        hand_type_probs: Sequence[float] = DEFAULT_HAND_TYPE_PROBS,
        gap_modes: Optional[Dict] = None,
        mano_model_path: Optional[str] = None,
        coco_boxes: bool = True,
        overwrite: bool = False,
        progress: Optional[Callable[[int, int], None]] = None,
        start_method: Optional[str] = None) -> dict:
    """Generate one split of the synthetic set (see the module docstring).

    The split is written into a temporary folder inside ``out_dir`` and
    moved into place at the end (images first, then annotations), so a run
    that fails or is interrupted leaves no half-written split: a split is
    complete when ``annotations/{split}`` exists.

    Args:
        out_dir (str): dataset root (``data_root`` of the dataset).
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        num_frames (int): time instants; each gives ``num_cams`` images.
        num_cams (int): cameras per capture.
        image_size (int | tuple): ``S`` (square) or ``(H, W)``.
        seed (int): the output is a function of ``(seed, split, frame)``.
        workers (int): processes (0 = this process).
        frames_per_capture (int): frames sharing one camera rig (a
            ``Capture``).
        hand_type_probs (sequence): probabilities of ``interacting``,
            ``right``, ``left``.
        gap_modes (dict, optional): interacting-hand gaps, see
            :data:`GAP_MODES`.
        mano_model_path (str, optional): MANO folder; None = the bundled
            model (the dataset must then be read with the same model).
        coco_boxes (bool): also write the COCO hand-box file
            (:func:`write_coco_hand_boxes`).
        overwrite (bool): replace an existing split (else
            ``FileExistsError``).
        progress (callable, optional): ``progress(done_frames, total)``.
        start_method (str, optional): multiprocessing start method (default
            ``'fork'`` where available).

    Returns:
        dict: ``num_frames``, ``num_images``, ``seconds``, ``frames_per_s``,
        ``images_per_s``, ``hand_types`` (counts), ``penetrating`` (frames)
        and ``files`` (the annotation paths).
    """
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    if num_frames < 1 or num_cams < 1 or frames_per_capture < 1:
        raise ValueError('num_frames, num_cams and frames_per_capture must '
                         f'be >= 1, got {num_frames}, {num_cams}, '
                         f'{frames_per_capture}')
    if seed < 0:
        raise ValueError(f'seed must be >= 0, got {seed}')
    probs = np.asarray(hand_type_probs, np.float64)
    if probs.shape != (3, ) or (probs < 0).any() or probs.sum() <= 0:
        raise ValueError('hand_type_probs must be 3 non-negative numbers '
                         '(interacting, right, left), got '
                         f'{hand_type_probs!r}')
    h, w = _image_hw(image_size)
    if min(h, w) < 16:
        raise ValueError(f'image_size too small: {(h, w)}')
    out_dir = osp.abspath(out_dir)
    final_img = osp.join(out_dir, 'images', split)
    final_ann = osp.join(out_dir, 'annotations', split)
    existing = [p for p in (final_img, final_ann) if osp.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(
            f'synthetic split {split!r} already exists at {existing} (pass '
            'overwrite=True / --overwrite to replace it)')
    os.makedirs(out_dir, exist_ok=True)
    _remove_stale_tmp(out_dir, split)
    tmp_root = tempfile.mkdtemp(
        prefix=f'.tmp_synthetic_{split}_{os.getpid()}_', dir=out_dir)
    job = dict(
        split=split,
        seed=int(seed),
        num_cams=int(num_cams),
        image_hw=(h, w),
        frames_per_capture=int(frames_per_capture),
        hand_type_probs=tuple(float(p) for p in probs / probs.sum()),
        gap_modes=gap_modes,
        mano_model_path=mano_model_path,
        center_mm=(0.0, 0.0, 0.0),
        tmp_root=tmp_root)
    t0 = time.time()
    try:
        records = _make_frames(job, int(num_frames), int(workers), progress,
                               start_method)
        files = _write_annotations(job, records)
        if coco_boxes:
            files['coco_boxes'] = write_coco_hand_boxes(
                tmp_root, split, mano_model_path=mano_model_path)
        _commit(tmp_root, out_dir, split)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    seconds = time.time() - t0
    files = {
        k: osp.join(out_dir, osp.relpath(v, tmp_root))
        for k, v in files.items()
    }
    num_images = sum(len(r['views']) for r in records)
    types = [r['hand_type'] for r in records]
    return dict(
        num_frames=len(records),
        num_images=num_images,
        seconds=seconds,
        frames_per_s=len(records) / seconds,
        images_per_s=num_images / seconds,
        hand_types={t: types.count(t)
                    for t in HAND_TYPES},
        penetrating=sum(bool(r['meta']['penetration']) for r in records),
        files=files)


def _make_frames(job: dict, num_frames: int, workers: int, progress,
                 start_method) -> List[dict]:
    import torch
    records: List[dict] = []
    if workers <= 0:
        threads = torch.get_num_threads()
        try:
            maker = _FrameMaker(job)
            for i in range(num_frames):
                records.append(maker.make(i))
                if progress is not None:
                    progress(i + 1, num_frames)
        finally:
            torch.set_num_threads(threads)
        return records
    chunk = max(1, min(8, num_frames // (workers * 8)))
    chunks = [
        list(range(i, min(i + chunk, num_frames)))
        for i in range(0, num_frames, chunk)
    ]
    if start_method is None:
        methods = multiprocessing.get_all_start_methods()
        start_method = 'fork' if 'fork' in methods else 'spawn'
    if start_method == 'fork':  # import once here, not in every worker
        import manifold3d  # noqa: F401
        import scipy.spatial  # noqa: F401
        import smplx  # noqa: F401

        import mmhand2p.models.body_models  # noqa: F401
        import mmhand2p.visualization  # noqa: F401
    ctx = multiprocessing.get_context(start_method)
    with ctx.Pool(workers, initializer=_init_worker, initargs=(job, )) as pool:
        for out in pool.imap_unordered(_run_chunk, chunks):
            records.extend(out)
            if progress is not None:
                progress(len(records), num_frames)
    records.sort(key=lambda r: r['index'])
    return records

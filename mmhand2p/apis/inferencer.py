# Copyright (c) mmhand2p contributors. All rights reserved.
"""``Hand2PInferencer``: images, folders and videos in; meshes, pictures and
JSON out.

::

    from mmhand2p.apis import Hand2PInferencer
    inferencer = Hand2PInferencer('configs/detect_reconstruct/...py',
                                  weights='model.pth')
    result = inferencer('photos/', out_dir='outputs/demo')
    result['predictions'][0]['hands'][0]['joints_3d']  # 21 x 3, metres

Per image (``{stem}`` = file name without extension, or
``{video_stem}_{frame:06d}``), ``out_dir`` receives ``{stem}_overlay.jpg``
(the meshes drawn over the photo), ``{stem}_side.jpg`` (the meshes seen from
the side), ``{stem}_hand{i}_{right|left}.obj`` (one mesh per hand) and
``{stem}.json`` (:data:`~mmhand2p.apis.io.RESULT_SCHEMA_PATH`,
``docs/demo.md``). The files of an image are committed together
(:class:`~mmhand2p.apis.io.StagedOutputs`): an image that fails leaves none.
"""
import json
import os
import os.path as osp
import re
import sys
import time
from typing import (Callable, Dict, Iterator, List, NamedTuple, Optional,
                    Sequence, Tuple, Union)

import cv2
import numpy as np
import torch
from mmengine.config import Config
from torch import nn

from mmhand2p.structures import HAND_SIDES, hand_instances
from mmhand2p.visualization.image_panels import (_FONT, box_label_layout,
                                                 draw_mesh_overlay,
                                                 draw_side_panel, place_labels)
from .inference import (build_batch, check_intrinsics, find_mano_layer,
                        init_model, load_weights, mesh_faces)
from .io import (IMAGE_EXTENSIONS, RESULT_SCHEMA_VERSION, VIDEO_EXTENSIONS,
                 OutputsNotRestoredError, StagedOutputs, atomic_write_bytes,
                 check_out_dir, imencode, load_image, to_bgr_uint8, write_obj)

__all__ = [
    'Hand2PInferencer', 'prediction_to_dict', 'draw_overlay', 'draw_side_view',
    'place_labels', 'box_label_layout', 'check_options', 'HAND_SIDES',
    'build_visualizer', '_FONT'
]

#: BGR 0-255 colours of the boxes of right / left hands (the mesh colours;
#: :data:`~mmhand2p.visualization.BOX_COLORS` in RGB)
_BOX_COLORS = ((153, 184, 237), (237, 184, 148))
#: the fields of a hand that the result dict reports
#: (:data:`~mmhand2p.structures.INSTANCE_FIELDS`)
RESULT_FIELDS = ('labels', 'bboxes', 'bbox_scores', 'pair_ids', 'mano_pose',
                 'mano_betas', 'mano_transl', 'joints_3d', 'joints_2d',
                 'refined')


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------
class _Item(NamedTuple):
    """One image to process: ``load()`` returns it as ``(H, W, 3)`` BGR."""
    name: str
    path: Optional[str]
    frame: Optional[int]
    load: Callable[[], np.ndarray]


def _is_video(path: str) -> bool:
    return osp.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _list_folder(folder: str) -> List[str]:
    """Images and videos of a folder (not recursive), sorted by name."""
    exts = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    return [
        osp.join(folder, n) for n in sorted(os.listdir(folder)) if
        osp.splitext(n)[1].lower() in exts and osp.isfile(osp.join(folder, n))
    ]


def _video_frame_count(path: str) -> int:
    cap = cv2.VideoCapture(path)
    try:
        return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) \
            if cap.isOpened() else 1
    finally:
        cap.release()


def _video_items(path: str) -> Iterator[_Item]:
    """Frames of a video, read one by one (named ``{stem}_{frame:06d}``)."""
    stem = osp.splitext(osp.basename(path))[0]
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()

        def fail():
            if not osp.exists(path):
                raise FileNotFoundError(f'video file not found: {path!r}')
            raise ValueError(f'OpenCV cannot open the video {path!r} (not a '
                             'video, or its codec is not supported)')

        yield _Item(stem, path, None, fail)
        return
    try:
        frame = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            img = to_bgr_uint8(img, f'{path!r} frame {frame}')
            yield _Item(
                f'{stem}_{frame:06d}', path, frame, lambda img=img: img)
            frame += 1
    finally:
        cap.release()


def _expand(inputs) -> Tuple[List, int]:
    """Flatten ``inputs`` into sources (paths or arrays) and count the
    images they hold (video frames by the container's count)."""
    if isinstance(inputs, (str, os.PathLike, np.ndarray)):
        inputs = [inputs]
    sources: List = []
    for src in inputs:
        if isinstance(src, np.ndarray):
            sources.append(src)
            continue
        path = os.fspath(src)
        if osp.isdir(path):
            sources.extend(_list_folder(path))
        else:
            sources.append(path)
    total = sum(
        _video_frame_count(s) if isinstance(s, str) and _is_video(s) else 1
        for s in sources)
    return sources, total


def _items(sources: Sequence) -> Iterator[_Item]:
    for i, src in enumerate(sources):
        if isinstance(src, np.ndarray):
            yield _Item(
                f'image_{i:06d}', None, None, lambda src=src: load_image(src))
        elif _is_video(src):
            yield from _video_items(src)
        else:
            yield _Item(
                osp.splitext(osp.basename(src))[0],
                src,
                None,
                lambda src=src: load_image(src))


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------
def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype.is_floating_point:
            x = x.double()
        x = x.numpy()
    return np.asarray(x)


def _round(x, decimals: int) -> list:
    return np.round(_np(x).astype(np.float64), decimals).tolist()


def _instances(sample) -> Tuple[Dict[str, np.ndarray], List[dict]]:
    """The hands of a sample (:func:`~mmhand2p.structures.hand_instances`)
    as numpy arrays, and its pairs."""
    if 'pred_instances' not in sample and 'pred_hands' not in sample:
        raise TypeError(
            'the model returned neither pred_instances nor pred_hands: '
            'Hand2PInferencer needs a model of whole images (e.g. '
            'DetectThenReconstruct, configs/detect_reconstruct/, or a '
            'one-stage model writing pred_hands; see '
            'mmhand2p.structures.INSTANCE_FIELDS)')
    inst, pairs = hand_instances(sample)
    return {k: _np(inst.get(k)) for k in inst.keys()}, pairs


def prediction_to_dict(sample,
                       name: str,
                       path: Optional[str] = None,
                       frame: Optional[int] = None,
                       mesh_files: Optional[Sequence[Optional[str]]] = None,
                       timing_ms: Optional[Dict[str, Optional[float]]] = None
                       ) -> dict:
    """One image's prediction as a plain dict following the result schema
    (``mmhand2p/apis/result_schema.json``, ``docs/demo.md``).

    Args:
        sample (HandDataSample): the model's output for the image: its
            hands (``pred_instances`` with metainfo ``pairs``, or
            ``pred_hands``: :func:`~mmhand2p.structures.hand_instances`;
            the fields :data:`RESULT_FIELDS`) and metainfo ``img_shape``,
            ``cam_intrinsics``, ``cam_intrinsics_assumed``
            (:data:`~mmhand2p.structures.META_FIELDS`).
        name (str): the output stem.
        path (str, optional): the image / video file.
        frame (int, optional): the video frame index.
        mesh_files (sequence, optional): per hand, the OBJ file name or
            None.
        timing_ms (dict, optional): ``detector``, ``reconstruction``,
            ``refinement``, ``rendering``, ``total`` in milliseconds.

    Returns:
        dict: JSON-able (lists, floats rounded: 6 decimals for metres and
        radians, 2 for pixels).
    """
    meta = sample.metainfo
    inst, pair_list = _instances(sample)
    h, w = (int(s) for s in meta['img_shape'][:2])
    k = meta.get('cam_intrinsics')
    if k is None:
        raise KeyError('the model did not record the camera (metainfo '
                       'cam_intrinsics) of the image')
    n = len(inst.get('labels', ()))
    missing = [f for f in RESULT_FIELDS if f not in inst]
    if n and missing:
        raise KeyError(f'the model\'s hands lack the fields {missing} '
                       '(mmhand2p.structures.INSTANCE_FIELDS / HAND_FIELDS) '
                       'that the result reports')
    mesh_files = list(mesh_files) if mesh_files is not None else [None] * n
    hands = []
    for i in range(n):
        hands.append(
            dict(
                id=i,
                handedness=HAND_SIDES[int(inst['labels'][i])],
                bbox=_round(inst['bboxes'][i], 2),
                score=round(float(inst['bbox_scores'][i]), 6),
                pair_id=int(inst['pair_ids'][i]),
                mano=dict(
                    pose=_round(inst['mano_pose'][i], 6),
                    betas=_round(inst['mano_betas'][i], 6),
                    transl=_round(inst['mano_transl'][i], 6)),
                joints_3d=_round(inst['joints_3d'][i], 6),
                joints_2d=_round(inst['joints_2d'][i], 2),
                refined=bool(inst['refined'][i]),
                mesh_file=mesh_files[i]))
    pairs = []
    for p in pair_list:
        rel = p.get('rel_transl')
        pairs.append(
            dict(
                right=None if p['right'] < 0 else int(p['right']),
                left=None if p['left'] < 0 else int(p['left']),
                score=round(float(p.get('score', 0.0)), 6),
                rel_transl=None if rel is None else _round(rel, 6)))
    timing = dict(
        detector=None,
        reconstruction=None,
        refinement=None,
        rendering=None,
        total=None)
    timing.update({
        key: None if v is None else round(float(v), 3)
        for key, v in (timing_ms or {}).items() if key in timing
    })
    return dict(
        schema_version=RESULT_SCHEMA_VERSION,
        image=dict(path=path, name=name, frame=frame, width=w, height=h),
        camera=dict(
            intrinsics=_round(_np(k).reshape(3, 3), 6),
            assumed=bool(meta.get('cam_intrinsics_assumed', False))),
        hands=hands,
        pairs=pairs,
        timing_ms=timing)


# ---------------------------------------------------------------------------
# pictures (BGR front ends of mmhand2p.visualization.image_panels)
# ---------------------------------------------------------------------------
def draw_overlay(image: np.ndarray,
                 vertices: np.ndarray,
                 labels: np.ndarray,
                 faces: np.ndarray,
                 intrinsics: np.ndarray,
                 bboxes: Optional[np.ndarray] = None,
                 scores: Optional[np.ndarray] = None,
                 max_side: Optional[int] = 1280) -> np.ndarray:
    """The hand meshes rendered over a BGR photo (and their boxes).

    :func:`~mmhand2p.visualization.draw_mesh_overlay` (what
    :class:`~mmhand2p.visualization.TwoHandLocalVisualizer` draws as the
    ``'overlay'`` panel) on BGR images, with the default colours.

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 BGR, full resolution.
        vertices (np.ndarray): ``(N, V, 3)`` camera frame, metres.
        labels (np.ndarray): ``(N,)`` 0 right, 1 left.
        faces (np.ndarray): ``(2, F, 3)`` right / left faces.
        intrinsics (np.ndarray): ``(3, 3)`` of the full image.
        bboxes (np.ndarray, optional): ``(N, 4)`` x1, y1, x2, y2 pixels.
        scores (np.ndarray, optional): ``(N,)`` shown next to the boxes.
        max_side (int, optional): the picture is downscaled to fit (see
            :func:`~mmhand2p.visualization.vis_scale`); None: full size.

    Returns:
        np.ndarray: ``(h, w, 3)`` uint8 BGR, ``h, w`` = the image size times
        the downscale factor.
    """
    rgb = draw_mesh_overlay(
        np.ascontiguousarray(image[..., ::-1]),
        vertices,
        labels,
        faces,
        intrinsics,
        bboxes,
        scores,
        max_side,
        box_colors=[c[::-1] for c in _BOX_COLORS])
    return np.ascontiguousarray(rgb[..., ::-1])


def draw_side_view(
    vertices: np.ndarray,
    labels: np.ndarray,
    faces: np.ndarray,
    size: Tuple[int, int],
    angle_deg: float = 90.0,
    background: Sequence[int] = (255, 255, 255)
) -> np.ndarray:
    """The meshes seen from the side, BGR:
    :func:`~mmhand2p.visualization.draw_side_panel` (the ``'side'`` panel).

    Args:
        vertices (np.ndarray): ``(N, V, 3)`` camera frame, metres.
        labels (np.ndarray): ``(N,)`` 0 right, 1 left.
        faces (np.ndarray): ``(2, F, 3)``.
        size (tuple): ``(h, w)`` of the panel.
        angle_deg (float): degrees (90: seen from the camera's right).
        background (sequence): BGR 0-255.

    Returns:
        np.ndarray: ``(h, w, 3)`` uint8 BGR.
    """
    rgb = draw_side_panel(vertices, labels, faces, size, angle_deg,
                          tuple(background)[::-1])
    return np.ascontiguousarray(rgb[..., ::-1])


def build_visualizer(model: nn.Module, visualizer=None):
    """The visualizer that draws the inferencer's pictures.

    Built from ``visualizer`` (a config dict) or, when None, from the
    model's config ``visualizer`` (``model.cfg``, set by
    :func:`~mmhand2p.apis.init_model`), or
    ``dict(type='TwoHandLocalVisualizer')``, through mmengine's
    ``VISUALIZERS`` registry (so a config swaps it) under a name of its own
    and without the config's ``vis_backends`` (the inferencer writes its own
    files). Its mesh faces are set to the model's (its ``MANOLayer``) when
    the model has one. An already built visualizer is used as it is.

    Args:
        model (nn.Module): the model whose predictions it draws.
        visualizer (dict | Visualizer, optional): see above.

    Returns:
        Visualizer: with ``add_datasample(..., panels=...)``
        (:meth:`~mmhand2p.visualization.TwoHandLocalVisualizer.add_datasample`).
    """
    from datetime import datetime

    from mmengine.visualization import Visualizer

    from mmhand2p.registry import VISUALIZERS
    from mmhand2p.utils import (keep_default_scope, register_all_modules,
                                set_default_scope)
    if not isinstance(visualizer, Visualizer):
        cfg = visualizer
        if cfg is None:
            model_cfg = getattr(model, 'cfg', None)
            cfg = model_cfg.get('visualizer') if model_cfg is not None \
                else None
        cfg = dict(type='TwoHandLocalVisualizer') if cfg is None else \
            dict(cfg)
        for key in ('vis_backends', 'save_dir'):
            cfg.pop(key, None)
        name = f'hand2p_inferencer_{datetime.now().timestamp()}'
        while Visualizer.check_instance_created(name):
            name += '_'
        cfg['name'] = name
        register_all_modules(init_default_scope=False)
        model_cfg = getattr(model, 'cfg', None)
        scope = (model_cfg.get('default_scope') if model_cfg is not None
                 else None) or 'mmhand2p'
        with keep_default_scope():
            set_default_scope(scope)
            visualizer = VISUALIZERS.build(cfg)
    try:
        faces = find_mano_layer(model).faces
    except ValueError:  # no MANOLayer: the visualizer's own faces
        faces = None
    if faces is not None and hasattr(type(visualizer), 'faces'):
        visualizer.faces = faces.detach().cpu().numpy().astype(np.int64)
    return visualizer


# ---------------------------------------------------------------------------
def check_options(det_score_thr: Optional[float] = None,
                  batch_size: int = 1,
                  max_vis_size: Optional[int] = None) -> None:
    """Check the numeric options of :class:`Hand2PInferencer` (and the
    demo) before any work; a ValueError says what is allowed.

    Args:
        det_score_thr (float, optional): None or a number in ``[0, 1]``.
        batch_size (int): an integer >= 1.
        max_vis_size (int, optional): None, 0 (no limit) or an integer
            >= 1.
    """
    if det_score_thr is not None:
        try:
            thr = float(det_score_thr)
        except (TypeError, ValueError):
            thr = float('nan')
        if not 0.0 <= thr <= 1.0:  # also False for NaN
            raise ValueError('det_score_thr must be a detection score in [0, '
                             f'1] (or None for the config\'s), got '
                             f'{det_score_thr!r}')
    integer = (int, np.integer)
    if not isinstance(batch_size, integer) or isinstance(batch_size, bool) \
            or batch_size < 1:
        raise ValueError(f'batch_size must be an integer >= 1, got '
                         f'{batch_size!r}')
    if max_vis_size is not None and (not isinstance(max_vis_size, integer)
                                     or isinstance(max_vis_size, bool)
                                     or max_vis_size < 0):
        raise ValueError('max_vis_size must be None or 0 (no limit) or an '
                         f'integer >= 1 (pixels), got {max_vis_size!r}')


# ---------------------------------------------------------------------------
class Hand2PInferencer:
    """Two-hand reconstruction of images, folders and videos.

    Args:
        model (str | Config | nn.Module): a whole-image model config (file
            or object, e.g. ``configs/detect_reconstruct/...py``) or a built
            model (``DetectThenReconstruct``).
        weights (str, optional): checkpoint to load (required for
            meaningful results; a config alone gives random weights).
        device (str): ``'cpu'``, ``'cuda:0'``...
        refine (bool): run the model's test-time refiner (penetrating
            pairs only). Sets the model's ``refine``.
        det_score_thr (float, optional): minimal detection score; None keeps
            the config's. Sets the model's ``det_score_thr``.
        batch_size (int): images per model call.
        show_progress (bool): print a progress bar (mmengine's).
        max_vis_size (int, optional): the pictures written / returned are
            downscaled to fit this many pixels on their longer side (the
            JSON and meshes always refer to the full image). None: no
            limit.
        cfg_options (dict, optional): config overrides (``model`` given as
            a config).
        strict (bool): the weights must be exactly the model's (default);
            False loads the matching ones and warns about the rest
            (:func:`~mmhand2p.apis.inference.load_weights`).
        visualizer (dict | Visualizer, optional): draws the pictures
            (``add_datasample(..., panels=('overlay', 'side'))``); None: the
            config's ``visualizer`` (default ``TwoHandLocalVisualizer``),
            see :func:`build_visualizer`.

    The model may be any whole-image model: it takes the batch of
    :func:`~mmhand2p.apis.build_batch` (``test_step``) and writes, per
    image, its hands as ``pred_instances`` (+ metainfo ``pairs``) or as
    ``pred_hands`` (:func:`~mmhand2p.structures.hand_instances`), the
    metainfo ``cam_intrinsics`` and, optionally, ``stage_times_ms``
    (:data:`~mmhand2p.structures.META_FIELDS`). Only those documented
    fields are read.

    Raises:
        ValueError: an option out of range (checked before the model is
            built; the message says what is allowed).
        FileNotFoundError: the config or the weights file is missing.
        CheckpointError: the weights file is empty, truncated, not a
            checkpoint or (with ``strict``) not one of this model.
    """

    def __init__(self,
                 model: Union[str, os.PathLike, Config, nn.Module],
                 weights: Optional[str] = None,
                 device: str = 'cpu',
                 refine: bool = True,
                 det_score_thr: Optional[float] = None,
                 batch_size: int = 1,
                 show_progress: bool = True,
                 max_vis_size: Optional[int] = 1280,
                 cfg_options: Optional[dict] = None,
                 strict: bool = True,
                 visualizer=None) -> None:
        check_options(
            det_score_thr=det_score_thr,
            batch_size=batch_size,
            max_vis_size=max_vis_size)
        if isinstance(model, nn.Module):
            if weights is not None:
                if not osp.isfile(weights):
                    raise FileNotFoundError(
                        f'checkpoint file not found: {weights!r}')
                load_weights(model, weights, strict)
            self.model = model.to(device).eval()
        else:
            self.model = init_model(model, weights, device, cfg_options,
                                    strict)
        if hasattr(self.model, 'refine'):
            self.model.refine = bool(refine)
        if det_score_thr is not None:
            if not hasattr(self.model, 'det_score_thr'):
                raise TypeError(f'{type(self.model).__name__} has no '
                                'det_score_thr to set')
            self.model.det_score_thr = float(det_score_thr)
        self.refine = bool(refine)
        self.batch_size = int(batch_size)
        self.show_progress = show_progress
        self.max_vis_size = max_vis_size or None
        self.visualizer = build_visualizer(self.model, visualizer)
        try:  # the OBJ files' faces: the model's, else the visualizer's
            self.faces = mesh_faces(self.model)
        except ValueError:
            self.faces = np.asarray(self.visualizer.faces, np.int64)

    # ------------------------------------------------------------------
    def _predict(self, images: List[np.ndarray], items: List[_Item],
                 cam_intrinsics) -> Tuple[list, Dict[str, Optional[float]]]:
        """The model on one batch; per-image stage times (ms) are the
        batch's (the model's metainfo ``stage_times_ms``, optional) divided
        evenly; the rest of the model call (data preprocessor included)
        counts as reconstruction."""
        data = build_batch(images, [it.path for it in items],
                           [cam_intrinsics] * len(images))
        t0 = time.perf_counter()
        with torch.no_grad():
            samples = self.model.test_step(data)
        total = 1000.0 * (time.perf_counter() - t0)
        n = len(images)
        stages = (samples[0].metainfo.get('stage_times_ms') or {}) \
            if samples else {}
        det_ms = stages.get('detector')
        refine_ms = stages.get('refinement')
        timing = dict(
            detector=None if det_ms is None else det_ms / n,
            reconstruction=(total - (det_ms or 0.0) - (refine_ms or 0.0)) / n,
            refinement=None if refine_ms is None else refine_ms / n)
        return samples, timing

    def _finish(self, item: _Item, image: np.ndarray, sample, timing: dict,
                t_start: float, out_dir: Optional[str], return_vis: bool,
                save_mesh: bool, save_json: bool, side_view: bool,
                stem: str) -> dict:
        """Pictures, files and the result dict of one image."""
        inst, _ = _instances(sample)
        n = len(inst['labels'])
        overlay = side = None
        render_ms = None
        if out_dir is not None or return_vis:
            t0 = time.perf_counter()
            panels = ('overlay', 'side') if side_view else ('overlay', )
            drawn = self.visualizer.add_datasample(
                stem,
                np.ascontiguousarray(image[..., ::-1]),
                sample,
                draw_gt=False,
                draw_pred=True,
                panels=panels,
                max_side=self.max_vis_size)
            overlay, side = drawn['overlay'], drawn.get('side')  # RGB
            render_ms = 1000.0 * (time.perf_counter() - t0)
        write_meshes = out_dir is not None and save_mesh
        mesh_files = [
            f'{stem}_hand{i}_{HAND_SIDES[int(inst["labels"][i])]}.obj'
            if write_meshes else None for i in range(n)
        ]
        timing = dict(timing, rendering=render_ms)
        result = prediction_to_dict(sample, stem, item.path, item.frame,
                                    mesh_files, timing)
        files: List[str] = []
        if out_dir is not None:
            files = self._write(out_dir, stem, result, inst, overlay, side,
                                mesh_files, save_json, t_start)
        else:
            result['timing_ms']['total'] = round(
                1000.0 * (time.perf_counter() - t_start), 3)
        vis = None
        if return_vis:
            vis = dict(overlay=overlay, side=side)
        return dict(prediction=result, visualization=vis, files=files)

    def _write(self, out_dir: str, stem: str, result: dict, inst: dict,
               overlay: np.ndarray, side: Optional[np.ndarray],
               mesh_files: List[Optional[str]], save_json: bool,
               t_start: float) -> List[str]:
        """All files of one image, committed together; returns their
        paths."""
        s = re.escape(stem)
        patterns = [
            rf'{s}_overlay\.jpg', rf'{s}_side\.jpg',
            rf'{s}_hand\d+_(right|left)\.obj', rf'{s}\.json'
        ]
        with StagedOutputs(out_dir, patterns) as out:
            atomic_write_bytes(
                out.path(f'{stem}_overlay.jpg'),
                imencode(np.ascontiguousarray(overlay[..., ::-1]), '.jpg'))
            if side is not None:
                atomic_write_bytes(
                    out.path(f'{stem}_side.jpg'),
                    imencode(np.ascontiguousarray(side[..., ::-1]), '.jpg'))
            for i, name in enumerate(mesh_files):
                if name is None:
                    continue
                side_name = HAND_SIDES[int(inst['labels'][i])]
                write_obj(
                    out.path(name),
                    inst['vertices'][i],
                    self.faces[int(inst['labels'][i])],
                    comment=f'mmhand2p: {stem} hand {i} ({side_name}), '
                    'camera frame, metres')
            if save_json:
                result['timing_ms']['total'] = round(
                    1000.0 * (time.perf_counter() - t_start), 3)
                atomic_write_bytes(
                    out.path(f'{stem}.json'),
                    json.dumps(result, indent=2).encode('utf-8'))
        if not save_json:
            result['timing_ms']['total'] = round(
                1000.0 * (time.perf_counter() - t_start), 3)
        return out.written

    # ------------------------------------------------------------------
    def iterate(self,
                inputs,
                out_dir: Optional[str] = None,
                return_vis: bool = False,
                save_mesh: bool = True,
                save_json: bool = True,
                side_view: bool = True,
                skip_errors: bool = False,
                cam_intrinsics: Optional[np.ndarray] = None) -> Iterator[dict]:
        """Process ``inputs`` and yield one record per image as it is done
        (see :meth:`__call__` for the arguments).

        ``out_dir`` and ``cam_intrinsics`` are checked when this is called,
        before any image is read (:func:`~mmhand2p.apis.io.check_out_dir`,
        :func:`~mmhand2p.apis.inference.check_intrinsics`).

        Yields:
            dict: ``name``, ``path``, ``frame``, ``prediction`` (the result
            dict, None if the image failed), ``visualization`` (``overlay``
            and ``side`` RGB arrays, or None), ``error`` (None, or the
            message of the image's failure), ``files`` (written paths) and
            ``previous_kept`` (False only when a failed commit could not
            put back the files of an earlier run, see
            :class:`~mmhand2p.apis.io.StagedOutputs`; the error then says
            where their backups are).
        """
        if cam_intrinsics is not None:
            cam_intrinsics = check_intrinsics(cam_intrinsics, 'cam_intrinsics')
        if out_dir is not None:
            out_dir = check_out_dir(out_dir)
        return self._iterate(inputs, out_dir, return_vis, save_mesh, save_json,
                             side_view, skip_errors, cam_intrinsics)

    def _iterate(self, inputs, out_dir, return_vis, save_mesh, save_json,
                 side_view, skip_errors, cam_intrinsics) -> Iterator[dict]:
        sources, total = _expand(inputs)
        bar = None
        if self.show_progress:
            from mmengine.utils import ProgressBar
            bar = ProgressBar(total, file=sys.stdout)
        used: Dict[str, int] = {}

        def stem_of(name: str) -> str:
            count = used.get(name, 0)
            used[name] = count + 1
            return name if count == 0 else f'{name}_{count + 1}'

        def failure(item: _Item, stem: str, err: BaseException) -> dict:
            if not skip_errors:
                raise err
            return dict(
                name=stem,
                path=item.path,
                frame=item.frame,
                prediction=None,
                visualization=None,
                error=f'{type(err).__name__}: {err}',
                files=[],
                previous_kept=not isinstance(err, OutputsNotRestoredError))

        def run(batch) -> Iterator[dict]:
            """``batch``: (item, stem, image, t_start) tuples."""
            try:
                samples, timing = self._predict([b[2] for b in batch],
                                                [b[0] for b in batch],
                                                cam_intrinsics)
            except Exception as err:  # noqa: BLE001 (reported per image)
                if len(batch) > 1 and skip_errors:
                    for one in batch:  # find the image that fails
                        yield from run([one])
                    return
                for item, stem, _, _ in batch:
                    yield failure(item, stem, err)
                return
            for (item, stem, image, t0), sample in zip(batch, samples):
                try:
                    rec = self._finish(item, image, sample, timing, t0,
                                       out_dir, return_vis, save_mesh,
                                       save_json, side_view, stem)
                except Exception as err:  # noqa: BLE001
                    yield failure(item, stem, err)
                    continue
                yield dict(
                    name=stem,
                    path=item.path,
                    frame=item.frame,
                    error=None,
                    previous_kept=True,
                    **rec)

        batch = []
        for item in _items(sources):
            stem = stem_of(item.name)
            t0 = time.perf_counter()
            try:
                image = item.load()
            except Exception as err:  # noqa: BLE001
                yield failure(item, stem, err)
                if bar is not None:
                    bar.update()
                continue
            batch.append((item, stem, image, t0))
            if len(batch) == self.batch_size:
                for rec in run(batch):
                    if bar is not None:
                        bar.update()
                    yield rec
                batch = []
        if batch:
            for rec in run(batch):
                if bar is not None:
                    bar.update()
                yield rec
        if bar is not None:
            bar.file.write('\n')

    def __call__(self,
                 inputs,
                 out_dir: Optional[str] = None,
                 return_vis: bool = False,
                 save_mesh: bool = True,
                 save_json: bool = True,
                 side_view: bool = True,
                 skip_errors: bool = False,
                 cam_intrinsics: Optional[np.ndarray] = None) -> dict:
        """Reconstruct the hands of every input image.

        Args:
            inputs: an image path, an ``(H, W, 3)`` BGR array, a folder
                (its images and videos, sorted by name, not recursive), a
                video file (every frame, named ``{video_stem}_{frame:06d}``)
                or a list of any of these.
            out_dir (str, optional): write each image's files there (module
                docstring); None: write nothing.
            return_vis (bool): also return the pictures.
            save_mesh (bool): write one OBJ per hand (with ``out_dir``).
            save_json (bool): write ``{stem}.json`` (with ``out_dir``).
            side_view (bool): draw / write the side view.
            skip_errors (bool): record an image that fails (unreadable file,
                error in the model or while writing) in ``errors`` and go
                on; False: raise (files of earlier images stay, the failed
                image leaves none).
            cam_intrinsics (np.ndarray, optional): ``(3, 3)`` intrinsics of
                every input (``fx, fy > 0``, finite); None: the model assumes
                a camera (recorded as ``camera.assumed`` in the result).

        Raises:
            ValueError: before any image is read: ``out_dir`` is a file or
                cannot be created or written to, or ``cam_intrinsics`` is
                not a valid camera matrix.

        Returns:
            dict: ``predictions`` (list of result dicts, one per processed
            image, following ``mmhand2p/apis/result_schema.json``),
            ``visualization`` (list of ``{'overlay', 'side'}`` RGB uint8
            arrays, downscaled to ``max_vis_size``; empty unless
            ``return_vis``) and ``errors`` (list of ``{'name', 'path',
            'frame', 'error'}`` for images that failed, with
            ``skip_errors``).
        """
        out = dict(predictions=[], visualization=[], errors=[])
        for rec in self.iterate(inputs, out_dir, return_vis, save_mesh,
                                save_json, side_view, skip_errors,
                                cam_intrinsics):
            if rec['error'] is not None:
                out['errors'].append(
                    {k: rec[k]
                     for k in ('name', 'path', 'frame', 'error')})
                continue
            out['predictions'].append(rec['prediction'])
            if return_vis:
                out['visualization'].append(rec['visualization'])
        return out

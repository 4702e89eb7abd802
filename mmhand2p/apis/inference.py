# Copyright (c) mmhand2p contributors. All rights reserved.
"""Building an inference model from a config and running it on images.

Two functions, in the shape of ``mmdet.apis`` / ``mmpose.apis``::

    from mmhand2p.apis import inference_image, init_model
    model = init_model('configs/detect_reconstruct/...py', 'weights.pth')
    sample = inference_image(model, 'photo.jpg')
    sample.pred_instances  # N detected hands (see below)

The model is a whole-image model (``DetectThenReconstruct``: hand detector,
pairing, two-hand reconstructor, optional refiner) that takes a list of
``(3, H, W)`` uint8 BGR images of any sizes. ``sample.pred_instances`` holds
one row per reconstructed hand: ``bboxes`` ``(N, 4)`` full-image pixels,
``bbox_scores`` ``(N,)``, ``labels`` ``(N,)`` (0 right, 1 left),
``pair_ids``, ``joints_3d`` ``(N, 21, 3)`` metres (camera frame),
``vertices`` ``(N, 778, 3)``, ``joints_2d`` ``(N, 21, 2)`` pixels,
``mano_pose`` ``(N, 16, 3)``, ``mano_betas`` ``(N, 10)``, ``mano_transl``
``(N, 3)``, ``refined`` ``(N,)``; the metainfo ``pairs`` lists the (right,
left) pairs. Another whole-image model may write only ``pred_hands`` (one
pair, :data:`~mmhand2p.structures.HAND_FIELDS`);
:func:`~mmhand2p.structures.hand_instances` reads either form. For the
higher-level interface (folders, videos, written outputs) see
:class:`~mmhand2p.apis.Hand2PInferencer`.
"""
import logging
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from torch import nn

from mmhand2p.structures import HandDataSample
from .io import load_image

__all__ = [
    'init_model', 'load_weights', 'check_intrinsics', 'inference_image',
    'inference_images', 'build_batch', 'find_mano_layer', 'mesh_faces'
]

ImageType = Union[str, os.PathLike, np.ndarray]


def _check_file(path: str, what: str) -> None:
    if '://' in path:  # URLs and other backends: mmengine's loader decides
        return
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path!r}')


def load_weights(model: nn.Module,
                 checkpoint: str,
                 strict: bool = True,
                 what: str = 'checkpoint') -> dict:
    """Load a checkpoint file into a built model.

    Args:
        model (nn.Module): the model.
        checkpoint (str): the file (``torch.load(weights_only=True)``,
            mmengine checkpoint classes allow-listed); its ``state_dict``
            (or the whole dict), ``module.`` prefixes removed.
        strict (bool): every weight of the model must be in the file and
            every weight of the file must belong to the model; False: load
            what matches and log the rest as a warning (use it only for a
            checkpoint you know differs, e.g. one without an optional part;
            a file none of whose weights belong to the model is refused
            even so).
        what (str): how messages name the file.

    Returns:
        dict: the loaded checkpoint (its ``meta`` etc.).

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointError: the file is empty, truncated or not a checkpoint;
            or it does not fit the model: a weight of another shape (also
            with ``strict=False``), or with ``strict`` missing / unexpected
            weights (the first 10 of each and their counts are listed);
            with ``strict=False`` still when not one weight matches.
    """
    import mmhand2p.engine  # noqa: F401 (checkpoint safe globals)
    from mmhand2p.engine.checkpoint import register_checkpoint_safe_globals
    from mmhand2p.utils.checkpoint import (CheckpointError,
                                           describe_key_mismatch,
                                           read_checkpoint, state_dict_of)
    register_checkpoint_safe_globals()
    checkpoint = os.fspath(checkpoint)
    ckpt = read_checkpoint(checkpoint, what)
    state = state_dict_of(ckpt, checkpoint, what)
    name = type(model).__name__
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(
            f'{what} {checkpoint!r} does not fit the {name} of the config '
            f'(weights of other shapes: a checkpoint of another model?): '
            f'{" ".join(str(e).split())[:1000]}') from e
    if missing or unexpected:
        text = describe_key_mismatch(list(missing), list(unexpected))
        matched = len(state) - len(unexpected)
        if strict or matched == 0:
            hint = ' (or strict=False / --no-strict to load only the ' \
                'matching weights)' if matched else ''
            raise CheckpointError(
                f'{what} {checkpoint!r} does not fit the {name} of the '
                f'config ({matched} of its {len(state)} weights match, '
                f'{text}): is it a checkpoint of this config? Pass the '
                f'right checkpoint{hint}')
        from mmengine.logging import print_log
        print_log(
            f'{what} {checkpoint!r} loaded non-strictly into {name}: '
            f'{matched} of its {len(state)} weights match; {text}',
            logger='current',
            level=logging.WARNING)
    return ckpt if isinstance(ckpt, dict) else {}


def init_model(config: Union[str, os.PathLike, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None,
               strict: bool = True) -> nn.Module:
    """Build the inference model of a config and load its weights.

    The model is built as :func:`~mmhand2p.apis.build_inference_model` does
    (training-only prior teachers dropped, a missing MANO folder replaced by
    the bundled hand model), in the config's default scope, which is
    restored after the build (building an mmdet detector may switch it).
    Checkpoints load with ``torch.load(weights_only=True)``
    (:mod:`mmhand2p.engine.checkpoint` allow-lists what mmengine
    checkpoints hold) and strictly by default (:func:`load_weights`).

    Args:
        config (str | PathLike | Config): config file or object.
        checkpoint (str, optional): checkpoint file; None keeps the weights
            the model builds with (random, unless the config's components
            load their own, e.g. ``init_cfg``-free detector checkpoints).
        device (str): ``'cpu'``, ``'cuda:0'``...
        cfg_options (dict, optional): overrides merged into the config
            (``Config.merge_from_dict``).
        strict (bool): the checkpoint must hold exactly the model's
            weights (default); False loads the matching ones and warns
            about the rest.

    Returns:
        nn.Module: the model in eval mode on ``device``; ``model.cfg`` is the
        config, ``model.build_notes`` what the inference build changed.

    Raises:
        FileNotFoundError: the config or the checkpoint file is missing.
        CheckpointError: the checkpoint is empty, truncated, not a
            checkpoint, or (with ``strict``) not one of this model; the
            message names the path and the differing keys.
    """
    import mmhand2p.engine  # noqa: F401 (checkpoint safe globals)
    from mmhand2p.utils import (keep_default_scope, register_all_modules,
                                set_default_scope)
    from .inference_model import build_inference_model

    if isinstance(config, (str, os.PathLike)):
        config = os.fspath(config)
        _check_file(config, 'config file')
        config = Config.fromfile(config)
    elif not isinstance(config, Config):
        raise TypeError('config must be a file path or a Config, got '
                        f'{type(config).__name__}')
    else:
        config = config.copy()
    if cfg_options:
        config.merge_from_dict(cfg_options)
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        _check_file(checkpoint, 'checkpoint file')
    register_all_modules(init_default_scope=False)
    scope = config.get('default_scope', 'mmhand2p') or 'mmhand2p'
    with keep_default_scope():
        model, notes = build_inference_model(config, test_mode=True)
    set_default_scope(scope)
    if checkpoint is not None:
        ckpt = load_weights(model, checkpoint, strict)
        meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
        if 'dataset_meta' in meta:
            model.dataset_meta = meta['dataset_meta']
    model.cfg = config
    model.build_notes = notes
    model.to(device)
    model.eval()
    return model


def find_mano_layer(model: nn.Module) -> nn.Module:
    """The model's :class:`~mmhand2p.models.body_models.MANOLayer` (the
    first one found), whose ``faces`` belong to the predicted vertices."""
    from mmhand2p.models.body_models import MANOLayer
    for module in model.modules():
        if isinstance(module, MANOLayer):
            return module
    raise ValueError(f'{type(model).__name__} has no MANOLayer: cannot tell '
                     'which mesh faces its vertices use')


def mesh_faces(model: nn.Module) -> np.ndarray:
    """``(2, 1538, 3)`` int64 faces of the right (0) and left (1) meshes,
    wound outwards for each hand (the left model's faces are mirrored)."""
    return find_mano_layer(model).faces.detach().cpu().numpy().astype(np.int64)


def check_intrinsics(k, name: str = 'cam_intrinsics') -> np.ndarray:
    """A camera matrix as ``(3, 3)`` float64, or a ValueError that says what
    is allowed.

    ``K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` in pixels: every entry
    finite, ``fx > 0`` and ``fy > 0`` (a zero focal length makes ``K``
    singular), the last row ``(0, 0, 1)``.
    """
    arr = np.asarray(k, dtype=np.float64)
    if arr.shape != (3, 3):
        raise ValueError(f'{name} must be a (3, 3) matrix [[fx, 0, cx], '
                         f'[0, fy, cy], [0, 0, 1]], got shape {arr.shape}')
    if not np.isfinite(arr).all():
        raise ValueError(f'{name} must be finite (no NaN or inf), got '
                         f'{arr.tolist()}')
    if not (arr[0, 0] > 0 and arr[1, 1] > 0):
        raise ValueError(f'{name}: the focal lengths fx = {arr[0, 0]:g} and '
                         f'fy = {arr[1, 1]:g} (pixels) must both be > 0')
    if arr[1, 0] != 0 or tuple(arr[2]) != (0.0, 0.0, 1.0):
        raise ValueError(f'{name} must be [[fx, s, cx], [0, fy, cy], '
                         f'[0, 0, 1]], got {arr.tolist()}')
    return arr


def build_batch(images: Sequence[np.ndarray],
                img_paths: Optional[Sequence[Optional[str]]] = None,
                cam_intrinsics: Optional[Sequence[Optional[np.ndarray]]] = None
                ) -> dict:
    """The model's ``test_step`` input for ``(H, W, 3)`` uint8 BGR images.

    Args:
        images (sequence): ``(H_i, W_i, 3)`` uint8 BGR arrays (any sizes).
        img_paths (sequence, optional): per image, a path or None.
        cam_intrinsics (sequence, optional): per image, a ``(3, 3)`` matrix
            (checked by :func:`check_intrinsics`) or None (the model then
            assumes one).

    Returns:
        dict: ``inputs`` (list of ``(3, H, W)`` uint8 tensors, views of the
        arrays) and
        ``data_samples`` (list of :class:`HandDataSample` with ``img_shape``,
        ``ori_shape``, ``img_path`` and, when given, ``cam_intrinsics``).
    """
    inputs, samples = [], []
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        # a (3, H, W) view of the (H, W, 3) array, no copy: the model's
        # crop step permutes it back to a contiguous (H, W, 3) for free
        inputs.append(
            torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1))
        meta = dict(img_shape=(h, w), ori_shape=(h, w))
        if img_paths is not None and img_paths[i] is not None:
            meta['img_path'] = img_paths[i]
        k = None if cam_intrinsics is None else cam_intrinsics[i]
        if k is not None:
            k = check_intrinsics(k, 'cam_intrinsics').astype(np.float32)
            meta['cam_intrinsics'] = k
        samples.append(HandDataSample(metainfo=meta))
    return dict(inputs=inputs, data_samples=samples)


def _per_image_intrinsics(cam_intrinsics, num: int) -> list:
    """One ``(3, 3)`` matrix for all images, or one (or None) per image."""
    if cam_intrinsics is None:
        return [None] * num
    if isinstance(cam_intrinsics, (list, tuple)) and len(cam_intrinsics) == \
            num and all(k is None or np.shape(k) == (3, 3)
                        for k in cam_intrinsics):
        return list(cam_intrinsics)
    if np.shape(cam_intrinsics) != (3, 3):
        raise ValueError('cam_intrinsics must be one (3, 3) matrix or a list '
                         f'of {num} (one per image, None allowed), got '
                         f'{cam_intrinsics!r}')
    return [cam_intrinsics] * num


def inference_images(model: nn.Module,
                     images: Sequence[ImageType],
                     cam_intrinsics=None) -> List[HandDataSample]:
    """Run the model on a batch of images.

    Args:
        model (nn.Module): from :func:`init_model`.
        images (sequence): file paths or ``(H, W, 3)`` BGR arrays (read with
            :func:`~mmhand2p.apis.io.load_image`).
        cam_intrinsics (optional): one ``(3, 3)`` matrix for every image, a
            list with one matrix (or None) per image, or None.

    Returns:
        list[HandDataSample]: per image, with ``pred_instances`` and the
        metainfo ``pairs`` (module docstring).
    """
    arrays = [load_image(img) for img in images]
    paths = [
        None if isinstance(img, np.ndarray) else os.fspath(img)
        for img in images
    ]
    ks = _per_image_intrinsics(cam_intrinsics, len(arrays))
    data = build_batch(arrays, paths, ks)
    with torch.no_grad():
        return model.test_step(data)


def inference_image(model: nn.Module,
                    img: ImageType,
                    cam_intrinsics: Optional[np.ndarray] = None
                    ) -> HandDataSample:
    """Run the model on one image.

    Args:
        model (nn.Module): from :func:`init_model`.
        img (str | PathLike | np.ndarray): an image file, or an
            ``(H, W, 3)`` BGR array (``(H, W)`` gray and ``(H, W, 4)`` are
            converted, see :func:`~mmhand2p.apis.io.load_image`).
        cam_intrinsics (np.ndarray, optional): ``(3, 3)`` of the image; by
            default the model assumes ``focal = focal_factor * max(H, W)``
            and the principal point at the image centre.

    Returns:
        HandDataSample: with ``pred_instances`` and the metainfo ``pairs``.
    """
    return inference_images(model, [img], cam_intrinsics)[0]

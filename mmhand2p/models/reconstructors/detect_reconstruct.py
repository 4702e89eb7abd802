# Copyright (c) mmhand2p contributors. All rights reserved.
"""One model for whole images: hand detector + two-hand reconstructor.

``image -> detector (right / left hand boxes) -> pairing -> two-hand crops
(the training crop maths) -> reconstructor (-> gated refiner) -> hands in the
image's camera frame``. See ``docs/detect_reconstruct.md``.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from torch import Tensor

from mmhand2p.models.refiners import content_noise_key
from mmhand2p.registry import MODELS, TRANSFORMS
from mmhand2p.structures import HandDataSample
# the part helpers live in a neutral module; these names stay importable
# from here for old code
from mmhand2p.utils.config_parts import merge_part_checkpoints  # noqa: F401
from mmhand2p.utils.config_parts import inference_model_cfg
from mmhand2p.utils.config_parts import load_part as _load_part
from mmhand2p.utils.config_parts import part_config as _part_config
from mmhand2p.utils.config_parts import \
    read_part_state_dict as read_state_dict  # noqa: F401
from mmhand2p.utils.config_parts import test_transform as _test_transform
from mmhand2p.utils.geometry import project_points
from mmhand2p.utils.setup_env import keep_default_scope
from mmhand2p.utils.timing import StageTimer
from mmhand2p.utils.typing import ConfigType, OptConfigType, OptSampleList
from .base import BaseTwoHandReconstructor
from .pairing import pair_hands, pair_scores

__all__ = ['DetectThenReconstruct', 'merge_part_checkpoints']

#: mmdet boxes use COCO's continuous pixel convention (the image spans
#: ``[0, W]``, pixel centres at ``+0.5``); mmhand2p puts pixel centres at
#: integers (``docs/data_pipeline.md``), so detector boxes move by this.
DET_BOX_OFFSET = -0.5

#: the crop steps of a reconstructor's test pipeline that
#: DetectThenReconstruct runs per pair (with ``test_mode=True``), each with
#: the pack steps that may follow it (the first is used when the pipeline
#: names none): one two-hand crop, or the hand-wise crops (each hand from its
#: own box, the left mirrored; the pack and the model flip the outputs back
#: into the image's camera frame)
CROP_STEPS = {
    'TwoHandCropAffine': ('PackTwoHandInputs', ),
    'HandwiseCropAffine': ('PackHandwiseInputs', ),
}

#: per-hand prediction fields copied from the reconstructor's output
_HAND_FIELDS = ('joints_3d', 'vertices', 'joints_2d', 'mano_pose',
                'mano_betas', 'mano_transl')

_NOT_TRAINABLE = (
    'DetectThenReconstruct is an inference model: train the detector and the '
    'reconstructor separately with their own configs (e.g. configs/'
    'rtmdet_hand/... and configs/a2p/...) and load both checkpoints into it '
    '(detector_checkpoint / reconstructor_checkpoint, or '
    'merge_part_checkpoints; docs/detect_reconstruct.md)')


# ----------------------------------------------------------------------------
# configs of the parts
# ----------------------------------------------------------------------------
def _pair(v, what: str) -> Tuple[int, int]:
    if isinstance(v, (int, float)):
        v = (v, v)
    v = tuple(int(x) for x in v)
    if len(v) != 2 or min(v) <= 0:
        raise ValueError(f'DetectThenReconstruct: {what} must be (w, h) with '
                         f'positive sides, got {v}')
    return v


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


# ----------------------------------------------------------------------------
# resizing for the detector
# ----------------------------------------------------------------------------
def resize_bilinear(img: Tensor, size: Tuple[int, int]) -> Tensor:
    """``F.interpolate(img[None].float(), size, mode='bilinear',
    align_corners=False)[0]`` without making a float copy of ``img``.

    Bilinear sampling (no antialiasing) reads at most two source rows and
    two source columns per output pixel, so only those are gathered (in
    ``img``'s own dtype) and blended. A uint8 8000x6000 photo resized to
    the detector's input then costs kilobytes instead of the 576 MB float
    copy. The sample positions follow PyTorch's convention for
    ``align_corners=False``: ``src = (dst + 0.5) * in / out - 0.5``,
    clamped at 0.

    Args:
        img (Tensor): ``(C, H, W)`` image of any real dtype.
        size (tuple[int, int]): output ``(h, w)``.

    Returns:
        Tensor: ``(C, h, w)`` float32.
    """
    oh, ow = size

    def taps(n_in: int, n_out: int):
        src = (torch.arange(n_out, dtype=torch.float32, device=img.device) +
               0.5) * (n_in / n_out) - 0.5
        src = src.clamp(min=0)
        i0 = src.floor().long().clamp(max=n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        return i0, i1, src - i0.float()

    y0, y1, wy = taps(img.shape[-2], oh)
    x0, x1, wx = taps(img.shape[-1], ow)
    rows = img.index_select(-2, torch.cat([y0, y1]))
    top, bottom = rows.float().split(oh, dim=-2)
    wx, wy = wx.view(1, 1, -1), wy.view(1, -1, 1)

    def blend_cols(r: Tensor) -> Tensor:
        left, right = r.index_select(-1, x0), r.index_select(-1, x1)
        return left + (right - left) * wx

    t, b = blend_cols(top), blend_cols(bottom)
    return t + (b - t) * wy


# ----------------------------------------------------------------------------
@MODELS.register_module()
class DetectThenReconstruct(BaseModel):
    """A hand detector and a top-down two-hand reconstructor as one model.

    ``predict`` takes whole images of any size and returns every detected
    hand reconstructed in the image's camera frame:

    1. **Detect.** Each image is resized to fit ``det_input_size`` (keeping
       its aspect ratio, bilinear), padded with ``det_pad_value`` at the
       right / bottom (mmdet's ``Resize(keep_ratio=True)`` + ``Pad``), then
       normalised by the detector's own data preprocessor. Boxes are mapped
       back to the image and shifted by :data:`DET_BOX_OFFSET` (COCO -> our
       pixel convention); those scoring below ``det_score_thr`` are dropped.
       With ``box_source='gt'`` the detector is skipped and the annotated
       boxes (``gt_hands.bboxes`` where ``gt_hands.hand_valid``) make one
       pair per image (oracle boxes, a common evaluation protocol in hand
       papers that isolates the reconstruction error).
    2. **Pair.** :func:`~mmhand2p.models.reconstructors.pairing.pair_hands`
       with ``pair_cfg`` (proximity matching of right / left boxes; left
       over hands are single-hand pairs).
    3. **Crop.** Each pair is cut by the crop step of the reconstructor's
       test pipeline (:data:`CROP_STEPS`, found by type, built with
       ``test_mode=True``) and packed by its pack step -- the training /
       test pipeline's own code, so the crop and its virtual camera are
       exactly those the reconstructor was trained with.
       ``TwoHandCropAffine`` + ``PackTwoHandInputs`` (the default, also for
       a reconstructor given as a model dict): one crop around the union of
       the pair's boxes (``crop_padding``, the aspect ratio of
       ``crop_input_size``; no rotation), its camera ``K'`` in metainfo
       ``cam_intrinsics``; without rotation the crop camera has the same
       frame as the image camera. ``HandwiseCropAffine`` +
       ``PackHandwiseInputs`` (``HandwiseTopDownReconstructor``): each hand
       of the pair from its own box, the left crop mirrored (a hand missing
       from the pair is cut from the other's box and not reported); the
       pack states the image's own ``cam_intrinsics`` / ``img_shape`` and
       the model flips its outputs back into the image's camera frame.
    4. **Reconstruct.** All crops of the batch go through the
       reconstructor's data preprocessor and its public ``predict`` at once
       (any :class:`~mmhand2p.models.reconstructors.base.
       BaseTwoHandReconstructor` on two-hand crops).
    5. **Refine.** If ``refine`` and the reconstructor refines
       (``reconstructor.refines``: it has a refiner and its
       ``test_cfg.refine`` is not False), the complete pairs -- never
       the single-hand crops, whose second hand is a guess -- are refined:
       ``predict``'s per-sample ``refine`` mask selects them, and they go
       to the refiner with their crop metainfo; the refiner's own gate
       (box overlap + penetration) decides which it changes. Each crop's
       metainfo ``noise_key`` (the image's content,
       :func:`~mmhand2p.models.refiners.content_noise_key`, and the pair's
       index) seeds its sampling noise, so an image's result does not
       depend on the other images of the batch.
    6. **Output.** 3D results are already in the image's camera frame;
       ``joints_2d`` are re-projected with the image's intrinsics.

    The camera of an image is its metainfo ``cam_intrinsics`` (3, 3). An
    image without one (a photo) is given ``f = focal_factor * max(H, W)``
    for both focal lengths and the principal point at the image centre
    ``((W - 1) / 2, (H - 1) / 2)``; the assumed matrix is written to the
    sample's metainfo with ``cam_intrinsics_assumed=True``. The focal only
    sets the absolute depth (the 2D fit does not depend on it).

    Outputs (set on each data sample):

    * ``pred_instances`` (``InstanceData``, one row per hand of a pair, N
      rows, ordered pair by pair, right before left): ``bboxes`` (N, 4)
      image px ``x1, y1, x2, y2``, ``bbox_scores`` (N,), ``labels`` (N,)
      0 right / 1 left, ``pair_ids`` (N,) index into ``pairs``,
      ``joints_3d`` (N, 21, 3) and ``vertices`` (N, V, 3) camera frame,
      metres, ``joints_2d`` (N, 21, 2) image px, ``mano_pose`` (N, 16, 3)
      axis-angle of each hand in its own (right / left) model, ``mano_betas``
      (N, K), ``mano_transl`` (N, 3), ``refined`` (N,) bool.
    * metainfo ``pairs``: per pair ``{'right': row | -1, 'left': row | -1,
      'score': float, 'rel_transl': [x, y, z] | None}`` (rows of
      ``pred_instances``; ``rel_transl`` = left wrist minus right wrist,
      metres, complete pairs only), best pair first.
    * ``pred_hands``: the best pair in the two-hand layout (0 right, 1
      left) of ``TwoHandMANOHead.predict`` -- ``joints_3d``, ``vertices``,
      ``mano_pose``, ``mano_betas``, ``mano_transl``, ``joints_2d`` (image
      px), ``scores`` (the detection scores) -- plus ``bboxes`` (2, 4),
      ``hand_valid`` (2,) float and ``refined`` (2,) bool; a hand that was
      not found is all zeros with ``hand_valid`` 0 (so ``TwoHandMetric``
      evaluates whole images; a missed hand counts as a prediction at the
      origin). With refinement on, also ``unrefined_joints_3d`` /
      ``unrefined_vertices`` (the stage-1 hands).

    Args:
        detector (dict | str): an mmdet detector config (``RTMDet`` with
            ``num_classes=2``: 0 = right hand, 1 = left hand), built in
            mmdet's scope (``_scope_='mmdet'`` is added) with mmhand2p's
            scope restored afterwards; or a config file whose ``model`` it
            is (e.g. ``configs/rtmdet_hand/rtmdet_nano_...py``; relative
            paths are tried from the current directory, then from the
            repository root).
        reconstructor (dict | str): a ``TopDownTwoHandReconstructor``
            config (possibly with a ``refiner``) or a config file with one.
            Training-only prior teachers are removed
            (:func:`mmhand2p.apis.inference_model.inference_model_cfg`).
        det_input_size (Sequence[int], optional): detector input ``(w, h)``.
            None: the ``Pad`` / ``Resize`` size of the detector config's
            test pipeline when ``detector`` is a file, else (320, 320).
        det_pad_value (float, optional): padding value. None: the ``Pad``
            of the detector config's test pipeline, else 114 (RTMDet's).
        det_score_thr (float): minimal detection score. Defaults to 0.3.
        box_source (str): ``'detector'`` or ``'gt'`` (oracle boxes, see
            above).
        pair_cfg (dict, optional): keyword arguments of
            :func:`~mmhand2p.models.reconstructors.pairing.pair_hands`
            (``dist_thr=1.5``, ``dup_iou_thr=0.5``, ``priority='score'``);
            ``max_pairs`` defaults to 10 here (the best pairs by score; a
            bound on the crops per image), None for no bound.
        crop_input_size (Sequence[int], optional): the reconstructor's input
            ``(w, h)`` (of each hand's crop for hand-wise crops). None: the
            crop step (``TwoHandCropAffine`` / ``HandwiseCropAffine``) of
            the reconstructor config's test pipeline when ``reconstructor``
            is a file, else (256, 256).
        crop_padding (float, optional): enlargement of the union box (of
            each hand's box), the same as the crop step's ``padding`` in
            training. None: from that transform, else 1.25.
        focal_factor (float): focal length of images without intrinsics, in
            units of ``max(H, W)``. Defaults to 1.0 (about 53 degrees across
            the longer side).
        refine (bool): run the reconstructor's refiner (if it has one) on
            the complete pairs. Defaults to True.
        detector_checkpoint (str, optional): weights of the detector (its
            own training checkpoint, or a combined one with ``detector.``
            keys), loaded when the model is built.
        reconstructor_checkpoint (str, optional): weights of the
            reconstructor, the same way (its refiner may come from the
            refiner's own ``checkpoint``).
        data_preprocessor (dict, optional): defaults to mmengine's
            ``BaseDataPreprocessor``, which only moves the batch to the
            device: the inputs stay a list of ``(3, H, W)`` uint8 BGR images
            of any sizes (``PackFullImageInputs``).
        init_cfg (dict, optional): mmengine init config.
    """

    smallest_config = ('configs/detect_reconstruct/'
                       'hand2p_default_synthetic_no-refine.py')

    def __init__(self,
                 detector: Union[ConfigType, str],
                 reconstructor: Union[ConfigType, str],
                 det_input_size: Optional[Sequence[int]] = None,
                 det_pad_value: Optional[float] = None,
                 det_score_thr: float = 0.3,
                 box_source: str = 'detector',
                 pair_cfg: OptConfigType = None,
                 crop_input_size: Optional[Sequence[int]] = None,
                 crop_padding: Optional[float] = None,
                 focal_factor: float = 1.0,
                 refine: bool = True,
                 detector_checkpoint: Optional[str] = None,
                 reconstructor_checkpoint: Optional[str] = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if box_source not in ('detector', 'gt'):
            raise ValueError("DetectThenReconstruct: box_source must be "
                             f"'detector' or 'gt', got {box_source!r}")
        if focal_factor <= 0:
            raise ValueError('DetectThenReconstruct: focal_factor must be > '
                             f'0, got {focal_factor}')
        self.box_source = box_source
        self.det_score_thr = float(det_score_thr)
        self.focal_factor = float(focal_factor)
        self.refine = bool(refine)
        self.pair_cfg = dict(max_pairs=10)
        self.pair_cfg.update(pair_cfg or {})
        pair_hands(np.zeros((0, 4)), [], [], **self.pair_cfg)  # check keys

        # detector, in mmdet's scope
        det_cfg, det_full = _part_config(detector, 'detector')
        det_cfg.setdefault('_scope_', 'mmdet')
        with keep_default_scope():
            self.detector = MODELS.build(det_cfg)
        num_classes = getattr(
            getattr(self.detector, 'bbox_head', None), 'num_classes', None)
        if num_classes is not None and num_classes != 2:
            raise ValueError(
                'DetectThenReconstruct: the detector must have 2 classes '
                '(0 right_hand, 1 left_hand), its bbox_head has '
                f'num_classes={num_classes}')
        resize = _test_transform(det_full, 'Resize')
        pad = _test_transform(det_full, 'Pad')
        if det_input_size is None:
            det_input_size = ((pad or {}).get('size')
                              or (resize or {}).get('scale') or (320, 320))
        self.det_input_size = _pair(det_input_size, 'det_input_size')
        if det_pad_value is None:
            value = ((pad or {}).get('pad_val') or {})
            value = value.get('img', 114) if isinstance(value, dict) else value
            if isinstance(value, (list, tuple)):
                value = value[0]
            det_pad_value = float(value)
        self.det_pad_value = float(det_pad_value)
        self.detector_checkpoint = detector_checkpoint
        if detector_checkpoint:
            _load_part(self.detector, detector_checkpoint, 'detector',
                       'detector.')

        # reconstructor, without training-only parts
        rec_cfg, rec_full = _part_config(reconstructor, 'reconstructor')
        rec_cfg, notes = inference_model_cfg(rec_cfg)
        for note in notes:
            print_log(
                f'DetectThenReconstruct: reconstructor {note}',
                logger='current')
        self.reconstructor = MODELS.build(rec_cfg)
        if not isinstance(self.reconstructor, BaseTwoHandReconstructor):
            raise TypeError(
                'DetectThenReconstruct: the reconstructor must be a '
                'BaseTwoHandReconstructor taking two-hand crops (e.g. '
                'TopDownTwoHandReconstructor), got '
                f'{type(self.reconstructor).__name__}')
        # the crop step of the reconstructor's test pipeline (a two-hand
        # crop or hand-wise crops) and its pack step, by registered type
        crop_t = _test_transform(rec_full, tuple(CROP_STEPS)) or {}
        crop_type = str(crop_t.get('type',
                                   'TwoHandCropAffine')).split('.')[-1]
        pack_t = _test_transform(rec_full, CROP_STEPS[crop_type]) or {}
        pack_type = str(pack_t.get('type',
                                   CROP_STEPS[crop_type][0])).split('.')[-1]
        if crop_input_size is None:
            crop_input_size = crop_t.get('input_size', (256, 256))
        if crop_padding is None:
            crop_padding = crop_t.get('padding', 1.25)
        self.crop_input_size = _pair(crop_input_size, 'crop_input_size')
        self.crop_padding = float(crop_padding)
        # the test pipeline's own transforms, by their registered names
        # (models and datasets are side by side: no import between them)
        self.crop_transform = TRANSFORMS.build(
            dict(
                type=f'mmhand2p.{crop_type}',
                input_size=self.crop_input_size,
                padding=self.crop_padding,
                min_size=float(crop_t.get('min_size', 8.0)),
                test_mode=True))
        self.pack_transform = TRANSFORMS.build(
            dict(type=f'mmhand2p.{pack_type}', gt_keys=()))

        self.reconstructor_checkpoint = reconstructor_checkpoint
        if reconstructor_checkpoint:
            refiner = getattr(self.reconstructor, 'refiner', None)
            _load_part(
                self.reconstructor,
                reconstructor_checkpoint,
                'reconstructor',
                'reconstructor.',
                allow_missing=('refiner.', ) if refiner is not None else ())

    # ------------------------------------------------------------------
    # entry points
    # ------------------------------------------------------------------
    def forward(self,
                inputs: Union[Tensor, List[Tensor]],
                data_samples: OptSampleList = None,
                mode: str = 'predict'):
        """The Runner's entry point; only ``mode='predict'`` is supported
        (``'loss'`` / ``'tensor'`` raise ``NotImplementedError``)."""
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode in ('loss', 'tensor'):
            raise NotImplementedError(f'mode={mode!r}: {_NOT_TRAINABLE}')
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got "
                         f'{mode!r}')

    def loss(self, inputs, data_samples) -> Dict[str, Tensor]:
        raise NotImplementedError(_NOT_TRAINABLE)

    @torch.no_grad()
    def predict(self,
                inputs: Union[Tensor, List[Tensor]],
                data_samples: OptSampleList = None) -> List[HandDataSample]:
        """Detect, pair, crop, reconstruct (and refine) every image.

        Args:
            inputs (Tensor | list[Tensor]): ``(3, H, W)`` uint8 BGR images
                (a list, sizes may differ) or a ``(B, 3, H, W)`` batch.
            data_samples (list[HandDataSample], optional): per image; their
                metainfo ``cam_intrinsics`` (3, 3) is the image's camera
                (see the class docstring when absent); ``box_source='gt'``
                reads ``gt_hands.bboxes`` / ``hand_valid``.

        Returns:
            list[HandDataSample]: ``data_samples`` (new ones if None) with
            ``pred_instances``, ``pred_hands`` and metainfo ``pairs`` and
            ``stage_times_ms``: the whole batch's wall time (ms) per stage,
            ``detector`` (or the ground-truth box lookup), ``reconstruction``
            (pairing, crops, stage 1, writing the outputs) and
            ``refinement`` (the reconstructor's own ``stage_times_ms``;
            None when the refiner is off or absent); see
            :mod:`mmhand2p.utils.timing`.
        """
        images = self._image_list(inputs)
        device = images[0].device if images else torch.device('cpu')
        clock = StageTimer(device)
        if data_samples is None:
            data_samples = [HandDataSample() for _ in images]
        if len(data_samples) != len(images):
            raise ValueError(f'DetectThenReconstruct: {len(images)} images '
                             f'but {len(data_samples)} data samples')
        cams = [self._camera(img, ds) for img, ds in zip(images, data_samples)]
        if self.box_source == 'gt':
            dets = [self._gt_boxes(ds, i) for i, ds in enumerate(data_samples)]
        elif self._batch_invariant():
            # batched convolutions round differently from single-image
            # ones (boxes move by ~1e-5 px), which the guided refiner
            # amplifies: one image at a time keeps results batch-independent
            dets = [d for img in images for d in self.detect([img])]
        else:
            dets = self.detect(images)
        clock.lap('detector')
        pairs = [self._pairs(d) for d in dets]

        # every pair of every image is one crop
        jobs = [(i, j) for i, p in enumerate(pairs) for j in range(len(p))]
        crops, crop_samples, image_keys = [], [], {}
        for i, j in jobs:
            crop, sample = self.crop_pair(images[i], cams[i], dets[i],
                                          pairs[i][j])
            if self.refine:  # the refiner's noise: image content and pair
                if i not in image_keys:
                    image_keys[i] = content_noise_key(images[i])
                sample.set_metainfo(dict(noise_key=f'{image_keys[i]}#{j}'))
            crops.append(crop)
            crop_samples.append(sample)
        preds, refined, stage1, refinement = self._reconstruct(
            crops, crop_samples, [pairs[i][j] for i, j in jobs])

        k = 0
        for i, ds in enumerate(data_samples):
            n = len(pairs[i])
            self._write_outputs(ds, dets[i], pairs[i], cams[i], preds[k:k + n],
                                refined[k:k + n],
                                None if stage1 is None else stage1[k:k + n],
                                device)
            k += n
        total = clock.lap(None)
        times = dict(
            detector=clock.times['detector'],
            reconstruction=total - (refinement or 0.0),
            refinement=refinement)
        for ds in data_samples:
            ds.set_metainfo(dict(stage_times_ms=dict(times)))
        return data_samples

    # ------------------------------------------------------------------
    # steps
    # ------------------------------------------------------------------
    def _batch_invariant(self) -> bool:
        """Whether the refiner asks for batch-independent results (then
        detection and stage 1 run one image / crop at a time)."""
        return bool(self.refine and self.reconstructor.batch_invariant)

    @staticmethod
    def _image_list(inputs) -> List[Tensor]:
        if isinstance(inputs, Tensor):
            if inputs.dim() == 3:
                inputs = inputs[None]
            if inputs.dim() != 4:
                raise ValueError('DetectThenReconstruct: inputs must be '
                                 '(3, H, W) images or a (B, 3, H, W) batch, '
                                 f'got shape {tuple(inputs.shape)}')
            inputs = list(inputs)
        images = list(inputs)
        for i, img in enumerate(images):
            if not isinstance(img, Tensor) or img.dim() != 3 or \
                    img.shape[0] != 3:
                raise ValueError(
                    f'DetectThenReconstruct: image {i} must be a (3, H, W) '
                    'BGR tensor (PackFullImageInputs), got '
                    f'{getattr(img, "shape", type(img).__name__)}')
        return images

    def _camera(self, img: Tensor, ds) -> np.ndarray:
        """The image's intrinsics ``(3, 3)`` float64 (assumed if absent).
        Also records ``img_shape`` / ``ori_shape`` if the sample has none."""
        h, w = (int(s) for s in img.shape[-2:])
        for key in ('img_shape', 'ori_shape'):
            if ds.metainfo.get(key) is None:
                ds.set_metainfo({key: (h, w)})
        k = ds.metainfo.get('cam_intrinsics')
        if k is not None:
            k = _to_numpy(k).astype(np.float64)
            if k.shape != (3, 3):
                raise ValueError('DetectThenReconstruct: metainfo '
                                 f'cam_intrinsics must be (3, 3), got '
                                 f'{k.shape} ({ds.metainfo.get("img_path")})')
            return k
        f = self.focal_factor * max(h, w)
        k = np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0],
                      [0.0, 0.0, 1.0]])
        ds.set_metainfo(
            dict(
                cam_intrinsics=k.astype(np.float32),
                cam_intrinsics_assumed=True))
        return k

    def detect(self, images: List[Tensor]) -> List[Dict[str, np.ndarray]]:
        """Hand boxes of whole images.

        Args:
            images (list[Tensor]): ``(3, H, W)`` BGR images.

        Returns:
            list[dict]: per image ``bboxes`` ``(N, 4)`` image px (integer
            pixel centres), ``scores`` ``(N,)``, ``labels`` ``(N,)`` (0
            right, 1 left), float64 / int64 numpy, scoring at least
            ``det_score_thr``.
        """
        from mmdet.structures import DetDataSample
        if not images:
            return []
        dw, dh = self.det_input_size
        batch, samples, scales = [], [], []
        for img in images:
            h, w = img.shape[-2:]
            s = min(dw / w, dh / h)
            nw, nh = max(1, int(w * s + 0.5)), max(1, int(h * s + 0.5))
            x = resize_bilinear(img, (nh, nw)).round().clamp(0, 255)
            canvas = x.new_full((3, dh, dw), self.det_pad_value)
            canvas[:, :nh, :nw] = x
            batch.append(canvas)
            samples.append(
                DetDataSample(
                    metainfo=dict(
                        img_shape=(nh, nw),
                        ori_shape=(h, w),
                        scale_factor=(nw / w, nh / h),
                        pad_shape=(dh, dw))))
            scales.append((nw / w, nh / h, w, h))
        data = self.detector.data_preprocessor(
            dict(inputs=batch, data_samples=samples), False)
        results = self.detector.predict(
            data['inputs'], data['data_samples'], rescale=False)
        out = []
        for res, (sx, sy, w, h) in zip(results, scales):
            inst = res.pred_instances
            keep = inst.scores >= self.det_score_thr
            b = inst.bboxes[keep].detach().cpu().double().numpy()
            b = b / np.array([sx, sy, sx, sy]) + DET_BOX_OFFSET
            b = np.clip(b, -0.5, [w - 0.5, h - 0.5, w - 0.5, h - 0.5])
            out.append(
                dict(
                    bboxes=b.reshape(-1, 4),
                    scores=inst.scores[keep].detach().cpu().double().numpy(),
                    labels=inst.labels[keep].detach().cpu().numpy().astype(
                        np.int64)))
        return out

    @staticmethod
    def _gt_boxes(ds, i: int) -> Dict[str, np.ndarray]:
        gt = getattr(ds, 'gt_hands', None)
        if gt is None or 'bboxes' not in gt or 'hand_valid' not in gt:
            raise KeyError(
                f"DetectThenReconstruct(box_source='gt'): data sample {i} has "
                'no gt_hands.bboxes / gt_hands.hand_valid (pack them with '
                'PackFullImageInputs)')
        b = _to_numpy(gt.bboxes).astype(np.float64).reshape(2, 4)
        v = _to_numpy(gt.hand_valid).reshape(2).astype(bool)
        v &= (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        idx = np.flatnonzero(v)
        return dict(
            bboxes=b[idx],
            scores=np.ones(len(idx)),
            labels=idx.astype(np.int64),
            oracle=True)

    def _pairs(self, det: Dict[str, np.ndarray]) -> List[Tuple[int, int]]:
        if det.get('oracle'):
            # the annotated hands of an image are one pair by definition
            lab = det['labels'].tolist()
            if not lab:
                return []
            return [(lab.index(0) if 0 in lab else -1,
                     lab.index(1) if 1 in lab else -1)]
        return pair_hands(det['bboxes'], det['scores'], det['labels'],
                          **self.pair_cfg)

    def crop_pair(self, image: Tensor, cam: np.ndarray, det: dict,
                  pair: Tuple[int, int]) -> Tuple[Tensor, HandDataSample]:
        """The reconstructor's input for one pair, made by the test
        pipeline's crop step (``TwoHandCropAffine`` or
        ``HandwiseCropAffine``, ``test_mode=True``) and its pack step.

        Args:
            image (Tensor): ``(3, H, W)`` BGR image.
            cam (np.ndarray): its intrinsics ``(3, 3)``.
            det (dict): its boxes (see :meth:`detect`).
            pair (tuple): ``(right_index, left_index)``, -1 for none.

        Returns:
            tuple: the crop ``(3, h, w)`` (dtype of the image) and a
            ``HandDataSample`` whose metainfo has the crop's
            ``cam_intrinsics`` ``K'``, ``input_size``, ``crop_affine``
            (image -> crop), ``input_center``, ``input_scale``... (hand-wise:
            the two crops side by side, the image's camera and per-crop
            ``handwise_*`` geometry, see ``PackHandwiseInputs``).
        """
        bboxes = np.zeros((2, 4), np.float32)
        valid = np.zeros(2, bool)
        for hand, idx in enumerate(pair):
            if idx >= 0:
                bboxes[hand] = det['bboxes'][idx]
                valid[hand] = True
        img = image.detach().permute(1, 2, 0).cpu().numpy()
        h, w = img.shape[:2]
        results = dict(
            img=np.ascontiguousarray(img),
            img_shape=(h, w),
            ori_shape=(h, w),
            cam_intrinsics=cam.astype(np.float32),
            bboxes=bboxes,
            hand_valid=valid)
        results = self.crop_transform.transform(results)
        packed = self.pack_transform.transform(results)
        return packed['inputs'], packed['data_samples']

    def _reconstruct(self, crops: List[Tensor], samples: List,
                     pairs: List[Tuple[int, int]]):
        """Run the reconstructor (its own data preprocessor and public
        ``predict``) on all crops; only the complete pairs may be refined
        (``refine`` mask).

        Returns:
            tuple: per crop ``InstanceData`` (2 instances, in the image's
            camera frame: the two-hand crop's frame is the image camera's,
            hand-wise outputs are flipped back by the model), ``refined``
            flags, the stage-1 ``(joints_3d, vertices)`` if refinement was
            on (else None) and the reconstructor's ``refinement`` time in ms
            (None when off).
        """
        rec = self.reconstructor
        on = self.refine and rec.refines
        if not crops:
            return [], [], None, 0.0 if on else None
        data = rec.data_preprocessor(
            dict(inputs=crops, data_samples=samples), False)
        mask = [r >= 0 and lft >= 0 for r, lft in pairs] if on else False
        out = rec.predict(data['inputs'], data['data_samples'], refine=mask)
        preds = [ds.pred_hands for ds in out]
        refinement = out[0].metainfo['stage_times_ms'].get('refinement')
        if not on:
            return preds, [False] * len(preds), None, None
        refined = [
            bool(m and p.metainfo.get('refined', False))
            for m, p in zip(mask, preds)
        ]
        stage1 = [(p.get('unrefined_joints_3d', p.joints_3d),
                   p.get('unrefined_vertices', p.vertices)) for p in preds]
        return preds, refined, stage1, refinement

    # ------------------------------------------------------------------
    def _empty_shapes(self) -> Dict[str, tuple]:
        return self.reconstructor.hand_field_shapes()

    def _write_outputs(self, ds, det, pairs, cam, preds, refined, stage1,
                       device) -> None:
        """Fill ``pred_instances``, ``pairs`` and ``pred_hands`` of one
        image (see the class docstring)."""
        shapes = self._empty_shapes()
        if preds:
            shapes = {
                name: tuple(preds[0].get(name).shape[1:])
                for name in _HAND_FIELDS
            }
            device = preds[0].joints_3d.device
        k_full = torch.as_tensor(cam, dtype=torch.float32, device=device)

        def hand(n: int, h: int) -> Dict[str, Tensor]:
            p = preds[n]
            out = {
                name: p.get(name)[h].float()
                for name in _HAND_FIELDS if name != 'joints_2d'
            }
            out['joints_2d'] = project_points(out['joints_3d'], k_full)
            return out

        rows: List[dict] = []
        pair_meta = []
        scores = pair_scores(pairs, det['scores'])
        for j, pair in enumerate(pairs):
            entry = dict(
                right=-1, left=-1, score=float(scores[j]), rel_transl=None)
            for h, idx in enumerate(pair):
                if idx < 0:
                    continue
                entry[('right', 'left')[h]] = len(rows)
                row = hand(j, h)
                row.update(
                    bboxes=torch.as_tensor(
                        det['bboxes'][idx], dtype=torch.float32,
                        device=device),
                    bbox_scores=torch.tensor(
                        float(det['scores'][idx]), device=device),
                    labels=torch.tensor(h, device=device),
                    pair_ids=torch.tensor(j, device=device),
                    refined=torch.tensor(refined[j], device=device))
                rows.append(row)
            if pair[0] >= 0 and pair[1] >= 0:
                joints = preds[j].joints_3d
                entry['rel_transl'] = (joints[1, 0] -
                                       joints[0, 0]).float().cpu().tolist()
            pair_meta.append(entry)

        inst = InstanceData()
        empty = dict(
            bboxes=((4, ), torch.float32),
            bbox_scores=((), torch.float32),
            labels=((), torch.long),
            pair_ids=((), torch.long),
            refined=((), torch.bool))
        empty.update({n: (s, torch.float32) for n, s in shapes.items()})
        for name, (shape, dtype) in empty.items():
            if rows:
                inst.set_field(torch.stack([r[name] for r in rows]), name)
            else:
                inst.set_field(
                    torch.zeros(
                        (0, ) + tuple(shape), dtype=dtype, device=device),
                    name)
        ds.pred_instances = inst
        ds.set_metainfo(dict(pairs=pair_meta))

        # the best pair in the two-hand layout
        hands = InstanceData()
        fields = {
            name: torch.zeros((2, ) + tuple(s), device=device)
            for name, s in shapes.items()
        }
        fields.update(
            scores=torch.zeros(2, device=device),
            bboxes=torch.zeros(2, 4, device=device),
            hand_valid=torch.zeros(2, device=device),
            refined=torch.zeros(2, dtype=torch.bool, device=device))
        if stage1 is not None:
            fields.update(
                unrefined_joints_3d=torch.zeros_like(fields['joints_3d']),
                unrefined_vertices=torch.zeros_like(fields['vertices']))
        if pairs:
            for h, idx in enumerate(pairs[0]):
                if idx < 0:
                    continue
                for name, value in hand(0, h).items():
                    fields[name][h] = value
                fields['scores'][h] = float(det['scores'][idx])
                fields['bboxes'][h] = torch.as_tensor(
                    det['bboxes'][idx], dtype=torch.float32)
                fields['hand_valid'][h] = 1.0
                fields['refined'][h] = bool(refined[0])
                if stage1 is not None:
                    fields['unrefined_joints_3d'][h] = stage1[0][0][h]
                    fields['unrefined_vertices'][h] = stage1[0][1][h]
        for name, value in fields.items():
            hands.set_field(value, name)
        ds.pred_hands = hands

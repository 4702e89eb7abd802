# Copyright (c) mmhand2p contributors. All rights reserved.
"""The data sample that flows from datasets through models to metrics."""
from typing import List, Optional, Tuple

import torch
from mmengine.structures import BaseDataElement, InstanceData

__all__ = [
    'HandDataSample', 'HAND_FIELDS', 'PRED_HAND_FIELDS', 'INSTANCE_FIELDS',
    'META_FIELDS', 'HAND_SIDES', 'stack_field', 'hand_instances'
]

#: names of the hand axis: index 0 = right hand, 1 = left hand
HAND_SIDES = ('right', 'left')

#: Fields of ``gt_hands`` / ``pred_hands``. Both are ``InstanceData`` with
#: exactly 2 instances: index 0 = right hand, 1 = left hand. Units: metres,
#: camera frame (OpenCV axes) unless stated. Not every field is always set.
HAND_FIELDS = {
    'hand_valid': '(2,) bool: the hand is present/annotated in this sample',
    'joints_3d': '(2, 21, 3) wrist-first joints, camera frame, metres',
    'joints_3d_valid': '(2, 21) float 0/1 validity of each 3D joint',
    'joints_2d': '(2, 21, 2) pixels of the network input (= the original '
    'image when not cropped); invert crop_affine to map them back',
    'joints_2d_valid': '(2, 21) float 0/1',
    'vertices': '(2, 778, 3) MANO vertices, camera frame, metres',
    'mano_pose': '(2, 16, 3) axis-angle, global orient first, camera frame '
    '(flat-hand-relative, see MANOLayer)',
    'mano_betas': '(2, 10)',
    'mano_transl': '(2, 3) MANO transl so that MANOLayer reproduces the '
    'camera-frame mesh',
    'mano_valid': '(2,) bool: MANO parameters/vertices are valid',
    'bboxes': '(2, 4) x1, y1, x2, y2, pixels of the same image as joints_2d',
    'scores': '(2,) detection / prediction confidence (predictions only)',
}

#: Fields that only ``pred_hands`` may carry, besides :data:`HAND_FIELDS`
#: (models set them; datasets never do, so the packing transforms, whose
#: default keys are those of :data:`HAND_FIELDS`, do not look for them).
PRED_HAND_FIELDS = {
    'refined': '(2,) bool: a refiner changed the hand',
    'unrefined_vertices': '(2, 778, 3) the stage-1 vertices a refiner '
    'started from (before/after pictures)',
    'unrefined_joints_3d': '(2, 21, 3) the stage-1 joints, the same way',
}

#: Fields of ``pred_instances``, the whole-image layout of a prediction:
#: ``N`` rows, one per reconstructed hand (any number of hands and pairs),
#: pair by pair, right before left. Units as :data:`HAND_FIELDS`; 2D points
#: and boxes in pixels of the whole image. A whole-image model writes either
#: this (with metainfo ``pairs``) or only ``pred_hands`` (one pair, see
#: :func:`hand_instances`).
INSTANCE_FIELDS = {
    'labels': '(N,) int: 0 right hand, 1 left hand',
    'bboxes': '(N, 4) x1, y1, x2, y2, image pixels',
    'bbox_scores': '(N,) detection confidence',
    'pair_ids': '(N,) int: index into metainfo pairs',
    'joints_3d': '(N, 21, 3) wrist-first joints, camera frame, metres',
    'vertices': '(N, 778, 3) MANO vertices, camera frame, metres',
    'joints_2d': '(N, 21, 2) image pixels',
    'mano_pose': '(N, 16, 3) axis-angle, global orient first, each hand '
    'in its own (right / left) model',
    'mano_betas': '(N, 10)',
    'mano_transl': '(N, 3)',
    'refined': '(N,) bool: a refiner changed the hand',
}

#: Metainfo keys of a :class:`HandDataSample` that components outside the
#: model read (the inferencer, the visualizer, the metrics): who writes each
#: and what it holds. A model or dataset that writes these keys works with
#: ``Hand2PInferencer``, ``demo/image_demo.py`` and
#: ``TwoHandLocalVisualizer`` unchanged.
META_FIELDS = {
    'img_path': 'str: the image file (datasets, build_batch)',
    'img_id': 'int | str: the image id of the dataset (datasets)',
    'img_shape': '(h, w) of the network input; of the whole image for a '
    'whole-image model (pipeline, build_batch)',
    'ori_shape': '(h, w) of the original image (pipeline, build_batch)',
    'input_size': '(w, h) of the network input crop (crop transforms)',
    'cam_intrinsics': '(3, 3) camera of img_shape: the crop\'s virtual '
    'camera after a crop, the image\'s camera for a whole-image model '
    '(pipeline; a whole-image model writes the one it assumed)',
    'cam_intrinsics_assumed': 'bool: cam_intrinsics was assumed by the model '
    '(no camera was given)',
    'ori_cam_intrinsics': '(3, 3) camera of the original image (crop '
    'transforms)',
    'crop_affine': '(2, 3) original image -> network input pixels',
    'rot_z': '(3, 3) rotation of the virtual camera about its optical axis',
    'flip': 'bool: the whole sample was mirrored',
    'flip_left': 'bool: the left hand was mirrored for the network',
    'handwise_cam_intrinsics': '(2, 3, 3) each hand-wise crop\'s camera, '
    'the left crop\'s mirrored (PackHandwiseInputs; the sample\'s own '
    'frame is then the original image: cam_intrinsics)',
    'handwise_rot_z': '(2, 3, 3) each hand-wise crop\'s camera rotation, '
    'before the left crop\'s mirror (PackHandwiseInputs)',
    'handwise_crop_affine': '(2, 2, 3) original image -> each hand-wise crop, '
    'the left\'s mirror included (PackHandwiseInputs)',
    'target_conventions': 'dict: the target codec\'s conventions '
    '(TwoHandCodec.conventions(): left_as_right, depth_range, root_index, '
    'camera_model) the targets were made with; heads check them '
    '(GenerateTwoHandTargets)',
    'hand_type': "'right' | 'left' | 'interacting' (datasets)",
    'pairs': 'list of {right: row | -1, left: row | -1, score: float, '
    'rel_transl: [x, y, z] | None}: the pairs of pred_instances, best '
    'first; rel_transl = left wrist - right wrist, metres (whole-image '
    'models)',
    'stage_times_ms': 'dict stage name -> wall time (ms) of the whole batch, '
    'e.g. detector, reconstruction, refinement (None: not run); the '
    'inferencer reports detector and refinement from it and counts the '
    'rest of the model call as reconstruction (models, optional)',
    'noise_key': 'str: names the sample for a refiner\'s sampling noise',
}


class HandDataSample(BaseDataElement):
    """A two-hand sample: ground truth, prediction and meta information.

    Attributes:
        gt_hands (InstanceData): ground truth, 2 instances (right, left); see
            :data:`HAND_FIELDS`.
        pred_hands (InstanceData): predictions, same layout and fields.
        pred_instances (InstanceData): a whole-image prediction, one row
            per hand (:data:`INSTANCE_FIELDS`); whole-image models only.
        metainfo: ``img_path``, ``img_id``, ``ori_shape`` (h, w),
            ``cam_intrinsics`` (3, 3) of the network input, ``hand_type``
            (``'right' | 'left' | 'interacting'``), ``input_center``,
            ``input_scale``, ``crop_affine`` (2, 3) original image -> network
            input, ``flip_left`` (the left hand was mirrored for the
            network)...; the keys read outside the model are listed in
            :data:`META_FIELDS`.
    """

    @property
    def gt_hands(self) -> InstanceData:
        return self._gt_hands

    @gt_hands.setter
    def gt_hands(self, value: InstanceData) -> None:
        self.set_field(value, '_gt_hands', dtype=InstanceData)

    @gt_hands.deleter
    def gt_hands(self) -> None:
        del self._gt_hands

    @property
    def pred_hands(self) -> InstanceData:
        return self._pred_hands

    @pred_hands.setter
    def pred_hands(self, value: InstanceData) -> None:
        self.set_field(value, '_pred_hands', dtype=InstanceData)

    @pred_hands.deleter
    def pred_hands(self) -> None:
        del self._pred_hands


def stack_field(data_samples: List[BaseDataElement], name: str,
                where: str = 'gt_hands') -> Optional[torch.Tensor]:
    """Stack a per-hand field of ``gt_hands`` over the batch: ``(B, 2, ...)``.

    Returns None if any sample lacks the field.
    """
    out = []
    for ds in data_samples:
        hands = getattr(ds, where, None)
        if hands is None or name not in hands:
            return None
        out.append(torch.as_tensor(hands.get(name)))
    return torch.stack(out)


def hand_instances(sample: BaseDataElement
                   ) -> Tuple[InstanceData, List[dict]]:
    """A whole-image prediction in the instance layout, with its pairs.

    A model that writes ``pred_instances`` (:data:`INSTANCE_FIELDS`, e.g.
    ``DetectThenReconstruct``) is read as it is, with metainfo ``pairs``.
    A model that writes only ``pred_hands`` (one pair in the two-hand
    layout, :data:`HAND_FIELDS`; e.g. a one-stage whole-image model) is
    converted: one row per hand with ``hand_valid`` > 0 (all when it is
    absent), right before left; ``labels`` the hand axis; ``bbox_scores``
    its ``scores`` (1 when absent); ``bboxes`` its ``bboxes``, else the
    box of the finite ``joints_2d``; ``refined`` its ``refined`` (False
    when absent); ``pair_ids`` 0; and one pair (none without hands) whose
    score is the mean of its hands' scores and whose ``rel_transl`` is
    ``joints_3d[1, 0] - joints_3d[0, 0]`` when both hands are present.

    Args:
        sample (HandDataSample): a prediction of a whole image.

    Returns:
        tuple: ``InstanceData`` with the fields of :data:`INSTANCE_FIELDS`
        the sample provides (``N`` rows) and the ``pairs`` (list of dict,
        see :data:`META_FIELDS`).

    Raises:
        KeyError: the sample has neither ``pred_instances`` nor
            ``pred_hands``.
    """
    if 'pred_instances' in sample:
        return sample.pred_instances, list(sample.metainfo.get('pairs', []))
    if 'pred_hands' not in sample:
        raise KeyError(
            'the data sample has neither pred_instances (whole-image '
            'layout, INSTANCE_FIELDS) nor pred_hands (two-hand layout, '
            'HAND_FIELDS): the model wrote no prediction')
    hands = sample.pred_hands

    def field(name: str) -> Optional[torch.Tensor]:
        value = hands.get(name)
        return None if value is None else torch.as_tensor(value)

    valid = field('hand_valid')
    rows = [h for h in range(2) if valid is None or bool(valid[h] > 0)]
    idx = torch.tensor(rows, dtype=torch.long)
    inst = InstanceData()
    inst.labels = idx.clone()
    inst.pair_ids = torch.zeros(len(rows), dtype=torch.long)
    scores = field('scores')
    inst.bbox_scores = torch.ones(len(rows)) if scores is None else \
        scores.float()[idx]
    refined = field('refined')
    inst.refined = torch.zeros(len(rows), dtype=torch.bool) \
        if refined is None else refined.bool()[idx]
    for name in ('joints_3d', 'vertices', 'joints_2d', 'mano_pose',
                 'mano_betas', 'mano_transl', 'bboxes'):
        value = field(name)
        if value is not None:
            inst.set_field(value[idx], name)
    if 'bboxes' not in inst and 'joints_2d' in inst:
        j2d = inst.joints_2d.double()
        boxes = torch.full((len(rows), 4), float('nan'), dtype=torch.float64)
        for r in range(len(rows)):
            pts = j2d[r][torch.isfinite(j2d[r]).all(-1)]
            if len(pts):
                boxes[r] = torch.cat([pts.min(0).values, pts.max(0).values])
        inst.bboxes = boxes.float()
    pairs = []
    if rows:
        joints = field('joints_3d')
        rel = None
        if len(rows) == 2 and joints is not None:
            rel = (joints[1, 0] - joints[0, 0]).double().tolist()
        pairs.append(
            dict(
                right=rows.index(0) if 0 in rows else -1,
                left=rows.index(1) if 1 in rows else -1,
                score=float(inst.bbox_scores.double().mean()),
                rel_transl=rel))
    return inst, pairs

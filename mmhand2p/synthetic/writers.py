# Copyright (c) mmhand2p contributors. All rights reserved.
"""Files of the synthetic two-hand set: InterHand2.6M's annotation files
(:class:`mmhand2p.datasets.InterHandFormatWriter`), the all-or-nothing
commit of a split, and COCO hand boxes (:func:`write_coco_hand_boxes`, also
for the real release)."""
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional

import numpy as np

from mmhand2p.utils.fileio import atomic_write_json
from .scene import (COCO_CATEGORIES, GAP_MODES, GENERATOR_VERSION, camera_name,
                    capture_rig)

__all__ = ['coco_boxes_path', 'write_coco_hand_boxes']


def _atomic_json(path: str, obj) -> None:
    """Compact JSON (the release's style), written atomically."""
    atomic_write_json(path, obj, separators=(',', ':'))


def _write_annotations(job: dict, records: List[dict]) -> Dict[str, str]:
    from mmhand2p.datasets.interhand_writer import InterHandFormatWriter
    split = job['split']
    h, w = job['image_hw']
    writer = InterHandFormatWriter(job['tmp_root'], split)
    for capture in sorted({r['capture'] for r in records}):
        for k, cam in enumerate(capture_rig(job, capture)):
            writer.add_camera(capture, camera_name(k), cam['camrot'],
                              cam['campos'], cam['focal'], cam['princpt'])
    img_id = 0
    frames_meta: Dict[str, Dict[str, dict]] = {}
    for r in records:
        writer.add_frame(r['capture'], r['index'], r['world_mm'],
                         r['joint_valid'], r['hand_type'], r['mano'])
        for v in r['views']:
            writer.add_image(img_id, r['capture'], r['seq'], v['camera'],
                             r['index'], v['file_name'], w, h, v['bbox'],
                             r['joint_valid'], r['hand_type'])
            img_id += 1
        frames_meta.setdefault(str(r['capture']), {})[str(r['index'])] = dict(
            r['meta'],
            hand_type=r['hand_type'],
            hand_pixels={v['camera']: v['hand_pixels']
                         for v in r['views']})
    files = writer.write()
    meta_path = osp.join(job['tmp_root'], 'annotations', split,
                         f'synthetic_{split}_frames.json')
    settings = {
        k: v
        for k, v in job.items() if k not in ('tmp_root', 'gap_modes')
    }
    settings['gap_modes'] = job['gap_modes'] or GAP_MODES
    settings['generator_version'] = GENERATOR_VERSION
    _atomic_json(meta_path, dict(settings=settings, frames=frames_meta))
    files['frames'] = meta_path
    return files


def _commit(tmp_root: str, out_dir: str, split: str) -> None:
    """Move the finished split into place: old split out of the way
    (annotations first), new images in, new annotations in (last)."""
    final_img = osp.join(out_dir, 'images', split)
    final_ann = osp.join(out_dir, 'annotations', split)
    old = osp.join(tmp_root, 'old')
    os.makedirs(old)
    if osp.exists(final_ann):
        os.replace(final_ann, osp.join(old, 'annotations'))
    if osp.exists(final_img):
        os.replace(final_img, osp.join(old, 'images'))
    os.makedirs(osp.dirname(final_img), exist_ok=True)
    os.makedirs(osp.dirname(final_ann), exist_ok=True)
    os.replace(osp.join(tmp_root, 'images', split), final_img)
    os.replace(osp.join(tmp_root, 'annotations', split), final_ann)
    shutil.rmtree(tmp_root, ignore_errors=True)


# ---------------------------------------------------------------------------
# COCO hand boxes (for an mmdet hand detector)
# ---------------------------------------------------------------------------
def coco_boxes_path(data_root: str, split: str) -> str:
    """Default path of the COCO hand-box file of a split."""
    return osp.join(data_root, 'annotations', split,
                    f'hand_boxes_{split}_coco.json')


def write_coco_hand_boxes(data_root: str,
                          split: str,
                          out_file: Optional[str] = None,
                          mano_model_path: Optional[str] = None,
                          joints_expand: float = 1.2,
                          min_size: float = 2.0,
                          min_inside: float = 0.2,
                          batch_size: int = 64) -> str:
    """COCO detection annotations with one box per present hand per image.

    Works on any set in InterHand2.6M's format (the synthetic one or the
    real release): a hand with a MANO annotation gets the box of its
    projected MANO vertices (the full, amodal hand), one without gets the
    box of its valid projected joints enlarged by ``joints_expand``. Boxes
    are clipped to the image and use COCO's pixel convention (the image
    spans ``[0, W] x [0, H]``, pixel centres at ``+0.5``), i.e. they are the
    projected extent shifted by ``+0.5`` (mmhand2p's convention puts pixel
    centres at integers). A hand is left out when its clipped box is
    smaller than ``min_size`` px or keeps less than ``min_inside`` of its
    unclipped area.

    Categories: ``1 = right_hand``, ``2 = left_hand`` (:data:`COCO_CATEGORIES`;
    an mmdet config with ``classes=('right_hand', 'left_hand')`` gets labels
    0 = right, 1 = left, the hand axis). Image ids and ``file_name``
    (relative to ``images/{split}``) are those of the split's ``data.json``.

    Args:
        data_root (str): dataset root.
        split (str): split.
        out_file (str, optional): default :func:`coco_boxes_path`.
        mano_model_path (str, optional): MANO model of the annotations
            (None = bundled).
        joints_expand (float): box enlargement of joint-only hands.
        min_size (float): smallest kept box side, px.
        min_inside (float): smallest kept fraction of the box in the image.
        batch_size (int): MANO batch size.

    Returns:
        str: the written file.
    """
    import torch

    from mmhand2p.datasets.interhand26m import InterHand26MDataset
    from mmhand2p.models.body_models import MANOLayer
    ds = InterHand26MDataset(
        data_root=data_root,
        split=split,
        mano_model_path=mano_model_path,
        index_cache_dir=None,
        test_mode=True)
    layer = MANOLayer(model_path=mano_model_path).eval()
    img_root = ds.data_prefix['img']
    images, anns = [], []
    for start in range(0, len(ds), batch_size):
        infos = [
            ds.get_data_info(i)
            for i in range(start, min(start + batch_size, len(ds)))
        ]
        with torch.no_grad():
            verts = layer(
                pose=torch.as_tensor(
                    np.stack([i['mano_pose'] for i in infos])),
                betas=torch.as_tensor(
                    np.stack([i['mano_betas'] for i in infos])),
                transl=torch.as_tensor(
                    np.stack([i['mano_transl']
                              for i in infos]))).vertices.double().numpy()
        for info, vb in zip(infos, verts):
            h, w = info['ori_shape']
            images.append(
                dict(
                    id=info['img_id'],
                    file_name=osp.relpath(info['img_path'],
                                          img_root).replace(os.sep, '/'),
                    width=int(w),
                    height=int(h)))
            k = info['cam_intrinsics'].astype(np.float64)
            for hnd in range(2):
                if not info['hand_valid'][hnd]:
                    continue
                if info['mano_valid'][hnd]:
                    v = vb[hnd]
                    if v[:, 2].min() <= 1e-3:
                        continue
                    uv = v[:, :2] / v[:, 2:] * k[[0, 1], [0, 1]] + k[:2, 2]
                    lo, hi = uv.min(0), uv.max(0)
                else:
                    m = info['joints_2d_valid'][hnd] > 0
                    if not m.any():
                        continue
                    uv = info['joints_2d'][hnd][m].astype(np.float64)
                    c = (uv.min(0) + uv.max(0)) / 2
                    half = (uv.max(0) - uv.min(0)) / 2 * joints_expand
                    lo, hi = c - half, c + half
                lo, hi = lo + 0.5, hi + 0.5  # COCO pixel convention
                full = float(np.prod(np.maximum(hi - lo, 1e-6)))
                lo_c = np.clip(lo, 0, [w, h])
                hi_c = np.clip(hi, 0, [w, h])
                bw, bh = hi_c - lo_c
                if min(bw, bh) < min_size or bw * bh < min_inside * full:
                    continue
                anns.append(
                    dict(
                        id=len(anns) + 1,
                        image_id=info['img_id'],
                        category_id=hnd + 1,
                        bbox=[
                            float(lo_c[0]),
                            float(lo_c[1]),
                            float(bw),
                            float(bh)
                        ],
                        area=float(bw * bh),
                        iscrowd=0))
    out_file = out_file or coco_boxes_path(data_root, split)
    _atomic_json(
        out_file,
        dict(
            info=dict(
                description=f'hand boxes of the {split} split (category id '
                '1 = right_hand, 2 = left_hand; COCO pixel convention)'),
            images=images,
            annotations=anns,
            categories=[dict(c) for c in COCO_CATEGORIES]))
    return out_file

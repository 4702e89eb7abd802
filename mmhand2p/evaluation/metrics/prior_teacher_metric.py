# Copyright (c) mmhand2p contributors. All rights reserved.
"""Quality of the synthetic-world prior teachers."""
from typing import Dict, List, Sequence

import torch
from mmengine.evaluator import BaseMetric

from mmhand2p.registry import METRICS

__all__ = ['PriorTeacherMetric']


@METRICS.register_module()
class PriorTeacherMetric(BaseMetric):
    """Aggregates ``PriorTeacherTrainer.predict``'s per-sample numbers:
    keypoint ``kpt_err_px`` (mean pixel error of the heatmap argmax over
    valid joints, network-input pixels), segmentation ``mIoU`` of the two
    hand classes, depth ``abs_rel_depth_mm`` (mean absolute error of depth
    relative to the median hand depth, on hand pixels)."""

    default_prefix = 'prior'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            self.results.append(ds['prior_eval'])

    def compute_metrics(self, results: List[Dict]) -> Dict[str, float]:
        out = {}
        if 'kpt_err_px' in results[0]:
            err = sum(r['kpt_err_px'][0].sum() for r in results)
            n = sum(r['kpt_err_px'][1].sum() for r in results)
            out['kpt_err_px'] = float(err / max(float(n), 1.0))
        if 'seg_iou' in results[0]:
            inter = torch.stack([r['seg_iou'][0] for r in results]).sum(0)
            union = torch.stack([r['seg_iou'][1] for r in results]).sum(0)
            out['mIoU'] = float((inter / union.clamp(min=1)).mean())
        if 'depth_err_m' in results[0]:
            err = sum(float(r['depth_err_m'][0]) for r in results)
            n = sum(float(r['depth_err_m'][1]) for r in results)
            out['abs_rel_depth_mm'] = 1000 * err / max(n, 1.0)
        return out

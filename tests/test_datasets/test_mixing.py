# Copyright (c) mmhand2p contributors. All rights reserved.
"""The dataset-mixing config builds through the registries and its sampler
gives each set its share of every batch."""
import os.path as osp

import numpy as np
from mmengine.config import Config

from mmhand2p.registry import DATA_SAMPLERS, DATASETS
from mmhand2p.synthetic import generate_synthetic_interhand

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_mixed_config_concat_and_source_ratio(tmp_path):
    roots = []
    for i, frames in enumerate((3, 1)):  # two sets of different sizes
        root = str(tmp_path / f'set{i}')
        generate_synthetic_interhand(root, 'train', num_frames=frames,
                                     num_cams=2, image_size=64, seed=i,
                                     coco_boxes=False)
        roots.append(root)
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/datasets/'
                 'mixed_interhand26m_synthetic.py'))
    dl = cfg.train_dataloader
    for sub, root in zip(dl.dataset.datasets, roots):
        sub.data_root = root
        sub.mano_model_path = None
        sub.index_cache_dir = None
    dataset = DATASETS.build(dl.dataset)
    sizes = [len(d) for d in dataset.datasets]
    assert len(dataset) == sum(sizes) and sizes[0] > sizes[1]
    # a sample of the second set goes through the full training pipeline
    sample = dataset[sizes[0]]
    assert sample['inputs'].shape[-2:] == (256, 256)

    sampler = DATA_SAMPLERS.build(dict(dl.sampler, dataset=dataset))
    it = iter(sampler)
    batch = dl.sampler.batch_size
    for _ in range(5):
        idx = np.array([next(it) for _ in range(batch)])
        from_first = (idx < sizes[0]).sum()
        assert from_first == batch * 2 // 3  # source_ratio [2, 1]

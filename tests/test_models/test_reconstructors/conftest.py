# Copyright (c) mmhand2p contributors. All rights reserved.
"""Fixtures shared by the reconstructor tests."""
import pytest

from mmhand2p.synthetic import generate_synthetic_interhand


@pytest.fixture(scope='session')
def syn_root(tmp_path_factory):
    """A small synthetic test split in InterHand2.6M's format (seed 2: two
    interacting-hand images and two left-hand-only images, 128 px); read
    only, shared by the whole-image tests of both crop modes."""
    root = str(tmp_path_factory.mktemp('syn_full'))
    generate_synthetic_interhand(
        root,
        'test',
        num_frames=2,
        num_cams=2,
        image_size=128,
        seed=2,
        coco_boxes=False)
    return root

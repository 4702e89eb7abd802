# Copyright (c) mmhand2p contributors. All rights reserved.
"""With the refiner on, an image's hands do not depend on the batch it is
predicted in (issue 12, item 2): the shipped demo model
(``DetectThenReconstruct``: detector, stage 1 and the trained refiner) on
the demo photo alone, in a batch of three images and in reversed order,
and its reconstructor (``TopDownTwoHandReconstructor``) on the crops."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from mmhand2p.apis import init_model
from mmhand2p.models.refiners import TwoHandGate
from mmhand2p.structures import HandDataSample

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIG = osp.join(REPO, 'configs', 'detect_reconstruct',
                  'hand2p_default_synthetic.py')
CHECKPOINT = osp.join(REPO, 'demo', 'resources', 'checkpoints',
                      'hand2p_default_synthetic.pth')
PHOTO = osp.join(REPO, 'demo', 'resources', 'sample_two_hands.jpg')
TOL = 1e-6  # metres


@pytest.fixture(scope='module')
def model():
    m = init_model(CONFIG, CHECKPOINT)
    refiner = m.reconstructor.refiner
    # the shipped stage 1 does not make the demo photo's hands penetrate:
    # refine every overlapping pair, with 10 guided DDIM steps (not 50)
    refiner.gate = TwoHandGate(check='none')
    refiner.sampler.num_steps = 10
    return m


@pytest.fixture(scope='module')
def images():
    """The demo photo and two other images (its mirror images)."""
    img = cv2.imread(PHOTO)
    assert img is not None, PHOTO
    return [
        torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)
        for x in (img, img[:, ::-1], img[::-1])
    ]


def _predict(model, images, order):
    samples = [HandDataSample() for _ in order]
    with torch.no_grad():
        out = model([images[i] for i in order], samples, mode='predict')
    return {i: o for i, o in zip(order, out)}


def test_detect_then_reconstruct_refined_hands_do_not_depend_on_the_batch(
        model, images):
    alone = _predict(model, images, [0])[0]
    # one pair, refined, and the refiner moved it
    assert alone.pred_instances.refined.tolist() == [True, True]
    hands = alone.pred_hands
    moved = (hands.vertices - hands.unrefined_vertices).norm(dim=-1).max()
    assert moved > 1e-3
    for order in ([0, 1, 2], [2, 1, 0], [1, 0]):
        other = _predict(model, images, order)[0]
        assert other.pred_instances.refined.all()
        for name in ('vertices', 'joints_3d'):
            diff = (alone.pred_instances.get(name) -
                    other.pred_instances.get(name)).abs().max()
            assert diff <= TOL, (order, name, float(diff))
        diff = (hands.unrefined_vertices -
                other.pred_hands.unrefined_vertices).abs().max()
        assert diff <= TOL, (order, 'unrefined_vertices', float(diff))


@pytest.mark.parametrize('named', [False, True])
def test_top_down_refined_hands_do_not_depend_on_the_batch(
        model, images, named):
    """The reconstructor on the three photos' first pair crops, named by
    ``img_path`` or by the content of the crop."""
    crops, samples = [], []
    for i, img in enumerate(images):
        cam = model._camera(img, HandDataSample())
        det = model.detect([img])[0]
        crop, sample = model.crop_pair(img, cam, det, model._pairs(det)[0])
        if named:
            sample.set_metainfo(dict(img_path=f'photo{i}.jpg'))
        crops.append(crop)
        samples.append(sample)
    rec = model.reconstructor

    def run(order):
        data = rec.data_preprocessor(
            dict(
                inputs=[crops[i] for i in order],
                data_samples=[samples[i].clone() for i in order]), False)
        with torch.no_grad():
            out = rec(**data, mode='predict')
        return {i: o for i, o in zip(order, out)}

    alone = run([0])[0]
    assert alone.pred_hands.refined
    # unnamed crops are named by their content (exact: uint8 crops,
    # normalised one by one)
    assert ('noise_key' in alone.metainfo) == (not named)
    for order in ([0, 1, 2], [2, 1, 0]):
        other = run(order)[0]
        assert other.metainfo.get('noise_key') == alone.metainfo.get(
            'noise_key')
        for name in ('vertices', 'joints_3d'):
            diff = (alone.pred_hands.get(name) -
                    other.pred_hands.get(name)).abs().max()
            assert diff <= TOL, (order, name, float(diff))

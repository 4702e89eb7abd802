# Copyright (c) mmhand2p contributors. All rights reserved.
"""The contract every two-hand method meets (issue 13, item 4).

Parametrised over every registered head (``BaseTwoHandHead``) and every
registered model (``BaseTwoHandReconstructor``, and whole-image models that
declare a ``smallest_config``): each is built from its ``smallest_config``,
trained one step on a synthetic batch made by its own config's training
pipeline (where the model trains), then run in ``predict`` on a batch of its
own test pipeline. The predictions must carry what the refiner, the metrics,
the visualizer and the inferencer read (``HAND_FIELDS`` /
``META_FIELDS`` in ``mmhand2p/structures/hand_data_sample.py``), and each
of those consumers is run on them.

A new method passes this test by being registered and naming its smallest
config in its class; nothing here lists methods (docs/architecture.md, "Add
a head").
"""
import copy
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmhand2p.models.heads import BaseTwoHandHead
from mmhand2p.models.reconstructors import BaseTwoHandReconstructor
from mmhand2p.registry import DATASETS, METRICS, MODELS, VISUALIZERS
from mmhand2p.structures import hand_instances
from mmhand2p.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

register_all_modules()


def _contract_classes():
    """Every class in mmhand2p's MODELS registry that the contract covers."""
    found = {}
    for name, cls in MODELS.module_dict.items():
        if not isinstance(cls, type):
            continue
        if (issubclass(cls, (BaseTwoHandHead, BaseTwoHandReconstructor))
                or 'smallest_config' in vars(cls)):
            if getattr(cls, '__abstractmethods__', None):
                continue
            found[name] = cls
    return found


CLASSES = _contract_classes()


def test_contract_covers_the_library_methods():
    """The collection above finds the methods the library has (a guard
    against a registry change that would make the contract test vacuous)."""
    assert {'TwoHandMANOHead', 'TopDownTwoHandReconstructor',
            'DetectThenReconstruct'} <= set(CLASSES)


# ---------------------------------------------------------------------------
# a small synthetic set in InterHand2.6M's format, once per session
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def synthetic_root(tmp_path_factory):
    from mmhand2p.synthetic.generator import generate_synthetic_interhand
    root = str(tmp_path_factory.mktemp('contract_synthetic'))
    for split in ('train', 'test'):
        generate_synthetic_interhand(
            root,
            split,
            num_frames=2,
            num_cams=2,
            image_size=(192, 256),
            seed=7,
            hand_type_probs=(1.0, 0.0, 0.0))  # interacting: both hands
    return root


def _uses(node, name) -> bool:
    if isinstance(node, dict):
        return node.get('type') == name or any(
            _uses(v, name) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_uses(v, name) for v in node)
    return False


def _config(name, cls):
    rel = getattr(cls, 'smallest_config', None)
    assert rel, (f'{name} has no smallest_config: set the class attribute '
                 'to the repository-relative path of its smallest config '
                 '(docs/architecture.md, "Add a head")')
    path = osp.join(REPO, rel)
    assert osp.isfile(path), f'{name}.smallest_config: {path} does not exist'
    cfg = Config.fromfile(path)
    assert _uses(cfg.model, name), (
        f'{name}.smallest_config {rel} does not build a {name}')
    return cfg


def _batch(cfg, loader, root, n=2):
    ds_cfg = copy.deepcopy(cfg[loader].dataset)
    ds_cfg.data_root = root
    if ds_cfg.get('split') not in (None, 'train', 'test'):
        ds_cfg.split = 'test'
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset) >= n, (loader, len(dataset))
    return pseudo_collate([dataset[i] for i in range(n)])


def _check_hands(sample, name):
    """What the refiner, metrics, visualizer and inferencer read of a
    two-hand prediction (HAND_FIELDS; hand axis 0 right, 1 left)."""
    hands = sample.pred_hands
    nv = None
    shapes = dict(
        joints_3d=(2, 21, 3),
        vertices=(2, nv, 3),
        mano_pose=(2, 16, 3),
        mano_transl=(2, 3),
        joints_2d=(2, 21, 2),
        scores=(2, ))
    for field, shape in shapes.items():
        assert field in hands, f'{name}: pred_hands lacks {field!r}'
        value = torch.as_tensor(hands.get(field))
        assert value.ndim == len(shape) and all(
            s is None or s == d for s, d in zip(shape, value.shape)), (
                name, field, tuple(value.shape))
        assert torch.isfinite(value).all(), (name, field)
    assert hands.mano_betas.shape[0] == 2
    # joints 0..15 of MANO are regressed from the mesh: the hands are
    # meshes in front of the camera, and the right hand is not the left
    assert (hands.joints_3d[..., 2] > 0).all(), name
    assert not torch.allclose(hands.vertices[0], hands.vertices[1])
    times = sample.metainfo.get('stage_times_ms')
    assert times is not None and 'reconstruction' in times, (
        f'{name}: metainfo stage_times_ms (utils/timing.py) is missing')


def _run_consumers(samples, name):
    """The metric, the visualizer and the inferencer's result on the
    predictions of a two-hand batch."""
    from mmhand2p.apis.inferencer import prediction_to_dict
    from mmhand2p.apis.io import validate_result

    metric = METRICS.build(dict(type='TwoHandMetric', protocol='a2p'))
    metric.dataset_meta = {}
    metric.process([], [s.to_dict() for s in samples])
    results = metric.compute_metrics(metric.results)
    mpjpe = [v for k, v in results.items() if k.endswith('MPJPE_all')]
    assert mpjpe and all(np.isfinite(v) and v > 0
                         for v in mpjpe), (name, results)

    vis = VISUALIZERS.build(
        dict(type='TwoHandLocalVisualizer', name=f'contract_{name}'))
    s = samples[0]
    h, w = s.metainfo['img_shape'][:2]
    image = np.full((h, w, 3), 127, np.uint8)
    drawn = vis.add_datasample(
        'contract', image, s, draw_gt=False, show=False)
    assert drawn is not None and drawn.ndim == 3
    assert (drawn != 127).any(), f'{name}: the visualizer drew nothing'

    result = prediction_to_dict(s, 'contract')
    validate_result(result)
    assert len(result['hands']) == 2, (name, result['hands'])
    sides = sorted(hand['handedness'] for hand in result['hands'])
    assert sides == ['left', 'right'], (name, sides)


@pytest.fixture(scope='module')
def trained_refiner():
    """The shipped refiner, gate open for every pair, 2 DDIM steps."""
    from mmhand2p.apis import init_model
    from mmhand2p.models.refiners import TwoHandGate
    model = init_model(
        osp.join(REPO, 'configs/detect_reconstruct/'
                 'hand2p_default_synthetic.py'),
        osp.join(REPO, 'demo/resources/checkpoints/'
                 'hand2p_default_synthetic.pth'))
    refiner = model.reconstructor.refiner
    refiner.gate = TwoHandGate(check='none', iou_thr=-1)
    refiner.sampler.num_steps = 2
    return refiner


@pytest.mark.parametrize('name', sorted(CLASSES))
def test_method_contract(name, synthetic_root, trained_refiner):
    check_method(name, CLASSES[name], synthetic_root, trained_refiner)


def check_method(name, cls, synthetic_root, trained_refiner):
    """The whole contract for one registered class (also used by
    ``tests/test_docs_walkthroughs.py`` for the developer guide's head)."""
    cfg = _config(name, cls)
    torch.manual_seed(0)
    cwd = os.getcwd()
    os.chdir(REPO)  # configs name shipped files relative to the repository
    try:
        model = MODELS.build(cfg.model)
    finally:
        os.chdir(cwd)
    whole_image = not isinstance(model, BaseTwoHandReconstructor)

    if not whole_image:
        # one training step through the config's own training pipeline
        model.train()
        data = model.data_preprocessor(
            _batch(cfg, 'train_dataloader', synthetic_root), True)
        losses = model(**data, mode='loss')
        assert losses, f'{name}: loss returned no terms'
        total = sum(v.sum() for k, v in losses.items() if 'loss' in k)
        assert torch.isfinite(total), (name, losses)
        total.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), (
            f'{name}: no gradient reached the parameters')

    model.eval()
    data = model.data_preprocessor(
        _batch(cfg, 'test_dataloader', synthetic_root), False)
    with torch.no_grad():
        samples = model(**data, mode='predict')
    assert len(samples) == 2

    if whole_image:
        # built from its config, untrained: it may find no hand at all;
        # its parts' own contracts (e.g. DetectThenReconstruct's top-down
        # reconstructor) are checked by their own rows
        _whole_image_contract(model, samples, name)
        return

    for s in samples:
        _check_hands(s, name)
    _run_consumers(samples, name)

    # the refiner takes the head's predictions as they are
    preds = [s.pred_hands for s in samples]
    before = [p.vertices.clone() for p in preds]
    refined = trained_refiner.refine(preds, samples)
    assert [bool(p.metainfo['refined']) for p in refined] == [True, True]
    assert any(not torch.allclose(b, p.vertices)
               for b, p in zip(before, refined)), (
                   f'{name}: the refiner did not move its hands')
    # and the per-sample refine mask of the contract switches it off
    if model.refines:
        with torch.no_grad():
            out = model.predict(data['inputs'], data['data_samples'],
                                refine=[False, False])
        assert not any(
            o.pred_hands.metainfo.get('refined', False) for o in out)


def _whole_image_contract(model, samples, name):
    """A whole-image model: any number of hands, read through the
    documented instance layout by the inferencer and the visualizer; a
    found pair carries the two-hand fields."""
    import cv2

    from mmhand2p.apis import build_batch
    from mmhand2p.apis.inferencer import prediction_to_dict
    from mmhand2p.apis.io import validate_result

    photo = cv2.imread(osp.join(REPO, 'demo/resources/sample_two_hands.jpg'))
    with torch.no_grad():
        samples = list(samples) + model.test_step(build_batch([photo]))
    vis = VISUALIZERS.build(
        dict(type='TwoHandLocalVisualizer', name=f'contract_{name}'))
    for s in samples:
        inst, pairs = hand_instances(s)
        assert 'stage_times_ms' in s.metainfo, name
        validate_result(prediction_to_dict(s, 'contract'))
        h, w = s.metainfo['img_shape'][:2]
        panels = vis.draw_image_panels(np.zeros((h, w, 3), np.uint8), s)
        assert set(panels) == {'overlay', 'side'}, name
        if len(pairs):
            assert len(inst) >= 2 and (panels['overlay'] > 0).any(), name
    # a pair found anywhere carries what the two-hand consumers read
    found = [
        s for s in samples if 'pred_hands' in s
        and bool(torch.as_tensor(s.pred_hands.get('hand_valid', [1])).all())
        and len(hand_instances(s)[1])
    ]
    for s in found:
        _check_hands(s, name)
    if any('gt_hands' in s for s in found):
        _run_consumers([s for s in found if 'gt_hands' in s], name)
    return len(found)


def test_contract_checks_can_fail():
    """The checks above reject a method without a smallest config and a
    prediction that lacks a field the consumers read."""
    from mmengine.structures import InstanceData

    from mmhand2p.structures import HandDataSample

    class NoConfigHead(BaseTwoHandHead):

        def forward(self, feats):
            return {}

        def loss(self, feats, data_samples, train_cfg=None):
            return {}

        def predict(self, feats, data_samples, test_cfg=None):
            return []

    with pytest.raises(AssertionError, match='has no smallest_config'):
        _config('NoConfigHead', NoConfigHead)

    sample = HandDataSample(metainfo=dict(stage_times_ms=dict(
        reconstruction=1.0)))
    sample.pred_hands = InstanceData(
        joints_3d=torch.rand(2, 21, 3) + 1,
        vertices=torch.rand(2, 778, 3) + 1,
        mano_pose=torch.zeros(2, 16, 3),
        mano_betas=torch.zeros(2, 10),
        mano_transl=torch.zeros(2, 3),
        scores=torch.ones(2))  # no joints_2d
    with pytest.raises(AssertionError, match='joints_2d'):
        _check_hands(sample, 'Toy')
    sample.pred_hands.joints_2d = torch.full((2, 21, 2), float('nan'))
    with pytest.raises(AssertionError, match='joints_2d'):
        _check_hands(sample, 'Toy')

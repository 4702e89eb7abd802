# Copyright (c) mmhand2p contributors. All rights reserved.
"""The developer guide's walkthroughs can be followed verbatim.

Every fenced ``python`` block of :data:`DOC` whose first line is a comment
``# projects/<name>/<file>.py`` is written under a temporary root with that
relative path (next to a link to the repository's ``configs/``, which the
walkthrough configs inherit as ``../../configs/...``); the root goes on
``sys.path`` like a user's checkout run with ``PYTHONPATH=.``. The four
walkthroughs ("Add a head", "Add a whole-image model", "Add a dataset",
"Add a metric / protocol") are then run as the text says. Sections are
found by their headings, never by line numbers.
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import test_contract
import torch
from mmengine.config import Config
from test_contract import REPO, check_method

#: the developer guide file holding the walkthroughs
DOC = 'docs/architecture.md'

HEADINGS = ('Add a head', 'Add a whole-image model', 'Add a dataset',
            'Add a metric / protocol')
# the contract test's fixtures: a generated synthetic set, the refiner
synthetic_root = test_contract.synthetic_root
trained_refiner = test_contract.trained_refiner
FENCE = re.compile(r'```python\n(# (projects/[\w/]+\.py)\n.*?)```', re.S)


def _doc() -> str:
    with open(osp.join(REPO, DOC), encoding='utf-8') as f:
        return f.read()


def section(heading: str) -> str:
    """The text of the section whose heading (any level from ``##`` on)
    starts with ``heading``, up to the next heading of the same or a higher
    level outside code blocks (so the page may be nested under another
    heading when it is pasted into docs/architecture.md)."""
    lines = _doc().splitlines(keepends=True)
    level, out, fenced = None, [], False
    for line in lines:
        if line.startswith('```'):
            fenced = not fenced
        m = None if fenced else re.match(r'(#+) (.*)', line)
        if level is None:
            if m and len(m.group(1)) >= 2 and m.group(2).startswith(heading):
                level = len(m.group(1))
            continue
        if m and len(m.group(1)) <= level:
            break
        out.append(line)
    assert level is not None, f'{DOC} has no section "## {heading}"'
    return ''.join(out)


def project_files(text: str) -> dict:
    """``{relative path: source}`` of the file blocks in ``text``."""
    return {m.group(2): m.group(1) for m in FENCE.finditer(text)}


@pytest.fixture(scope='module')
def project_root(tmp_path_factory):
    """A user's checkout: the walkthroughs' files under ``projects/`` and
    the repository's ``configs/``; on ``sys.path`` for this module."""
    root = tmp_path_factory.mktemp('walkthrough_checkout')
    os.symlink(osp.join(REPO, 'configs'), str(root / 'configs'))
    for rel, source in project_files(_doc()).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    sys.path.insert(0, str(root))
    yield str(root)
    sys.path.remove(str(root))


def test_every_walkthrough_is_one_file_and_one_config():
    for heading in HEADINGS:
        files = project_files(section(heading))
        assert len(files) == 2, (heading, sorted(files))
        folders = {osp.dirname(p) for p in files}
        assert len(folders) == 1, (heading, folders)


def test_walkthrough_files_are_style_clean(project_root):
    """flake8 and isort (setup.cfg) pass on the files as printed."""
    files = [osp.join(project_root, p) for p in project_files(_doc())]
    bindir = osp.dirname(sys.executable)
    cfg = osp.join(REPO, 'setup.cfg')
    res = subprocess.run([osp.join(bindir, 'flake8'), '--config', cfg] +
                         files, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run(
        [osp.join(bindir, 'isort'), '--settings-path', cfg, '--check-only',
         '--diff'] + files,
        capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


# ---------------------------------------------------------------------------
# Add a head
# ---------------------------------------------------------------------------
HEAD_CONFIG = 'projects/pooled_head/pooled_head_synthetic.py'


def test_head_passes_the_contract(project_root, synthetic_root,
                                  trained_refiner, monkeypatch):
    import importlib
    module = importlib.import_module('projects.pooled_head.pooled_head')
    cls = module.PooledTwoHandHead
    assert cls.smallest_config == HEAD_CONFIG
    # the file lives in the temporary checkout, not in the repository
    monkeypatch.setattr(cls, 'smallest_config',
                        osp.join(project_root, HEAD_CONFIG))
    check_method('PooledTwoHandHead', cls, synthetic_root, trained_refiner)


def test_own_contract_test_snippet(project_root, tmp_path):
    """The "hold your own copy to it" test module of "Add a head", run by
    pytest in a checkout laid out as the repository (its ``tests/`` with
    ``test_contract.py``, ``configs/``, ``demo/`` and the walkthrough's
    ``projects/``)."""
    m = re.search(r'```python\n(# (tests/test_pooled_head\.py).*?)```',
                  section('Add a head'), re.S)
    assert m, 'the "Add a head" section lost its contract test snippet'
    root = tmp_path / 'checkout'
    (root / 'tests').mkdir(parents=True)
    for name in ('configs', 'demo'):
        os.symlink(osp.join(REPO, name), str(root / name))
    os.symlink(osp.join(project_root, 'projects'), str(root / 'projects'))
    for name in ('conftest.py', 'test_contract.py'):
        os.symlink(
            osp.join(REPO, 'tests', name), str(root / 'tests' / name))
    (root / m.group(2)).write_text(m.group(1))
    log = _run([
        '-m', 'pytest', m.group(2), '-q', '-p', 'no:cacheprovider'
    ], str(root))
    assert '1 passed' in log, log[-3000:]


def _run(args, root, timeout=600):
    """A command of the walkthroughs, run from the user's checkout with
    ``PYTHONPATH=.`` (and the repository, where the package lives)."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (root, REPO, env.get('PYTHONPATH')) if p)
    res = subprocess.run([sys.executable] + args,
                         cwd=root,
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=timeout)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    return log


def _data_options(root):
    """``--cfg-options`` pointing a config's loaders at a generated set."""
    opts = []
    for loader, split in (('train_dataloader', 'train'),
                          ('val_dataloader', 'test'), ('test_dataloader',
                                                       'test')):
        opts += [
            f'{loader}.dataset.data_root={root}',
            f'{loader}.dataset.split={split}', f'{loader}.batch_size=2',
            f'{loader}.num_workers=0', f'{loader}.persistent_workers=False'
        ]
    return opts


def test_head_trains_with_tools_train(project_root, synthetic_root):
    """The walkthrough's training command (2 iterations, validation at the
    end) on a generated synthetic set."""
    assert 'tools/train.py ' + HEAD_CONFIG in section('Add a head')
    work_dir = osp.join(project_root, 'work_dirs', 'pooled_head')
    log = _run([
        osp.join(REPO, 'tools', 'train.py'), HEAD_CONFIG, '--work-dir',
        work_dir, '--cfg-options', 'train_cfg.max_iters=2',
        'default_hooks.logger.interval=1'
    ] + _data_options(synthetic_root), project_root)
    assert 'loss_joints_3d' in log and 'loss_joints_25d' in log, log[-3000:]
    assert 'MPJPE' in log, log[-3000:]
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth')), os.listdir(work_dir)


# ---------------------------------------------------------------------------
# Add a whole-image model
# ---------------------------------------------------------------------------
WHOLE_CONFIG = 'projects/whole_image/whole_image_synthetic.py'


def test_whole_image_model_passes_the_contract(project_root, synthetic_root,
                                               trained_refiner, monkeypatch):
    import importlib
    module = importlib.import_module('projects.whole_image.letterbox_model')
    cls = module.LetterboxTwoHandModel
    assert cls.smallest_config == WHOLE_CONFIG
    monkeypatch.setattr(cls, 'smallest_config',
                        osp.join(project_root, WHOLE_CONFIG))
    check_method('LetterboxTwoHandModel', cls, synthetic_root,
                 trained_refiner)


def test_whole_image_model_letterbox_camera(project_root):
    """K' = A @ K: a camera-frame point projects with K' to where the
    letterbox moved its image pixel (value check on a non-square image,
    with and without given intrinsics)."""
    from mmhand2p.registry import MODELS
    from mmhand2p.structures import HandDataSample
    cfg = Config.fromfile(osp.join(project_root, WHOLE_CONFIG))
    model = MODELS.build(cfg.model)
    img = torch.zeros(3, 60, 100, dtype=torch.uint8)
    img[:, 30, 70] = 255  # one bright pixel at (u, v) = (70, 30)
    k = np.array([[90., 0, 48], [0, 80, 31], [0, 0, 1]], np.float32)
    given = HandDataSample(metainfo=dict(cam_intrinsics=k))
    assumed = HandDataSample(metainfo=dict(img_shape=(60, 100)))
    x, ks, kps, _ = model.letterbox([img, img], [given, assumed])
    assert x.shape == (2, 3, 128, 128)
    assert assumed.metainfo['cam_intrinsics_assumed']
    assert np.allclose(assumed.metainfo['cam_intrinsics'],
                       [[100, 0, 49.5], [0, 100, 29.5], [0, 0, 1]])
    for i in range(2):
        point = torch.linalg.solve(ks[i], torch.tensor([70., 30, 1])) * 0.5
        uv = kps[i] @ point
        uv = uv[:2] / uv[2]
        # the bright pixel's centre in the letterboxed input
        red = x[i, 0]
        v, u = divmod(int(red.argmax()), 128)
        assert abs(float(uv[0]) - u) <= 0.5 and abs(float(uv[1]) - v) <= 0.5
        # 100 x 60 -> 128 x 77 (rounded), padded top and bottom by 25 / 26
        assert torch.allclose(kps[i][0, 0], ks[i][0, 0] * 1.28)
        assert torch.allclose(kps[i][1, 1], ks[i][1, 1] * 77 / 60)
        assert torch.allclose(kps[i][1, 2],
                              ks[i][1, 2] * 77 / 60 + 0.5 * 77 / 60 - 0.5 +
                              25)


def test_whole_image_model_runs_in_the_demo(project_root, tmp_path):
    """The walkthrough's demo command (no checkpoint: the freshly built
    model) writes a schema-valid result with both hands, their 2D joints in
    pixels of the photo."""
    from mmhand2p.apis import validate_result
    text = section('Add a whole-image model')
    assert ('demo/image_demo.py demo/resources/sample_two_hands.jpg '
            '--config ' + WHOLE_CONFIG) in text
    out_dir = str(tmp_path / 'demo')
    photo = osp.join(REPO, 'demo', 'resources', 'sample_two_hands.jpg')
    log = _run([
        osp.join(REPO, 'demo', 'image_demo.py'), photo, '--config',
        WHOLE_CONFIG, '--out-dir', out_dir
    ], project_root)
    assert 'sample_two_hands: 2 hand(s)' in log, log[-2000:]
    with open(osp.join(out_dir, 'sample_two_hands.json')) as f:
        result = json.load(f)
    validate_result(result)
    assert sorted(h['handedness'] for h in result['hands']) == [
        'left', 'right'
    ]
    # 2D joints in pixels of the photo: its (assumed) camera times the 3D
    # joints
    assert result['camera']['assumed']
    k = np.asarray(result['camera']['intrinsics'])
    assert k[0, 0] == max(result['image']['width'],
                          result['image']['height'])
    for hand in result['hands']:
        uvw = np.asarray(hand['joints_3d']) @ k.T
        assert np.allclose(uvw[:, :2] / uvw[:, 2:], hand['joints_2d'],
                           atol=0.02)


# ---------------------------------------------------------------------------
# Add a dataset
# ---------------------------------------------------------------------------
DATASET_CONFIG = 'projects/my_dataset/my_dataset_test.py'


def _annotations(synthetic_root):
    """The walkthrough's annotation format, written from the generated
    synthetic test split (read by ``InterHand26MDataset``), and the source
    data infos."""
    from mmhand2p.registry import DATASETS
    source = DATASETS.build(
        dict(
            type='InterHand26MDataset',
            data_root=synthetic_root,
            split='test',
            test_mode=True,
            pipeline=[]))
    records, infos = [], []
    for i in range(len(source)):
        info = source.get_data_info(i)
        hands = {}
        for axis, side in enumerate(('right', 'left')):
            if info['hand_valid'][axis]:
                hands[side] = dict(
                    joints_3d=info['joints_3d'][axis].tolist(),
                    valid=info['joints_3d_valid'][axis].tolist())
        h, w = info['ori_shape']
        records.append(
            dict(
                image=osp.relpath(info['img_path'], synthetic_root),
                height=h,
                width=w,
                cam_intrinsics=info['cam_intrinsics'].tolist(),
                hands=hands))
        infos.append(info)
    return records, infos


def test_dataset_reads_the_documented_format(project_root, synthetic_root,
                                             tmp_path):
    from mmengine.logging import MMLogger

    from mmhand2p.registry import DATASETS
    records, infos = _annotations(synthetic_root)
    assert len(records) >= 2
    bad = dict(records[0])
    bad['hands'] = dict(right=dict(joints_3d=[[0, 0, 1]] * 20))  # 20 joints
    ann = tmp_path / 'annotations.json'
    ann.write_text(json.dumps(records[:1] + [bad] + records[1:]))

    cfg = Config.fromfile(osp.join(project_root, DATASET_CONFIG))
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.data_root = synthetic_root
    ds_cfg.ann_file = str(ann)
    logger = MMLogger.get_current_instance()
    seen = []
    handler = _ListHandler(seen)
    logger.addHandler(handler)
    try:
        dataset = DATASETS.build(ds_cfg)
    finally:
        logger.removeHandler(handler)
    # the malformed record is skipped, counted and named
    assert len(dataset) == len(records)
    assert list(dataset.skipped) == [f'record 1 ({bad["image"]})']
    assert '21 x 3' in dataset.skipped[f'record 1 ({bad["image"]})']
    assert any('skipped 1 malformed record(s)' in m and 'record 1' in m
               for m in seen), seen

    input_size = tuple(cfg.input_size)
    for i in (0, len(dataset) - 1):
        src = infos[i]
        packed = dataset[i]
        gt = packed['data_samples'].gt_hands
        meta = packed['data_samples'].metainfo
        assert packed['inputs'].shape == (3, input_size[1], input_size[0])
        present = np.asarray(src['hand_valid'], bool)
        assert (np.asarray(gt.hand_valid, bool) == present).all()
        # the packed joints are the source joints (test mode: no rotation)
        j3d = np.asarray(gt.joints_3d)
        assert np.allclose(j3d[present], src['joints_3d'][present],
                           atol=1e-6)
        # the crop's camera projects them into the crop, where the packed
        # 2D joints are
        k = np.asarray(meta['cam_intrinsics'], np.float64)
        uvw = j3d[present].astype(np.float64) @ k.T
        uv = uvw[..., :2] / uvw[..., 2:]
        assert np.allclose(uv, np.asarray(gt.joints_2d)[present], atol=1e-3)
        assert (uv > 0).all() and (uv[..., 0] < input_size[0]).all() and (
            uv[..., 1] < input_size[1]).all()


def test_dataset_names_a_missing_file(project_root, tmp_path):
    from mmhand2p.registry import DATASETS
    cfg = Config.fromfile(osp.join(project_root, DATASET_CONFIG))
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.data_root = str(tmp_path)
    with pytest.raises(FileNotFoundError,
                       match=re.escape(str(tmp_path / 'annotations.json'))):
        DATASETS.build(ds_cfg)


class _ListHandler:
    """A logging handler that keeps the messages."""

    def __new__(cls, messages):
        import logging

        class Handler(logging.Handler):

            def emit(self, record):
                messages.append(record.getMessage())

        return Handler(level=logging.WARNING)


# ---------------------------------------------------------------------------
# Add a metric / protocol
# ---------------------------------------------------------------------------
METRIC_CONFIG = 'projects/my_metric/pooled_head_pck.py'


def _sample(pred, gt, valid):
    from mmengine.structures import InstanceData

    from mmhand2p.structures import HandDataSample
    s = HandDataSample()
    s.pred_hands = InstanceData(joints_3d=torch.as_tensor(pred))
    s.gt_hands = InstanceData(
        joints_3d=torch.as_tensor(gt), joints_3d_valid=torch.as_tensor(valid))
    return s.to_dict()


def test_pck_metric_known_values(project_root):
    """Hand-made errors: right hand 10 joints 1 cm off (hits) and 5 joints
    3 cm off (misses) of 21; left hand 4 cm off everywhere but its root, 1
    joint invalid; a second sample whose right root is invalid counts only
    its left hand."""
    import importlib
    module = importlib.import_module('projects.my_metric.pck3d_metric')
    rng = np.random.default_rng(0)
    gt = rng.normal(0, 0.05, (2, 21, 3)) + [0, 0, 0.6]
    pred = gt.copy()
    pred[0, 1:11, 0] += 0.01  # right: 10 hits (+ the root itself)
    pred[0, 11:16, 1] += 0.03  # right: 5 misses; 16..20 exact: hits
    pred[1, 1:] += [0, 0.04, 0]  # left: 20 misses, the root a hit
    valid = np.ones((2, 21))
    valid[1, 5] = 0  # not counted
    valid2 = valid.copy()
    valid2[0, 0] = 0  # right root invalid: the right hand is not counted
    metric = module.PCK3DMetric(thr=0.02)
    metric.process([], [_sample(pred, gt, valid), _sample(pred, gt, valid2)])
    out = metric.compute_metrics(metric.results)
    right = 16 / 21  # root + 10 + 5 exact
    left = 2 / 40  # root only, 20 counted joints per sample
    assert out['PCK@20mm_right'] == pytest.approx(right)
    assert out['PCK@20mm_left'] == pytest.approx(left)
    assert out['PCK@20mm'] == pytest.approx((16 + 2) / (21 + 40))
    # middle-MCP root: the left hand moved rigidly apart from its root
    metric9 = module.PCK3DMetric(thr=0.02, root_joint=9)
    metric9.process([], [_sample(pred, gt, valid)])
    assert metric9.compute_metrics(
        metric9.results)['PCK@20mm_left'] == pytest.approx(19 / 20)


def test_protocol_variant_in_config():
    """(a) of the walkthrough: a protocol dict overrides a named one."""
    from mmhand2p.registry import METRICS
    text = section('Add a metric / protocol')
    assert "protocol=dict(type='interwild', root_joint=9)" in text
    metric = METRICS.build(
        dict(
            type='TwoHandMetric',
            protocol=dict(type='interwild', root_joint=9)))
    assert metric.protocol.root_joint == 9
    assert metric.protocol.joint_aggregation == 'per_joint'  # interwild's


def test_metric_runs_in_tools_test(project_root, synthetic_root, tmp_path):
    """The walkthrough's ``tools/test.py`` command: the three evaluators of
    its config on the generated set, with a freshly built pooled head."""
    from mmhand2p.registry import MODELS
    assert 'tools/test.py ' + METRIC_CONFIG in section(
        'Add a metric / protocol')
    cfg = Config.fromfile(osp.join(project_root, METRIC_CONFIG))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    checkpoint = str(tmp_path / 'pooled_head.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), checkpoint)
    log = _run([
        osp.join(REPO, 'tools', 'test.py'), METRIC_CONFIG, checkpoint,
        '--work-dir',
        str(tmp_path / 'work'), '--cfg-options'
    ] + _data_options(synthetic_root), project_root)
    for key in ('pck3d/PCK@20mm:', 'pck3d/PCK@20mm_left:',
                'interwild_mcp/', 'two_hand/'):
        assert key in log, log[-3000:]

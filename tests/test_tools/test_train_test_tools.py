# Copyright (c) mmhand2p contributors. All rights reserved.
"""tools/train.py, tools/test.py and the analysis tools on a toy config.

The toy model, dataset and metric live in ``_toy_components.py`` (this
folder), which the config imports through ``custom_imports``; the
subprocesses find it through ``PYTHONPATH``.
"""
import glob
import importlib.util
import os
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
TOOLS = osp.join(REPO, 'tools')

TOY_CONFIG = """\
_base_ = [{base!r}]
custom_imports = dict(
    imports=['_toy_components', 'mmhand2p.engine'], allow_failed_imports=False)
model = dict(type='ToyTwoHandModel')
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ToyTwoHandDataset', num_samples=8))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ToyTwoHandDataset', num_samples=4))
test_dataloader = val_dataloader
val_evaluator = dict(type='ToyTranslError')
test_evaluator = val_evaluator
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
default_hooks = dict(
    logger=dict(interval=1),
    visualization=dict(type='TwoHandVisualizationHook', interval=1))
randomness = dict(seed=0)
"""


@pytest.fixture
def toy_config(tmp_path):
    path = tmp_path / 'toy_cfg.py'
    path.write_text(
        TOY_CONFIG.format(
            base=osp.join(REPO, 'configs', '_base_', 'default_runtime.py')))
    return path


def _run(args, cwd):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (HERE, REPO, env.get('PYTHONPATH')) if p)
    res = subprocess.run([sys.executable, *map(str, args)],
                         cwd=str(cwd),
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert res.returncode == 0, (f'{args} failed:\n{res.stdout[-4000:]}\n'
                                 f'{res.stderr[-4000:]}')
    return res.stdout + res.stderr


def _load_tool(name):
    path = osp.join(TOOLS, *name.split('/'))
    spec = importlib.util.spec_from_file_location(
        'tool_' + name.replace('/', '_').replace('.py', ''), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _log_text(work_dir):
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.log')))
    assert logs, f'no log under {work_dir}'
    return open(logs[-1]).read()


def test_train_resume_test(tmp_path, toy_config):
    # 1. train 2 epochs with the default work dir and --amp
    out = _run([osp.join(TOOLS, 'train.py'), toy_config.name, '--amp'],
               cwd=tmp_path)
    work_dir = tmp_path / 'work_dirs' / 'toy_cfg'
    for name in ('epoch_1.pth', 'epoch_2.pth', 'last_checkpoint',
                 'toy_cfg.py'):
        assert (work_dir / name).is_file(), name
    ckpt = torch.load(
        work_dir / 'epoch_2.pth', map_location='cpu', weights_only=True)
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 4
    assert {'backbone.0.weight', 'head.weight'} <= set(ckpt['state_dict'])
    log = _log_text(work_dir)
    if not torch.cuda.is_available():
        # no CUDA: --amp falls back to bfloat16 autocast, and it is active
        assert 'BF16AutocastOptimWrapper' in out
        assert "type='BF16AutocastOptimWrapper'" in (work_dir /
                                                     'toy_cfg.py').read_text()
        assert 'bf16: 1.0000' in log
    # the visualization hook drew the first sample of each val batch
    for it in (2, 4):
        drawn = sorted(os.listdir(work_dir / 'vis' / 'val' / f'iter_{it}'))
        assert drawn == ['000000_toy_000.png', '000001_toy_002.png']

    # 2. resume from the latest checkpoint up to epoch 3 (no --amp now)
    _run([
        osp.join(TOOLS, 'train.py'), toy_config.name, '--resume',
        '--cfg-options', 'train_cfg.max_epochs=3'
    ],
         cwd=tmp_path)
    ckpt = torch.load(
        work_dir / 'epoch_3.pth', map_location='cpu', weights_only=True)
    assert ckpt['meta']['epoch'] == 3 and ckpt['meta']['iter'] == 6
    log = _log_text(work_dir)
    assert 'resumed epoch: 2, iter: 4' in log
    assert 'Epoch(train) [3][2/2]' in log and 'bf16: 0.0000' in log
    assert 'Epoch(train) [1]' not in log

    # 3. test the last checkpoint, dump predictions and draw them
    out_pkl = tmp_path / 'results' / 'toy.pkl'
    _run([
        osp.join(TOOLS, 'test.py'), toy_config, work_dir / 'epoch_3.pth',
        '--work-dir', tmp_path / 'test_dir', '--out', out_pkl, '--show-dir',
        tmp_path / 'show'
    ],
         cwd=tmp_path)
    with open(out_pkl, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 4
    assert [r['img_path']
            for r in results] == [f'toy_{i:03d}.png' for i in range(4)]
    assert results[0]['pred_hands']['vertices'].shape == (2, 778, 3)
    # nothing but the result in its folder (the temporary file was renamed)
    assert os.listdir(out_pkl.parent) == ['toy.pkl']
    assert sorted(os.listdir(
        tmp_path / 'show')) == ['000000_toy_000.png', '000001_toy_002.png']
    assert 'toy/transl_err' in _log_text(tmp_path / 'test_dir')


def _toy_checkpoint(tmp_path):
    from _toy_components import ToyTwoHandModel
    path = tmp_path / 'toy.pth'
    torch.save({'state_dict': ToyTwoHandModel().state_dict()}, path)
    return path


def test_failed_test_run_leaves_out_untouched(tmp_path, toy_config):
    test_tool = _load_tool('test.py')
    out_pkl = tmp_path / 'res.pkl'
    out_pkl.write_bytes(b'old results')
    with pytest.raises(RuntimeError, match='failing on purpose'):
        test_tool.main([
            str(toy_config),
            str(_toy_checkpoint(tmp_path)), '--work-dir',
            str(tmp_path / 'wd'), '--out',
            str(out_pkl), '--cfg-options', 'test_evaluator.fail=True'
        ])
    assert out_pkl.read_bytes() == b'old results'
    assert sorted(
        os.listdir(tmp_path)) == ['res.pkl', 'toy.pth', 'toy_cfg.py', 'wd']
    with pytest.raises(SystemExit):
        test_tool.parse_args(['cfg.py', 'ckpt.pth', '--out', 'res.json'])


def test_train_args_to_config(tmp_path, toy_config, monkeypatch):
    train_tool = _load_tool('train.py')
    from mmengine.config import Config

    def merged(*argv):
        args = train_tool.parse_args([str(toy_config), *argv])
        return train_tool.merge_args(Config.fromfile(str(toy_config)), args)

    monkeypatch.chdir(tmp_path)
    cfg = merged()
    assert cfg.work_dir == osp.join('./work_dirs', 'toy_cfg')
    assert cfg.launcher == 'none' and not cfg.get('resume')
    cfg = merged('--work-dir', 'wd', '--resume')
    assert cfg.work_dir == 'wd' and cfg.resume and cfg.load_from is None
    ckpt = _toy_checkpoint(tmp_path)
    cfg = merged('--resume', str(ckpt), '--launcher', 'pytorch')
    assert cfg.resume and cfg.load_from == str(ckpt)
    assert cfg.launcher == 'pytorch'
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        merged('--resume', 'missing.pth')
    with pytest.raises(ValueError, match='base_batch_size'):
        merged('--auto-scale-lr')
    cfg = Config.fromfile(str(toy_config))
    cfg.auto_scale_lr = dict(base_batch_size=16)
    cfg = train_tool.merge_args(
        cfg, train_tool.parse_args([str(toy_config), '--auto-scale-lr']))
    assert cfg.auto_scale_lr == dict(base_batch_size=16, enable=True)
    # --amp without CUDA: bfloat16 autocast; with CUDA: AmpOptimWrapper
    monkeypatch.setattr(train_tool, '_cuda_available', lambda: False)
    assert merged('--amp').optim_wrapper.type == 'BF16AutocastOptimWrapper'
    monkeypatch.setattr(train_tool, '_cuda_available', lambda: True)
    cfg = merged('--amp')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


def test_count_params(toy_config, capsys):
    count_params = _load_tool('analysis_tools/count_params.py')
    result = count_params.main([str(toy_config)])
    rows = {r['name']: r for r in result['rows']}
    assert (rows['backbone']['trainable'], rows['backbone']['frozen']) == \
        (112, 0)
    assert (rows['head']['trainable'], rows['head']['frozen']) == (30, 0)
    assert rows['teachers']['teacher'] and rows['teachers']['frozen'] == 20
    assert result['total'] == 162 and result['trainable'] == 142
    assert result['frozen'] == 20 and result['teachers'] == 20
    assert result['deployed'] == 142
    assert result['unregistered'] == {'_on_demand[0]': 9}
    table = capsys.readouterr().out
    assert 'deployed (no teachers)' in table and 'teachers [teacher]' in table


def test_get_flops(toy_config, capsys):
    get_flops = _load_tool('analysis_tools/get_flops.py')
    info = get_flops.main([str(toy_config), '--shape', '32', '32'])
    assert info['input_shape'] == (1, 3, 32, 32)
    # conv: 16 x 16 outputs x 4 channels x 27 multiply-adds; linear: 4 x 6
    conv, linear = 16 * 16 * 4 * 27, 4 * 6
    assert conv + linear <= info['flops'] <= conv + linear + 16 * 16 * 4 * 2
    assert info['params'] == 162  # every registered parameter
    out = capsys.readouterr().out
    assert 'FLOPs' in out and '(1, 3, 32, 32)' in out
    # a single size means a square input
    assert get_flops.parse_args(['c.py', '--shape', '64']).shape == [64, 64]


def test_count_params_falls_back_to_the_inference_model(toy_config, capsys):
    count_params = _load_tool('analysis_tools/count_params.py')
    result = count_params.main([
        str(toy_config), '--cfg-options',
        'model.teachers.checkpoint=missing_teacher.pth'
    ])
    assert 'cannot be built here' in result['notes'][0]
    assert 'missing_teacher.pth' in result['notes'][0]
    assert result['notes'][1] == 'model.teachers: dropped (training only)'
    assert result['deployed'] == 142
    assert 'counting its inference model' in capsys.readouterr().err


def test_test_mode_model_cfg():
    get_flops = _load_tool('analysis_tools/get_flops.py')
    cfg = dict(
        type='Reconstructor',
        neck=dict(type='Neck', teachers=dict(keypoint=dict(type='T'))),
        starred=dict(prior_source='teacher', teachers=dict(depth=1)),
        head=dict(
            body_model=dict(type='MANOLayer', model_path='/missing/mano')),
        refiners=[dict(type='R', teacher=dict(type='T'))])
    new, notes = get_flops.test_mode_model_cfg(cfg)
    assert new['neck']['teachers'] is None
    # the starred variant runs its teachers at inference: kept
    assert new['starred']['teachers'] == dict(depth=1)
    assert new['head']['body_model']['model_path'] is None
    assert new['refiners'][0]['teacher'] is None
    assert len(notes) == 3 and 'model.refiners[0].teacher' in notes[2]
    # the given config is untouched
    assert cfg['neck']['teachers'] == dict(keypoint=dict(type='T'))

# Copyright (c) mmhand2p contributors. All rights reserved.
"""tools/misc/make_demo_checkpoints.py and the embedded default it made."""
import importlib.util
import json
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmhand2p.apis import build_inference_model

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'configs/detect_reconstruct/'
                          'hand2p_default_synthetic.py')
DEFAULT_CKPT = osp.join(REPO, 'demo/resources/checkpoints/'
                        'hand2p_default_synthetic.pth')


def _tool():
    spec = importlib.util.spec_from_file_location(
        'make_demo_checkpoints',
        osp.join(REPO, 'tools/misc/make_demo_checkpoints.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def parts(tmp_path_factory):
    """The default model's three parts saved as separate training-style
    checkpoints (random weights)."""
    torch.manual_seed(0)
    model, _ = build_inference_model(Config.fromfile(DEFAULT_CONFIG))
    root = tmp_path_factory.mktemp('parts')
    rec = {
        k: v
        for k, v in model.reconstructor.state_dict().items()
        if not k.startswith('refiner.')
    }
    files = {}
    for name, state in (('detector', model.detector.state_dict()),
                        ('reconstructor', rec),
                        ('refiner', model.reconstructor.refiner.state_dict())):
        files[name] = str(root / f'{name}.pth')
        torch.save(dict(state_dict=state, meta=dict()), files[name])
    return model, files


def test_assemble_loads_strictly_and_halves(parts, tmp_path):
    model, files = parts
    out = tmp_path / 'out' / 'default.pth'
    tool = _tool()
    assert tool.main([
        '--detector', files['detector'], '--reconstructor',
        files['reconstructor'], '--refiner', files['refiner'], '--config',
        DEFAULT_CONFIG, '--out',
        str(out)
    ]) == 0
    ckpt = torch.load(out, map_location='cpu', weights_only=True)
    state = ckpt['state_dict']
    assert set(state) == set(model.state_dict())
    ref = model.state_dict()
    for k, v in state.items():
        if v.is_floating_point():
            assert v.dtype == torch.float16
            torch.testing.assert_close(
                v.float(), ref[k].float(), rtol=1e-3, atol=1e-3)
        else:
            assert torch.equal(v, ref[k])
    assert os.listdir(out.parent) == ['default.pth']  # no temp file left


def test_mismatch_and_missing_write_nothing(parts, tmp_path):
    model, files = parts
    tool = _tool()
    out = tmp_path / 'default.pth'
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        tool.main([
            '--detector', str(tmp_path / 'nope.pth'), '--reconstructor',
            files['reconstructor'], '--config', DEFAULT_CONFIG, '--out',
            str(out)
        ])
    # without the refiner the refiner's keys are missing: refused
    with pytest.raises(RuntimeError, match='missing'):
        tool.main([
            '--detector', files['detector'], '--reconstructor',
            files['reconstructor'], '--config', DEFAULT_CONFIG, '--out',
            str(out)
        ])
    assert not any(tmp_path.iterdir())


def test_embedded_default_demo_runs(tmp_path):
    """The README's first command in miniature: the demo with no input
    arguments on the shipped config, checkpoint and sample image."""
    # shipped in the repository: its absence is a failure, not a skip
    assert osp.isfile(DEFAULT_CKPT), f'{DEFAULT_CKPT} is missing'
    size = osp.getsize(DEFAULT_CKPT) / 2**20
    assert size <= 20, f'embedded checkpoints are {size:.1f} MB'
    spec = importlib.util.spec_from_file_location(
        'image_demo', osp.join(REPO, 'demo/image_demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.main(['--out-dir', str(tmp_path)]) == 0
    names = sorted(os.listdir(tmp_path))
    stem = 'sample_two_hands'
    assert f'{stem}_overlay.jpg' in names and f'{stem}_side.jpg' in names
    with open(tmp_path / f'{stem}.json') as f:
        result = json.load(f)
    from mmhand2p.apis import validate_result
    validate_result(result)
    meshes = [n for n in names if n.endswith('.obj')]
    assert len(meshes) == len(result['hands'])

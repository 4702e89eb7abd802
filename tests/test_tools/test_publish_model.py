# Copyright (c) mmhand2p contributors. All rights reserved.
"""tools/model_converters/publish_model.py on a tiny mmengine checkpoint."""
import glob
import hashlib
import importlib.util
import os
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.runner import load_checkpoint, save_checkpoint

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'model_converters', 'publish_model.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location('publish_model_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(),
        nn.Linear(8 * 4 * 4, 5))


@pytest.fixture
def training_checkpoint(tmp_path):
    """A checkpoint as tools/train.py writes it: weights, meta, optimizer
    state, message hub (HistoryBuffer objects) and the EMA hook's copy."""
    torch.manual_seed(0)
    model = _net()
    model(torch.randn(4, 3, 6, 6))  # BN running stats, num_batches_tracked
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 6, 6)).sum().backward()
    optimizer.step()
    hub = MessageHub.get_instance('test_publish_model')
    hub.update_scalar('train/loss', 0.5)
    ckpt = dict(
        meta=dict(
            epoch=1,
            iter=10,
            dataset_meta=dict(classes=('right_hand', 'left_hand'))),
        state_dict=model.state_dict(),
        optimizer=optimizer.state_dict(),
        message_hub=hub.state_dict(),
        ema_state_dict=model.state_dict())
    path = str(tmp_path / 'iter_10.pth')
    save_checkpoint(ckpt, path)
    return path, model


def test_publish_fp16_loads_into_fp32_model(training_checkpoint, tmp_path,
                                            capsys):
    tool = _load_tool()
    in_file, model = training_checkpoint
    out_dir = tmp_path / 'published'
    assert tool.main([in_file, str(out_dir / 'tiny.pth'), '--fp16']) == 0
    printed = capsys.readouterr().out
    assert in_file in printed and 'float16' in printed

    files = sorted(os.listdir(out_dir))
    assert len(files) == 1, files  # no temporary file left behind
    name = files[0]
    assert name.startswith('tiny-') and name.endswith('.pth')
    final = str(out_dir / name)
    sha = hashlib.sha256(open(final, 'rb').read()).hexdigest()
    assert name == f'tiny-{sha[:8]}.pth'
    assert osp.getsize(final) < osp.getsize(in_file)

    published = torch.load(final, map_location='cpu', weights_only=True)
    assert set(published) == {'state_dict', 'meta'}
    assert published['meta']['iter'] == 10
    assert published['meta']['dataset_meta']['classes'] == ('right_hand',
                                                            'left_hand')
    sd = published['state_dict']
    assert sd['0.weight'].dtype == torch.float16
    assert sd['1.running_var'].dtype == torch.float16
    assert sd['1.num_batches_tracked'].dtype == torch.int64  # not cast

    fresh = _net()
    load_checkpoint(fresh, final, map_location='cpu', strict=True)
    original = model.state_dict()
    for key, value in fresh.state_dict().items():
        if value.is_floating_point():
            assert value.dtype == torch.float32, key
            # exactly the float16 rounding of the trained value
            expected = original[key].to(torch.float16).to(torch.float32)
            assert torch.equal(value, expected), key
            assert torch.allclose(
                value, original[key], rtol=1e-3, atol=1e-4), key
        else:
            assert torch.equal(value, original[key]), key
    x = torch.randn(2, 3, 6, 6)
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.allclose(fresh(x), model(x), rtol=1e-2, atol=1e-3)


def test_publish_fp32_keeps_values(training_checkpoint, tmp_path):
    tool = _load_tool()
    in_file, model = training_checkpoint
    final = tool.publish_checkpoint(
        in_file, str(tmp_path / 'out' / 'tiny'), verbose=False)
    assert final.endswith('.pth')  # the extension defaults to .pth
    fresh = _net()
    load_checkpoint(fresh, final, map_location='cpu', strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_missing_input_is_named_and_writes_nothing(tmp_path, capsys):
    tool = _load_tool()
    missing = str(tmp_path / 'no_such_checkpoint.pth')
    out_dir = tmp_path / 'published'
    assert tool.main([missing, str(out_dir / 'x.pth'), '--fp16']) == 1
    err = capsys.readouterr().err
    assert missing in err and 'not found' in err
    assert not out_dir.exists()
    with pytest.raises(FileNotFoundError, match='no_such_checkpoint'):
        tool.publish_checkpoint(missing, str(out_dir / 'x.pth'))
    assert not glob.glob(str(tmp_path / '**' / '*.pth'), recursive=True)

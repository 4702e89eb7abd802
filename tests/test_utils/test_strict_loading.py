# Copyright (c) mmhand2p contributors. All rights reserved.
"""The one strict part loader (utils/checkpoint.py) and the helpers of
composite models' parts (utils/config_parts.py)."""
import pytest
import torch
from mmengine.model import BaseModule

from mmhand2p.registry import MODELS
from mmhand2p.utils import register_all_modules
from mmhand2p.utils.checkpoint import (CheckpointError, load_state_dict_strict,
                                       strip_prefix)
from mmhand2p.utils.config_parts import (find_config, load_part,
                                         merge_part_checkpoints, part_config)
from mmhand2p.utils.config_parts import test_transform as first_test_transform


class _Net(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(3, 2)
        self.b = torch.nn.Linear(2, 1)


@MODELS.register_module(force=True)
class _InitNet(BaseModule):

    def __init__(self, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.a = torch.nn.Linear(3, 2)
        self.b = torch.nn.Linear(2, 1)


def _save(tmp_path, state, name='w.pth'):
    path = str(tmp_path / name)
    torch.save(dict(state_dict=state), path)
    return path


def test_strict_loader_names_missing_keys_and_shapes(tmp_path):
    src = _Net()
    state = src.state_dict()
    net = _Net()
    extra = dict(state, unused=torch.zeros(1))
    assert load_state_dict_strict(net, extra, 'x.pth', 'part') == ['unused']
    assert torch.equal(net.a.weight, src.a.weight)
    partial = {k: v for k, v in state.items() if not k.startswith('b.')}
    with pytest.raises(CheckpointError, match=r"lacks 2 .*'b\.weight'"):
        load_state_dict_strict(_Net(), partial, 'x.pth', 'part')
    load_state_dict_strict(_Net(), partial, 'x.pth', 'part', ('b.', ))
    wrong = dict(state, **{'a.weight': torch.zeros(4, 3)})
    with pytest.raises(CheckpointError, match='does not match the part'):
        load_state_dict_strict(_Net(), wrong, 'x.pth', 'part')
    assert strip_prefix({'p.x': 1, 'q.y': 2}, 'p.') == {'x': 1}
    assert strip_prefix({'x': 1}, 'p.') == {'x': 1}


def test_strict_pretrained_initializer(tmp_path):
    """init_cfg=dict(type='StrictPretrained') loads like mmengine's
    Pretrained but refuses a checkpoint that lacks a weight (named)."""
    register_all_modules()
    src = _Net()
    whole = _save(tmp_path, {'backbone.' + k: v
                             for k, v in src.state_dict().items()})
    net = MODELS.build(
        dict(
            type='_InitNet',
            init_cfg=dict(
                type='StrictPretrained', checkpoint=whole,
                prefix='backbone.')))
    net.init_weights()
    assert torch.equal(net.b.bias, src.b.bias)
    partial = _save(tmp_path, {
        k: v
        for k, v in src.state_dict().items() if k != 'b.bias'
    }, 'partial.pth')
    net = MODELS.build(
        dict(
            type='_InitNet',
            init_cfg=dict(type='StrictPretrained', checkpoint=partial)))
    with pytest.raises(CheckpointError, match=r"\['b\.bias'\]"):
        net.init_weights()
    # mmengine's own Pretrained would have loaded it silently
    net = MODELS.build(
        dict(
            type='_InitNet',
            init_cfg=dict(type='Pretrained', checkpoint=partial)))
    net.init_weights()
    with pytest.raises(CheckpointError, match="prefix 'head.'"):
        MODELS.build(
            dict(
                type='_InitNet',
                init_cfg=dict(
                    type='StrictPretrained', checkpoint=whole,
                    prefix='head.'))).init_weights()


def test_part_helpers(tmp_path):
    src = _Net()
    own = _save(tmp_path, src.state_dict(), 'own.pth')
    combined = _save(tmp_path, {
        'reconstructor.' + k: v
        for k, v in src.state_dict().items()
    }, 'combined.pth')
    for path in (own, combined):
        net = _Net()
        load_part(net, path, 'reconstructor', 'reconstructor.')
        assert torch.equal(net.b.weight, src.b.weight) and net._is_init
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_part(_Net(), str(tmp_path / 'no.pth'), 'detector', 'detector.')
    with pytest.raises(CheckpointError,
                       match='DetectThenReconstruct: the detector'):
        load_part(torch.nn.Linear(5, 5), own, 'detector', 'detector.')
    out = merge_part_checkpoints(own, combined, str(tmp_path / 'm.pth'))
    merged = torch.load(out, weights_only=True)['state_dict']
    assert sorted(merged) == sorted(
        [f'{p}.{k}' for p in ('detector', 'reconstructor')
         for k in src.state_dict()])
    # configs: a file (relative to the repository root) or a model dict
    path = find_config('configs/_base_/default_runtime.py', 'runtime')
    assert path.endswith('default_runtime.py')
    with pytest.raises(FileNotFoundError, match='not_there.py'):
        find_config('configs/not_there.py', 'detector')
    cfg, full = part_config(dict(type='X', a=dict(b=1)), 'detector')
    assert cfg.a.b == 1 and full is None
    with pytest.raises(TypeError, match='model dict or a config file'):
        part_config(3, 'detector')
    from mmengine.config import Config
    full = Config(
        dict(
            test_dataloader=dict(
                dataset=dict(pipeline=[
                    dict(type='Load'),
                    dict(type='mmdet.Pad', size=(9, 9))
                ]))))
    assert first_test_transform(full, 'Pad')['size'] == (9, 9)
    assert first_test_transform(full, 'Resize') is None
    assert first_test_transform(None, 'Pad') is None

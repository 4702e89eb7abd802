# Copyright (c) mmhand2p contributors. All rights reserved.
"""Checkpoints: strict by default, bad files named in a CheckpointError, the
demo's exit code 2 with one line and no traceback."""
import json
import os.path as osp
import pickle

import pytest
import torch
from _apis_helpers import REPO, load_module
from mmengine.config import Config

from mmhand2p.apis import Hand2PInferencer, init_model
from mmhand2p.apis.inference import load_weights
from mmhand2p.utils.checkpoint import CheckpointError, describe_key_mismatch


class NotAWeight:
    """A class no checkpoint allow-lists (pickled by reference)."""


@pytest.fixture(scope='module')
def demo():
    return load_module('demo/image_demo.py', 'image_demo')


@pytest.fixture(scope='module')
def bad_files(tiny_model_files, tmp_path_factory):
    """name -> path of files that are not checkpoints of the tiny model."""
    _, checkpoint = tiny_model_files
    root = tmp_path_factory.mktemp('bad_checkpoints')
    files = {}
    files['empty'] = root / 'empty.pth'
    files['empty'].write_bytes(b'')
    data = open(checkpoint, 'rb').read()
    files['truncated'] = root / 'truncated.pth'
    files['truncated'].write_bytes(data[:len(data) // 2])
    files['json'] = root / 'config.json'
    files['json'].write_text(json.dumps({'model': 'not weights'}))
    files['list_pickle'] = root / 'list.pth'
    torch.save([1, 2, 3], files['list_pickle'])
    files['object_pickle'] = root / 'object.pkl'
    with open(files['object_pickle'], 'wb') as f:
        pickle.dump({'state_dict': NotAWeight()}, f, protocol=2)
    files['pickle_protocol_5'] = root / 'plain.pkl'
    with open(files['pickle_protocol_5'], 'wb') as f:
        pickle.dump({'weights': [1.0, 2.0]}, f, protocol=5)
    files['dict_of_strings'] = root / 'strings.pth'
    torch.save({'state_dict': {'a': 'b'}}, files['dict_of_strings'])
    # a checkpoint of another model: a plain ResNet-18's weights
    files['other_model'] = root / 'resnet.pth'
    from mmpose.models.backbones import ResNet
    torch.save({'state_dict': ResNet(depth=18).state_dict()},
               files['other_model'])
    return {k: str(v) for k, v in files.items()}


def _wider_model_checkpoint(tiny_model_files, root):
    """A combined checkpoint of another DetectThenReconstruct (a wider
    head): same keys mostly, other shapes, extra layers."""
    from mmhand2p.registry import MODELS
    config, _ = tiny_model_files
    cfg = Config.fromfile(config)
    cfg.model.reconstructor.head.ffn_dims = 96
    cfg.model.reconstructor.head.num_layers = 2
    model = MODELS.build(cfg.model)
    path = str(root / 'wider.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    return path


def test_init_model_is_strict_and_names_bad_files(tiny_model_files, bad_files):
    config, checkpoint = tiny_model_files
    init_model(config, checkpoint)  # the right one loads strictly
    reasons = {
        'empty': 'is empty (0 bytes)',
        'truncated': 'cannot be read as a PyTorch checkpoint',
        'json': 'cannot be read as a PyTorch checkpoint',
        'list_pickle': 'holds a list, not a checkpoint',
        'object_pickle': 'Unsupported global',
        # torch's weights-only unpickler refuses protocol 5 opcodes now;
        # were it to read them, the dict would be refused as not weights
        'pickle_protocol_5': ('Unsupported operand', 'not named tensors'),
        'dict_of_strings': 'are not named tensors',
        'other_model': 'does not fit the DetectThenReconstruct',
    }
    for name, path in bad_files.items():
        with pytest.raises(CheckpointError) as info:
            init_model(config, path)
        message = str(info.value)
        assert repr(path) in message, name
        wanted = reasons[name]
        wanted = (wanted, ) if isinstance(wanted, str) else wanted
        assert any(w in message for w in wanted), (name, message)
        # a ValueError (and a RuntimeError, as mmengine's strict loading)
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, RuntimeError)
    # another model: nothing matches; the keys are listed with counts
    n = len(torch.load(bad_files['other_model'])['state_dict'])
    with pytest.raises(CheckpointError) as info:
        init_model(config, bad_files['other_model'])
    message = str(info.value)
    assert f'0 of its {n} weights match' in message
    assert 'missing key(s): [' in message and '(+' in message
    assert f'{n} unexpected key(s)' in message
    # not even strict=False loads a file that matches nothing
    with pytest.raises(CheckpointError, match=f'0 of its {n} weights match'):
        init_model(config, bad_files['other_model'], strict=False)


def test_combined_checkpoint_of_another_model(tiny_model_files, tmp_path):
    config, checkpoint = tiny_model_files
    wider = _wider_model_checkpoint(tiny_model_files, tmp_path)
    for strict in (True, False):  # other shapes fail either way
        with pytest.raises(CheckpointError, match='weights of other shapes'):
            init_model(config, wider, strict=strict)
    # the same as a part checkpoint of DetectThenReconstruct
    cfg = Config.fromfile(config)
    cfg.model.reconstructor_checkpoint = wider
    with pytest.raises(
            CheckpointError, match='does not match the '
            'reconstructor config'):
        init_model(cfg)
    cfg.model.reconstructor_checkpoint = None
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    cfg.model.detector_checkpoint = str(empty)
    with pytest.raises(CheckpointError, match='detector checkpoint .*empty'):
        init_model(cfg)


def test_strict_false_loads_the_matching_weights(tiny_model_files, tmp_path):
    config, checkpoint = tiny_model_files
    saved = torch.load(checkpoint, weights_only=True)['state_dict']
    partial = dict(saved)
    dropped = [k for k in partial if k.startswith('reconstructor.head.')]
    for k in dropped:
        del partial[k]
    partial['not.a.weight'] = torch.zeros(2)
    path = str(tmp_path / 'partial.pth')
    torch.save({'state_dict': partial}, path)
    with pytest.raises(CheckpointError) as info:
        init_model(config, path)
    assert f'{len(dropped)} missing key(s)' in str(info.value)
    assert "1 unexpected key(s): ['not.a.weight']" in str(info.value)
    model = init_model(config, path, strict=False)
    state = model.state_dict()
    assert all(
        torch.equal(state[k], partial[k]) for k in partial
        if k != 'not.a.weight')
    # the inferencer passes strict through, for configs and built models
    with pytest.raises(CheckpointError, match='missing'):
        Hand2PInferencer(config, path, show_progress=False)
    Hand2PInferencer(config, path, show_progress=False, strict=False)
    with pytest.raises(CheckpointError, match='missing'):
        Hand2PInferencer(model, path, show_progress=False)
    # load_weights returns the checkpoint, and restores every weight
    ckpt = load_weights(model, checkpoint)
    assert set(ckpt) == {'state_dict', 'meta'}
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved.items())


def test_describe_key_mismatch():
    text = describe_key_mismatch([f'm{i}' for i in range(12)], ['u'])
    assert text == ("12 missing key(s): ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', "
                    "'m6', 'm7', 'm8', 'm9'] (+2 more); 1 unexpected key(s):"
                    " ['u']")


def test_shipped_default_loads_strictly(demo):
    model = init_model(
        osp.join(REPO, demo.DEFAULT_CONFIG),
        osp.join(REPO, demo.DEFAULT_CHECKPOINT),
        strict=True)
    saved = torch.load(
        osp.join(REPO, demo.DEFAULT_CHECKPOINT),
        weights_only=True)['state_dict']
    assert set(saved) == set(model.state_dict())


def test_demo_bad_checkpoint_exit_code_2(demo, tiny_model_files, bad_files,
                                         samples, tmp_path, capsys):
    config, _ = tiny_model_files
    for name, path in bad_files.items():
        code = demo.main([
            samples['two']['path'], '--config', config, '--checkpoint', path,
            '--out-dir',
            str(tmp_path / 'out')
        ])
        err = capsys.readouterr().err
        assert code == demo.EXIT_SETUP, name
        lines = [line for line in err.splitlines() if line.startswith('error')]
        assert len(lines) == 1 and lines[0].startswith(
            'error: cannot load the checkpoint: '), (name, err)
        assert path in lines[0] and 'Traceback' not in err
        assert not osp.exists(tmp_path / 'out')  # nothing was processed

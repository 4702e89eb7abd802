# Copyright (c) mmhand2p contributors. All rights reserved.
import importlib.util

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmhand2p.registry import MODELS


class _Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=4, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))


def test_torchscript_teacher_matches_module(tmp_path):
    torch.manual_seed(0)
    net = _Net().eval()
    path = str(tmp_path / 'teacher.pt')
    torch.jit.save(torch.jit.script(net), path)
    teacher = MODELS.build(
        dict(type='ExportedTeacher', prior='depth', checkpoint=path,
             input_size=(32, 32), out_channels=6, mean=(10, 20, 30),
             std=(2, 4, 8), input_mode='stretch'))  # the old behaviour
    rgb = torch.rand(2, 3, 48, 40) * 255
    x = F.interpolate(rgb, size=(32, 32), mode='bilinear',
                      align_corners=False)
    x = (x - torch.tensor([10., 20, 30]).view(1, 3, 1, 1)) / torch.tensor(
        [2., 4, 8]).view(1, 3, 1, 1)
    assert torch.allclose(teacher(rgb), net(x), atol=1e-5)
    teacher.train()
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())


def test_torch_export_teacher(tmp_path):
    net = _Net().eval()
    path = str(tmp_path / 'teacher.pt2')
    torch.export.save(torch.export.export(net, (torch.zeros(1, 3, 32, 32), )),
                      path)
    teacher = MODELS.build(
        dict(type='ExportedTeacher', prior='keypoint', checkpoint=path,
             input_size=(32, 32), out_channels=6))
    assert teacher(torch.zeros(1, 3, 32, 32)).shape == (1, 6, 8, 8)


def test_synthetic_world_teacher_shapes_and_checkpoint(tmp_path):
    t = MODELS.build(dict(type='SyntheticWorldTeacher', prior='segmentation'))
    assert t(torch.zeros(2, 3, 256, 256)).shape == (2, 128, 8, 8)
    # a checkpoint of the trainer (keys teacher.net.*) loads
    torch.save({'state_dict': {f'teacher.{k}': v * 0 + 1
                               for k, v in t.state_dict().items()}},
               tmp_path / 'seg.pth')
    t2 = MODELS.build(dict(type='SyntheticWorldTeacher', prior='segmentation',
                           checkpoint=str(tmp_path / 'seg.pth')))
    w = t2.net.encoder[0][0].weight
    assert torch.equal(w, torch.ones_like(w))


def test_sapiens_teacher_errors(tmp_path):
    with pytest.raises(ValueError, match='0.3b'):
        MODELS.build(dict(type='SapiensTeacher', prior='depth', arch='5b'))
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        MODELS.build(dict(type='SapiensTeacher', prior='depth',
                          checkpoint=str(tmp_path / 'nope.pth')))
    if importlib.util.find_spec('mmpretrain') is None:
        with pytest.raises(ImportError, match='mmpretrain'):
            MODELS.build(dict(type='SapiensTeacher', prior='depth'))

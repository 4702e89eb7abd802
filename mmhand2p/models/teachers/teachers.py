# Copyright (c) mmhand2p contributors. All rights reserved.
"""Teacher implementations: Sapiens (mmpretrain ViT), TorchScript /
``torch.export`` files, and small synthetic-world teachers."""
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from mmhand2p.registry import MODELS
from .base import BasePriorTeacher, check_teacher_checkpoint

__all__ = [
    'SapiensTeacher', 'ExportedTeacher', 'SyntheticWorldTeacher',
    'SAPIENS_ARCHS'
]

#: Sapiens ViT sizes (Khirodkar et al., ECCV 2024; facebookresearch/sapiens
#: configs): embed dims, layers, heads, feed-forward dims. Patch 16, input
#: 1024 x 768, no class token, feature-map output.
SAPIENS_ARCHS = {
    '0.3b': dict(embed_dims=1024, num_layers=24, num_heads=16,
                 feedforward_channels=4096),
    '0.6b': dict(embed_dims=1280, num_layers=32, num_heads=16,
                 feedforward_channels=5120),
    '1b': dict(embed_dims=1536, num_layers=40, num_heads=24,
               feedforward_channels=6144),
    '2b': dict(embed_dims=1920, num_layers=48, num_heads=32,
               feedforward_channels=7680),
}


@MODELS.register_module()
class SapiensTeacher(BasePriorTeacher):
    """A Sapiens backbone (keypoint / segmentation / depth checkpoint) as a
    frozen prior teacher, built with ``mmpretrain.VisionTransformer``.

    Args:
        prior (str): which prior this checkpoint provides.
        arch (str): ``'0.3b' | '0.6b' | '1b' | '2b'``.
        checkpoint (str): local path of the Sapiens task checkpoint; keys
            under ``backbone.`` are loaded (the task head is not needed).
        input_size (Sequence[int]): (H, W). Defaults to (1024, 768).
        mean / std: Sapiens' RGB normalisation on the 0-255 scale.
        input_mode (str): ``'letterbox'`` (default: a square crop becomes
            768 x 768 pixels padded to 1024 x 768, and the 64 x 48 map's
            rows 8 to 56 come back as a 48 x 48 map) or ``'stretch'`` (the
            old behaviour); see :class:`BasePriorTeacher`.
    """

    def __init__(self,
                 prior: str,
                 arch: str = '0.3b',
                 checkpoint: Optional[str] = None,
                 input_size: Sequence[int] = (1024, 768),
                 mean: Sequence[float] = (123.5, 116.5, 103.5),
                 std: Sequence[float] = (58.5, 57.0, 57.5),
                 input_mode: str = 'letterbox') -> None:
        if arch not in SAPIENS_ARCHS:
            raise ValueError(f'Sapiens arch must be one of '
                             f'{sorted(SAPIENS_ARCHS)}, got {arch!r}')
        check_teacher_checkpoint(checkpoint, f'SapiensTeacher({prior})')
        super().__init__(prior, input_size, mean, std,
                         SAPIENS_ARCHS[arch]['embed_dims'], input_mode)
        try:
            from mmpretrain.models import VisionTransformer
        except ImportError as e:
            raise ImportError(
                'SapiensTeacher needs mmpretrain (pip install -r '
                'requirements/optional.txt; it needs torchvision, see '
                'docs/get_started.md)') from e
        spec = dict(SAPIENS_ARCHS[arch])
        self.model = VisionTransformer(
            arch=dict(spec),
            img_size=self.input_size,
            patch_size=16,
            qkv_bias=True,
            final_norm=True,
            drop_path_rate=0.0,
            with_cls_token=False,
            out_type='featmap',
            patch_cfg=dict(padding=2))
        if checkpoint is not None:
            from mmengine.runner import load_checkpoint
            load_checkpoint(
                self.model,
                checkpoint,
                map_location='cpu',
                revise_keys=[(r'^backbone\.', '')])
        self.freeze()

    def extract(self, images: Tensor) -> Tensor:
        out = self.model(images)
        return out[-1] if isinstance(out, (tuple, list)) else out


@MODELS.register_module()
class ExportedTeacher(BasePriorTeacher):
    """A teacher saved as TorchScript (``.pt``, ``torch.jit.save``) or as a
    ``torch.export`` program (``.pt2``, e.g. Sapiens-lite's files).

    The file's module maps a normalised ``(B, 3, H, W)`` image to a feature
    map or to a tuple whose last element is one.

    Args:
        prior (str): which prior it provides.
        checkpoint (str): the ``.pt`` / ``.pt2`` file.
        input_size (Sequence[int]): (H, W) the module expects.
        out_channels (int): its feature channels.
        mean / std: RGB normalisation on the 0-255 scale.
        input_mode (str): ``'letterbox'`` (default) or ``'stretch'`` (the
            old behaviour); see :class:`BasePriorTeacher`.
    """

    def __init__(self,
                 prior: str,
                 checkpoint: str,
                 input_size: Sequence[int],
                 out_channels: int,
                 mean: Sequence[float] = (123.5, 116.5, 103.5),
                 std: Sequence[float] = (58.5, 57.0, 57.5),
                 input_mode: str = 'letterbox') -> None:
        check_teacher_checkpoint(checkpoint, f'ExportedTeacher({prior})')
        super().__init__(prior, input_size, mean, std, out_channels,
                         input_mode)
        self.checkpoint = checkpoint
        if str(checkpoint).endswith('.pt2'):
            program = torch.export.load(checkpoint)
            self.model = program.module()
        else:
            self.model = torch.jit.load(checkpoint, map_location='cpu')
        self.freeze()

    def train(self, mode: bool = True) -> 'ExportedTeacher':
        # torch.export modules refuse .train(); they are inference graphs
        self.training = False
        for child in self.children():
            if child is not self.model:
                child.train(False)
        return self

    def extract(self, images: Tensor) -> Tensor:
        out = self.model(images)
        return out[-1] if isinstance(out, (tuple, list)) else out


class _ConvBlock(nn.Sequential):

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True))


class PriorNet(nn.Module):
    """A small encoder-decoder for one dense prior (the synthetic world's
    stand-in for a Sapiens task model).

    The encoder (stride 32) gives the teacher features; the decoder predicts
    the prior at stride 4 so the net can be trained on the synthetic set's
    keypoint heatmaps, segmentation or depth.

    Args:
        out_channels (int): prediction channels (42 heatmaps, 3 classes or
            1 depth).
        widths (Sequence[int]): encoder widths, 5 stages.
    """

    def __init__(self,
                 out_channels: int,
                 widths: Sequence[int] = (24, 32, 64, 96, 128)) -> None:
        super().__init__()
        stages, cin = [], 3
        for w in widths:
            stages.append(_ConvBlock(cin, w, 2))
            cin = w
        self.encoder = nn.ModuleList(stages)
        self.feat_channels = widths[-1]
        self.decoder = nn.Sequential(
            nn.Conv2d(widths[-1] + widths[1], 64, 3, 1, 1),
            nn.ReLU(inplace=True), nn.Conv2d(64, out_channels, 1))

    def forward(self, x: Tensor):
        """Returns (stride-32 features, stride-4 prediction)."""
        feats = []
        for stage in self.encoder:
            x = stage(x)
            feats.append(x)
        up = nn.functional.interpolate(
            feats[-1], size=feats[1].shape[-2:], mode='bilinear',
            align_corners=False)
        pred = self.decoder(torch.cat([up, feats[1]], dim=1))
        return feats[-1], pred


@MODELS.register_module()
class SyntheticWorldTeacher(BasePriorTeacher):
    """A frozen :class:`PriorNet` trained on the synthetic set (see
    ``configs/teachers/``): the miniature of a Sapiens task model.

    Args:
        prior (str): which prior.
        checkpoint (str, optional): a checkpoint of ``PriorTeacherTrainer``
            (keys ``net.*``); None keeps the random init (tests only).
        input_size (Sequence[int]): (H, W). Defaults to (256, 256).
        widths (Sequence[int]): encoder widths, must match the checkpoint.
        input_mode (str): ``'letterbox'`` (default) or ``'stretch'``; the
            shipped configs give it the crop at its own size
            (``input_size`` = the crop's), where both are the identity.
    """

    OUT_CHANNELS = dict(keypoint=42, segmentation=3, depth=1)

    def __init__(self,
                 prior: str,
                 checkpoint: Optional[str] = None,
                 input_size: Sequence[int] = (256, 256),
                 widths: Sequence[int] = (24, 32, 64, 96, 128),
                 mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375),
                 input_mode: str = 'letterbox') -> None:
        check_teacher_checkpoint(checkpoint, f'SyntheticWorldTeacher({prior})')
        super().__init__(prior, input_size, mean, std, widths[-1],
                         input_mode)
        self.net = PriorNet(self.OUT_CHANNELS[prior], widths)
        if checkpoint is not None:
            from mmengine.runner import load_checkpoint
            load_checkpoint(
                self,
                checkpoint,
                map_location='cpu',
                revise_keys=[(r'^teacher\.', '')])
        self.freeze()

    def extract(self, images: Tensor) -> Tensor:
        return self.net(images)[0]

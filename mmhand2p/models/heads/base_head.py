# Copyright (c) mmhand2p contributors. All rights reserved.
"""The base of every MANO-regressing two-hand head."""
from abc import ABCMeta, abstractmethod
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from mmhand2p.codecs import TwoHandCodec, build_codec
from mmhand2p.registry import MODELS
from mmhand2p.structures import stack_field
from mmhand2p.utils.typing import ConfigType, OptConfigType, SampleList

__all__ = ['BaseTwoHandHead']


class BaseTwoHandHead(BaseModule, metaclass=ABCMeta):
    """Base of the heads that regress both hands' MANO parameters.

    A subclass writes only what is its own: its network (:meth:`forward`),
    its losses (:meth:`loss`) and how its raw outputs become per-hand MANO
    parameters and root positions (:meth:`predict`). The path every such
    head shares lives here:

    * :meth:`decode_hands`: network-space pose, betas and root positions ->
      the left hand un-mirrored through the codec (``left_as_right``) ->
      ``MANOLayer`` -> meshes and joints placed at the roots (camera frame);
    * :meth:`pack_instances`: the decoded hands -> one ``InstanceData`` per
      sample with the ``HAND_FIELDS`` that the refiner, the metrics, the
      visualizer and the inferencer read (``joints_3d``, ``vertices``,
      ``mano_pose``, ``mano_betas``, ``mano_transl``, ``joints_2d``,
      ``scores``);
    * :meth:`input_meta` (crop intrinsics and input size from the
      metainfo), :meth:`check_targets` (the pipeline's codec conventions
      against the head's) and :meth:`gt` (a ``gt_hands`` field stacked over
      the batch).

    The conventions (left-as-right, 2.5D normalisation, camera model, root
    joint) come from ``decoder``, the same ``codec`` config variable that
    the pipeline's ``GenerateTwoHandTargets(encoder=codec)`` receives.

    Args:
        body_model (dict): the ``MANOLayer`` config (model path...).
        decoder (dict | TwoHandCodec, optional): the codec; None is
            ``TwoHandCodec()`` (no left-as-right mirroring).
        init_cfg (dict, optional): mmengine init config.
    """

    #: the smallest config (repository-relative path) whose model holds this
    #: head; ``tests/test_contract.py`` builds it, trains one step and
    #: checks what every consumer of the predictions reads. A registered
    #: subclass must set it.
    smallest_config: Optional[str] = None

    def __init__(self,
                 body_model: ConfigType = dict(type='MANOLayer'),
                 decoder: Optional[ConfigType] = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.codec = TwoHandCodec() if decoder is None else build_codec(
            decoder)
        self.body_model = MODELS.build(body_model)
        self.num_betas = self.body_model.num_betas

    # the codec's conventions, read-only ---------------------------------
    @property
    def left_as_right(self) -> bool:
        return self.codec.left_as_right

    @property
    def depth_range(self) -> float:
        return self.codec.depth_range

    @property
    def crop_extent(self) -> float:
        return self.codec.crop_extent

    @property
    def root_index(self) -> int:
        return self.codec.root_index

    # the three verbs ----------------------------------------------------
    @abstractmethod
    def forward(self, feats) -> Dict[str, Tensor]:
        """Raw predictions (tensors only) from the neck's features."""

    @abstractmethod
    def loss(self,
             feats,
             data_samples: SampleList,
             train_cfg: OptConfigType = None) -> Dict[str, Tensor]:
        """A dict of named losses against the packed targets."""

    @abstractmethod
    def predict(self,
                feats,
                data_samples: SampleList,
                test_cfg: OptConfigType = None) -> List[InstanceData]:
        """Decoded hands: one ``InstanceData`` (2 instances: right, left)
        per sample, e.g. ``self.pack_instances(self.decode_hands(...), k)``.
        """

    # the shared path ----------------------------------------------------
    def decode_hands(self, pose: Tensor, betas: Tensor,
                     root: Tensor) -> Dict[str, Tensor]:
        """Camera-frame hands from MANO parameters and root positions.

        Args:
            pose (Tensor): ``(B, 2, 16, 3)`` axis-angle in the network's
                space (hand 1 mirrored when the codec's ``left_as_right``).
            betas (Tensor): ``(B, 2, num_betas)``.
            root (Tensor): ``(B, 2, 3)`` camera-frame position of each
                hand's root joint (the codec's ``root_index``), metres.

        Returns:
            dict: ``pose`` ``(B, 2, 16, 3)`` in each hand's own model space
            (left un-mirrored), ``betas``, ``transl`` ``(B, 2, 3)`` (MANO
            translation reproducing the mesh), ``vertices``
            ``(B, 2, V, 3)``, ``joints`` ``(B, 2, 21, 3)``, ``root``; camera
            frame, metres; hand axis 0 = right, 1 = left.
        """
        pose = self.codec.from_network_pose(pose)
        out = self.body_model(pose=pose, betas=betas)
        r = self.codec.root_index
        local_root = out.joints[:, :, r:r + 1]
        shift = root[:, :, None] - local_root
        return dict(
            pose=pose,
            betas=betas,
            transl=shift[:, :, 0],
            vertices=out.vertices + shift,
            joints=out.joints + shift,
            root=root)

    def pack_instances(self,
                       dec: Dict[str, Tensor],
                       intrinsics: Tensor,
                       scores: Optional[Tensor] = None) -> List[InstanceData]:
        """One ``InstanceData`` (2 instances) per sample from
        :meth:`decode_hands`' output.

        Fields (``HAND_FIELDS``): ``joints_3d`` (2, 21, 3), ``vertices``
        (2, V, 3), ``mano_pose`` (2, 16, 3) (each hand in its own model's
        space), ``mano_betas``, ``mano_transl``, ``joints_2d`` (2, 21, 2)
        (network-input pixels: the joints projected with ``intrinsics``),
        ``scores`` (2,) (ones unless given), camera frame of the input crop,
        metres; detached.

        Args:
            dec (dict): from :meth:`decode_hands`.
            intrinsics (Tensor): ``(B, 3, 3)`` of the network input.
            scores (Tensor, optional): ``(B, 2)``.
        """
        j = dec['joints']
        uv = self.codec.project(j, intrinsics)
        results = []
        for i in range(j.shape[0]):
            inst = InstanceData()
            inst.joints_3d = dec['joints'][i].detach()
            inst.vertices = dec['vertices'][i].detach()
            inst.mano_pose = dec['pose'][i].detach()
            inst.mano_betas = dec['betas'][i].detach()
            inst.mano_transl = dec['transl'][i].detach()
            inst.joints_2d = uv[i].detach()
            inst.scores = (
                torch.ones(2, device=j.device)
                if scores is None else scores[i].detach())
            results.append(inst)
        return results

    def input_meta(self, data_samples: SampleList,
                   device) -> Tuple[Tensor, Tuple[int, int]]:
        """``(B, 3, 3)`` float32 intrinsics of the network input (metainfo
        ``cam_intrinsics``) on ``device`` and its ``(w, h)``
        (``input_size``)."""
        k = torch.stack([
            torch.as_tensor(ds.metainfo['cam_intrinsics'], dtype=torch.float32)
            for ds in data_samples
        ]).to(device)
        size = data_samples[0].metainfo.get('input_size')
        if size is None:
            raise KeyError(f'{type(self).__name__} needs '
                           'metainfo["input_size"] (set by TwoHandCropAffine '
                           '/ PackTwoHandInputs)')
        return k, tuple(int(s) for s in size)

    def check_targets(self, data_samples: SampleList) -> None:
        """Refuse targets made with other conventions than the head's.

        Compares metainfo ``flip_left`` with the codec's ``left_as_right``
        and, where the target generator recorded them, its
        ``target_conventions`` (:meth:`TwoHandCodec.conventions`).

        Raises:
            ValueError: naming the setting and both values.
        """
        meta = data_samples[0].metainfo
        name = type(self).__name__
        flip = meta.get('flip_left')
        if flip is not None and bool(flip) != self.left_as_right:
            raise ValueError(
                f'{name}(left_as_right={self.left_as_right}) but the '
                f'pipeline made targets with left_as_right={bool(flip)}: '
                'give the head and GenerateTwoHandTargets the same codec '
                '(decoder=codec, encoder=codec)')
        theirs = meta.get('target_conventions')
        if not theirs:
            return
        ours = self.codec.conventions()
        for key, value in theirs.items():
            if key in ours and ours[key] != value:
                raise ValueError(
                    f'{name}: the pipeline made targets with {key}={value!r} '
                    f'but the head decodes with {key}={ours[key]!r}: give '
                    'the head and GenerateTwoHandTargets the same codec '
                    '(decoder=codec, encoder=codec)')

    @staticmethod
    def gt(data_samples: SampleList,
           name: str,
           device=None) -> Optional[Tensor]:
        """``gt_hands.<name>`` of every sample stacked to ``(B, 2, ...)``
        float on ``device``; None if a sample lacks it."""
        value = stack_field(data_samples, name)
        if value is None:
            return None
        return (value if device is None else value.to(device)).float()

    @staticmethod
    def _features(feats) -> Tensor:
        """The last feature map of a tuple (or the map itself)."""
        if isinstance(feats, (tuple, list)):
            return feats[-1]
        return feats

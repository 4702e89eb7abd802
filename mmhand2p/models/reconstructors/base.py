# Copyright (c) mmhand2p contributors. All rights reserved.
"""The contract of every two-hand reconstructor (what the Runner, the
metrics, ``DetectThenReconstruct`` and the inferencer may rely on)."""
from abc import ABCMeta, abstractmethod
from typing import Dict, List, Optional, Sequence, Union

from mmengine.model import BaseModel
from torch import Tensor

from mmhand2p.utils.typing import OptSampleList, SampleList

__all__ = ['BaseTwoHandReconstructor', 'RefineMask', 'refine_mask']

#: ``refine`` argument of :meth:`BaseTwoHandReconstructor.predict`
RefineMask = Union[None, bool, Sequence[bool]]


def refine_mask(refine: RefineMask, num: int,
                enabled: bool) -> Optional[List[bool]]:
    """The per-sample refine flags of a ``predict`` call.

    Args:
        refine: None (every sample, when ``enabled``), a bool for the whole
            batch, or one bool per sample.
        num (int): batch size.
        enabled (bool): whether the model refines by its config (it has a
            refiner and ``test_cfg.refine`` is not False); a True entry
            cannot switch on a refiner that the config switched off.

    Returns:
        list[bool] | None: ``num`` flags, or None when nothing may be
        refined (no refiner, switched off, or ``refine=False``).
    """
    if not enabled or refine is False:
        return None
    if refine is None or refine is True:
        return [True] * num
    flags = [bool(r) for r in refine]
    if len(flags) != num:
        raise ValueError(f'predict: refine has {len(flags)} entries for '
                         f'{num} samples')
    return flags


class BaseTwoHandReconstructor(BaseModel, metaclass=ABCMeta):
    """Base class of two-hand reconstructors: image tensors in, both hands
    out (mmengine ``BaseModel``; ``forward(inputs, data_samples, mode)`` is
    the Runner's one entry point).

    The same contract serves a top-down model on one two-hand crop
    (:class:`~mmhand2p.models.reconstructors.TopDownTwoHandReconstructor`),
    a model on per-hand crops (one sample = the crops of one pair) and a
    whole-image one-stage model (one sample = one image); what ``inputs``
    is, is up to the model and its data preprocessor.

    A subclass implements:

    * :meth:`extract_feat` ``(inputs) -> feats``: the features its head
      reads, nothing else (auxiliary outputs for training losses, such as a
      distillation neck's, are the subclass's own business inside
      :meth:`loss`; teacher features cached on disk reach a neck through
      the data samples, written by the ``LoadPriorFeatures`` transform).
    * :meth:`loss` ``(inputs, data_samples) -> dict`` of named losses.
    * :meth:`predict` ``(inputs, data_samples, refine=None) ->
      data_samples`` with ``pred_hands`` (``InstanceData`` with two
      instances, 0 right and 1 left: ``joints_3d`` (2, 21, 3) and
      ``vertices`` (2, V, 3) in the camera frame of the sample's
      ``cam_intrinsics``, metres; ``joints_2d`` (2, 21, 2) px of the
      network input; ``mano_pose`` (2, 16, 3), ``mano_betas`` (2, K),
      ``mano_transl`` (2, 3), as ``HAND_FIELDS`` documents). ``refine`` is
      the per-sample refine mask: None = the config's default (every
      sample, if the model has a refiner and ``test_cfg.refine`` is not
      False); a bool for the whole batch; a sequence, one bool per sample
      (False skips the refiner; for True entries the refiner's own gate
      still decides). Samples offered to a refiner get the
      ``pred_hands.metainfo['refined']`` flag and ``unrefined_joints_3d``
      / ``unrefined_vertices`` (their stage-1 hands). Every returned sample
      gets metainfo ``stage_times_ms`` (:mod:`mmhand2p.utils.timing`):
      ``reconstruction`` and ``refinement`` wall times of the call in ms
      (``refinement`` None when nothing could be refined).
    * :meth:`_forward` ``(inputs, data_samples) ->`` the head's raw
      tensors (``mode='tensor'``).

    :attr:`refines` tells whether ``predict`` refines by default.
    """

    #: the smallest config (repository-relative path) that builds this
    #: model; ``tests/test_contract.py`` builds it, runs ``loss`` and
    #: ``predict`` on a synthetic batch and checks what every consumer of
    #: the predictions reads. A registered subclass must set it.
    smallest_config: Optional[str] = None

    @abstractmethod
    def extract_feat(self, inputs: Tensor):
        """Features of a batch of network inputs (what the head reads)."""

    @abstractmethod
    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict:
        """Named losses of a training batch."""

    @abstractmethod
    def predict(self,
                inputs: Tensor,
                data_samples: SampleList,
                refine: RefineMask = None) -> SampleList:
        """``data_samples`` with ``pred_hands`` (see the class docstring).
        """

    @abstractmethod
    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None):
        """The head's raw outputs (``mode='tensor'``)."""

    @property
    def refines(self) -> bool:
        """Whether :meth:`predict` runs a refiner by default: the model has
        one (``self.refiner``) and ``test_cfg.refine`` is not False."""
        return (getattr(self, 'refiner', None) is not None and bool(
            (getattr(self, 'test_cfg', None) or {}).get('refine', True)))

    @property
    def batch_invariant(self) -> bool:
        """Whether :meth:`predict` must give every sample the same result
        in any batch (a refiner that asks for it, ``batch_invariant``):
        a caller that batches work for this model (e.g. a detector in front
        of it) then runs it one sample at a time too."""
        return self.refines and bool(
            getattr(self.refiner, 'batch_invariant', False))

    def hand_field_shapes(self) -> Dict[str, tuple]:
        """Per-hand shapes of the ``pred_hands`` fields this model writes
        (for empty outputs, e.g. an image without hands): by default from
        ``self.head``'s body model (``num_vertices``, ``num_betas``)."""
        head = getattr(self, 'head', None)
        body = getattr(head, 'body_model', None)
        v = int(getattr(body, 'num_vertices', 778))
        nb = int(getattr(head, 'num_betas', 10))
        return dict(
            joints_3d=(21, 3),
            vertices=(v, 3),
            joints_2d=(21, 2),
            mano_pose=(16, 3),
            mano_betas=(nb, ),
            mano_transl=(3, ))

    def forward(self,
                inputs: Tensor,
                data_samples: OptSampleList = None,
                mode: str = 'tensor') -> Union[Dict, SampleList]:
        """The Runner's entry point: ``mode`` is ``'loss'``, ``'predict'`` or
        ``'tensor'``."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got "
                         f'{mode!r}')

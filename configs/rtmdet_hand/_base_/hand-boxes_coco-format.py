# COCO-format hand-box data for the RTMDet hand detectors: the dataloader
# and evaluator settings shared by every config of configs/rtmdet_hand, on
# top of ./rtmdet-tiny_hand.py (model, optimizer, runtime), which this file
# inherits: a config lists only this file in its ``_base_``.
#
# The values are mmdet 3.3.0's (``mmdet/.mim/configs/_base_/datasets/
# coco_detection.py`` with the overrides of ``rtmdet/rtmdet_l_8xb32-300e_
# coco.py``: per GPU 32 training images and 10 workers, pinned memory, no
# aspect-ratio batch sampler, 5 validation images and 10 workers, the test
# loader and metric equal to the validation ones, CocoMetric with
# ``proposal_nums=(100, 1, 10)``) and the two hand classes of
# ./rtmdet-tiny_hand.py (0 right_hand, 1 left_hand).
#
# Left to each config: ``data_root``, and per split the dataset's
# ``data_root``, ``ann_file``, ``data_prefix`` and ``pipeline`` and the
# evaluators' ``ann_file`` (and ``classwise=True`` for per-class APs). A
# base file's variables are resolved in the base file, so a config that
# defines or changes a pipeline must assign it to the dataloaders itself
# (``dataset=dict(pipeline=...)``), as every config here does.
_base_ = ['./rtmdet-tiny_hand.py']

dataset_type = 'CocoDataset'

train_dataloader = dict(
    batch_size=32,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        type=dataset_type,
        metainfo={{_base_.hand_metainfo}},
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        backend_args={{_base_.backend_args}}))
val_dataloader = dict(
    batch_size=5,
    num_workers=10,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        metainfo={{_base_.hand_metainfo}},
        test_mode=True,
        backend_args={{_base_.backend_args}}))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    metric='bbox',
    format_only=False,
    proposal_nums=(100, 1, 10),
    backend_args={{_base_.backend_args}})
test_evaluator = val_evaluator

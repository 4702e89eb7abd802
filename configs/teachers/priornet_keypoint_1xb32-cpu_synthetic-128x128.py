# Synthetic-world keypoint teacher: a PriorNet fitted to both hands' joint
# heatmaps of the synthetic set, then frozen as SyntheticWorldTeacher in the
# synthetic A2P configs (a miniature of a Sapiens keypoint model). Sized for
# 2 CPU cores; see docs/a2p.md for the command and the measured quality.
_base_ = [
    '../_base_/default_runtime.py', '../_base_/datasets/synthetic_interhand.py'
]
prior = 'keypoint'

model = dict(
    type='PriorTeacherTrainer',
    prior=prior,
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True))

# the A2P synthetic configs feed 128 x 128 crops and their teachers take
# them at this size (input_size=(128, 128)), so the teachers' letterbox
# (input_mode='letterbox', issue 19) is the identity: train at the same size
input_size = (128, 128)
train_pipeline = [
    dict(type='LoadTwoHandImage'),
    dict(type='LoadPriorMaps'),
    dict(type='RandomTwoHandFlip', prob=0.5),
    dict(
        type='TwoHandCropAffine',
        input_size=input_size,
        padding=1.25,
        scale_range=(0.8, 1.2),
        rotate_range=30,
        rotate_prob=0.6,
        shift_factor=0.1),
    dict(type='ColorJitter', prob=0.8),
    dict(type='PackTwoHandInputs'),
]
val_pipeline = [
    dict(type='LoadTwoHandImage'),
    dict(type='LoadPriorMaps'),
    dict(type='TwoHandCropAffine', input_size=input_size, test_mode=True),
    dict(type='PackTwoHandInputs'),
]
train_dataloader = dict(
    batch_size=32, num_workers=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=2, dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='PriorTeacherMetric')
test_evaluator = val_evaluator

train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=2)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=2, by_epoch=True, eta_min=1e-5)
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='SafeCheckpointHook', interval=2, max_keep_ckpts=1))
custom_imports = dict(
    imports=[
        'mmhand2p.engine', 'mmhand2p.evaluation',
        'mmhand2p.evaluation.metrics.prior_teacher_metric'
    ],
    allow_failed_imports=False)

# A2P stage 1 in the synthetic world, sized to train on 2 CPU cores:
# ResNet-18 image features at 128x128, the FAE sharing the backbone, and
# frozen synthetic-world teachers (configs/teachers/, trained first; see
# docs/a2p.md for the commands, budget and numbers).
_base_ = [
    '../../_base_/default_runtime.py',
    '../../_base_/datasets/synthetic_interhand.py'
]
input_size = (128, 128)
# the target conventions shared by GenerateTwoHandTargets(encoder=codec) and
# the head (decoder=codec): left hands as mirrored right hands (A2P)
codec = dict(
    type='TwoHandCodec', left_as_right=True, depth_range=0.4, crop_extent=0.25)
teacher_root = 'work_dirs/teachers/'
teachers = {
    p: dict(
        type='SyntheticWorldTeacher',
        prior=p,
        input_size=input_size,
        checkpoint=f'{teacher_root}priornet_{p}.pth')
    for p in ('keypoint', 'segmentation', 'depth')
}

model = dict(
    type='TopDownTwoHandReconstructor',
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(type='mmpose.ResNet', depth=18, out_indices=(3, )),
    neck=dict(
        type='FusionAlignmentNeck',
        in_channels=512,
        embed_dims=128,
        priors=('keypoint', 'segmentation', 'depth'),
        teachers=teachers,
        teacher_channels=128,
        fae=None,
        num_layers=2,
        num_heads=4,
        ffn_dims=256,
        dropout=0.0),
    head=dict(
        type='TwoHandMANOHead',
        in_channels=128,
        num_layers=2,
        num_heads=4,
        ffn_dims=256,
        body_model=dict(type='MANOLayer', model_path=None),
        decoder=codec))

train_pipeline = [
    dict(type='LoadTwoHandImage'),
    dict(type='RandomTwoHandFlip', prob=0.5),
    dict(
        type='TwoHandCropAffine',
        input_size=input_size,
        padding=1.25,
        scale_range=(0.85, 1.15),
        rotate_range=20,
        rotate_prob=0.5,
        shift_factor=0.05),
    dict(type='ColorJitter', prob=0.5),
    dict(type='GenerateTwoHandTargets', encoder=codec),
    dict(type='PackTwoHandInputs'),
]
val_pipeline = [
    dict(type='LoadTwoHandImage'),
    dict(type='TwoHandCropAffine', input_size=input_size, test_mode=True),
    dict(type='GenerateTwoHandTargets', encoder=codec),
    dict(type='PackTwoHandInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=2, dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='TwoHandMetric', protocol='a2p')
test_evaluator = val_evaluator

# a fixed budget of iterations, the same for every ablation run (docs/a2p.md)
max_iters = 300
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=50, start_factor=0.01,
         by_epoch=False),
    dict(type='MultiStepLR', begin=0, end=max_iters,
         milestones=[int(max_iters * 0.8)], gamma=0.1, by_epoch=False),
]
log_processor = dict(by_epoch=False)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(
        type='SafeCheckpointHook', by_epoch=False, interval=max_iters,
        max_keep_ckpts=1))
randomness = dict(seed=0)

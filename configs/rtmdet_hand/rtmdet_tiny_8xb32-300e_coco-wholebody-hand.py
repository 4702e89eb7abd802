# RTMDet-tiny, right/left hand boxes on COCO-WholeBody (8 GPUs x 32 images),
# mmdet's RTMDet-tiny recipe (300 epochs, 640 input, CachedMosaic +
# CachedMixUp, EMA, stage-2 pipeline for the last 20 epochs) with
# handedness-aware flips.
#
# Data (docs/rtmdet_hand.md): COCO 2017 images and the COCO-WholeBody v1.0
# annotations under data/coco/, hand boxes made once with
#   python tools/dataset_converters/coco_wholebody_to_hand_boxes.py \
#       data/coco/annotations/coco_wholebody_train_v1.0.json \
#       data/coco/annotations/coco_wholebody_train_v1.0_hand_boxes.json
# (and the same for val). Train:
#   bash tools/dist_train.sh THIS_CONFIG 8
_base_ = ['./_base_/hand-boxes_coco-format.py']

data_root = 'data/coco/'
backend_args = None

# mmdet's RTMDet-tiny train pipeline (rtmdet_tiny_8xb32-300e_coco.py) with
# its RandomFlip replaced by mmhand2p's HandednessFlip: a flipped right hand
# is a left hand, and mmdet's RandomFlip keeps the label (HandednessFlip
# mirrors exactly like it and swaps right_hand <-> left_hand). CachedMixUp
# mirrors the image it mixes in by itself, also keeping labels, when
# uniform(0, 1) > flip_ratio (mmdet 3.3.0, default 0.5); flip_ratio=1.0
# switches that off. Mosaic, resize and crop keep handedness.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='CachedMosaic',
        img_scale=(640, 640),
        pad_val=114.0,
        max_cached_images=20,
        random_pop=False),
    dict(
        type='RandomResize',
        scale=(1280, 1280),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=(640, 640)),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='mmhand2p.HandednessFlip', prob=0.5),
    dict(type='Pad', size=(640, 640), pad_val=dict(img=(114, 114, 114))),
    dict(
        type='CachedMixUp',
        img_scale=(640, 640),
        ratio_range=(1.0, 1.0),
        flip_ratio=1.0,  # no label-keeping mirror of the mixed-in image
        max_cached_images=10,
        random_pop=False,
        pad_val=(114, 114, 114),
        prob=0.5),
    dict(type='PackDetInputs')
]
train_pipeline_stage2 = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomResize',
        scale=(640, 640),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=(640, 640)),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='mmhand2p.HandednessFlip', prob=0.5),
    dict(type='Pad', size=(640, 640), pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(640, 640), keep_ratio=True),
    dict(type='Pad', size=(640, 640), pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

# mmdet's 32 training / 5 validation images and 10 workers per GPU come
# from ./_base_/hand-boxes_coco-format.py
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/coco_wholebody_train_v1.0_hand_boxes.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/coco_wholebody_val_v1.0_hand_boxes.json',
        data_prefix=dict(img='val2017/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    ann_file=data_root + 'annotations/coco_wholebody_val_v1.0_hand_boxes.json',
    classwise=True)
test_evaluator = val_evaluator

# mmdet's RTMDet schedule: AdamW 0.004 (batch 256), 1000 warm-up
# iterations, cosine decay over the second half, 20 final epochs without
# mosaic/mixup, validation every 10 epochs then every epoch
max_epochs = 300
stage2_num_epochs = 20
base_lr = 0.004
interval = 10
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_interval=interval,
    dynamic_intervals=[(max_epochs - stage2_num_epochs, 1)])
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1.0e-5,
        by_epoch=False,
        begin=0,
        end=1000),
    dict(
        type='CosineAnnealingLR',
        eta_min=base_lr * 0.05,
        begin=max_epochs // 2,
        end=max_epochs,
        T_max=max_epochs // 2,
        by_epoch=True,
        convert_to_iter_based=True),
]
default_hooks = dict(
    checkpoint=dict(
        type='mmhand2p.SafeCheckpointHook',
        interval=interval,
        max_keep_ckpts=3))
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0002,
        update_buffers=True,
        priority=49),
    dict(
        type='PipelineSwitchHook',
        switch_epoch=max_epochs - stage2_num_epochs,
        switch_pipeline=train_pipeline_stage2)
]

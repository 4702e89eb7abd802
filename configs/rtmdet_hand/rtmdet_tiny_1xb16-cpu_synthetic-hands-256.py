# RTMDet-tiny, right/left hand boxes of the synthetic two-hand set, sized for
# one CPU: 256x256 input, batch 16, an iteration-based schedule.
#
# Data: tools/dataset_converters/make_synthetic_interhand.py writes
# data/synthetic_interhand/annotations/{split}/hand_boxes_{split}_coco.json
# (categories 1 right_hand, 2 left_hand; file names relative to
# images/{split}/). Train: python tools/train.py THIS_CONFIG
_base_ = ['./_base_/hand-boxes_coco-format.py']

input_size = 256
data_root = 'data/synthetic_interhand/'

# one process, no SyncBN
norm_cfg = dict(type='BN')
model = dict(
    backbone=dict(norm_cfg=norm_cfg),
    neck=dict(norm_cfg=norm_cfg),
    bbox_head=dict(norm_cfg=norm_cfg),
    # at most two hands per image: a short candidate list keeps CPU
    # evaluation fast (mmpose's RTMDet hand/person detectors use the same)
    test_cfg=dict(
        nms_pre=1000,
        score_thr=0.001,
        nms=dict(type='nms', iou_threshold=0.65),
        max_per_img=100))

# No flip: a horizontal flip turns a right hand into a left one, and mmdet's
# RandomFlip keeps the label, which would teach the detector the wrong
# handedness for half the flipped boxes. No CachedMosaic / CachedMixUp either:
# the test images come from the same generator (one or two large hands on a
# 256x256 frame), and on a short CPU budget plain scale jitter converges
# faster. Both keep labels and can be added back for longer runs.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomResize',
        scale=(input_size, input_size),
        ratio_range=(0.6, 1.4),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=(input_size, input_size)),
    dict(type='YOLOXHSVRandomAug'),
    dict(
        type='Pad',
        size=(input_size, input_size),
        pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=True),
    dict(
        type='Pad',
        size=(input_size, input_size),
        pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

# one CPU: 16 images and 2 workers for every split, no pinned memory (the
# rest of the loaders: ./_base_/hand-boxes_coco-format.py)
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/train/hand_boxes_train_coco.json',
        data_prefix=dict(img='images/train/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/val/hand_boxes_val_coco.json',
        data_prefix=dict(img='images/val/'),
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/test/hand_boxes_test_coco.json',
        data_prefix=dict(img='images/test/'),
        pipeline=test_pipeline))

# bbox AP per class too: the right_hand / left_hand APs show whether the
# detector tells the hands apart, not only where they are
val_evaluator = dict(
    ann_file=data_root + 'annotations/val/hand_boxes_val_coco.json',
    classwise=True)
test_evaluator = dict(
    ann_file=data_root + 'annotations/test/hand_boxes_test_coco.json',
    classwise=True)

# Schedule: 1500 iterations of 16 images (4 epochs of the 6000-image train
# split), for a CPU of its own; not run here: on the shared 2-core
# development machine a step took 8-20 s, hence the 25-minute config
# rtmdet_nano_1xb8-25min-cpu_synthetic-hands-160.py (docs/rtmdet_hand.md).
# lr: mmdet's AdamW 0.004 is for a batch of 256; for 16 the square-root rule
# for adaptive optimizers gives 0.004 * sqrt(16 / 256) = 0.001 (linear
# scaling would give 0.00025, too slow for a from-scratch run this short).
max_iters = 1500
val_interval = 500
base_lr = 0.001
optim_wrapper = dict(optimizer=dict(lr=base_lr))
auto_scale_lr = dict(enable=False, base_batch_size=16)
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1.0e-3,
        by_epoch=False,
        begin=0,
        end=100),
    dict(
        type='CosineAnnealingLR',
        eta_min=base_lr * 0.05,
        begin=max_iters // 2,
        end=max_iters,
        T_max=max_iters // 2,
        by_epoch=False),
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(
        type='mmhand2p.SafeCheckpointHook',
        by_epoch=False,
        interval=val_interval,
        max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
# mmdet's RTMDet EMA (its momentum starts high and decays, so it follows the
# weights closely in a short run); checkpoints store the EMA weights
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0002,
        update_buffers=True,
        priority=49)
]
randomness = dict(seed=0)

# A2P's hand-wise input mode (the paper's section 4.1, after InterWild), a
# non-default variant (issue 19 item 1): each hand cropped from its own box,
# the left crop mirrored, one single-hand network on both crops, outputs
# flipped back, the relative translation from a small branch. Same backbone
# and budget as a2p_res18w32-baseline_1xb16-cpu_synthetic-128x128.py; no
# prior neck yet, no ColorJitter (it takes one image, not two crops).
_base_ = ['./a2p_res18w32-baseline_1xb16-cpu_synthetic-128x128.py']

input_size = (128, 128)
model = dict(
    _delete_=True,
    type='HandwiseTopDownReconstructor',
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='mmpose.ResNet',
        depth=18,
        stem_channels=32,
        base_channels=32,
        out_indices=(3, )),
    head=dict(
        type='HandwiseMANOHead',
        in_channels=256,
        hidden_dims=256,
        body_model=dict(type='MANOLayer', model_path=None)),
    rel_hidden_dims=128)

train_pipeline = [
    dict(type='LoadTwoHandImage'),
    dict(type='RandomTwoHandFlip', prob=0.5),
    dict(
        type='HandwiseCropAffine',
        input_size=input_size,
        padding=1.25,
        scale_range=(0.85, 1.15),
        rotate_range=20,
        rotate_prob=0.5,
        shift_factor=0.05,
        test_mode=False),
    dict(type='PackHandwiseInputs'),
]
val_pipeline = [
    dict(type='LoadTwoHandImage'),
    dict(type='HandwiseCropAffine', input_size=input_size),
    dict(type='PackHandwiseInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

# InterHand2.6M (5 fps v1.0 release layout, or 30 fps) for two-hand crops.
# Data layout: see mmhand2p/datasets/interhand26m.py and docs/datasets.md.
dataset_type = 'InterHand26MDataset'
data_root = 'data/interhand2.6m/'
input_size = (256, 256)
# the hand model of the annotations' MANO parameters (converted with
# tools/misc/convert_mano.py); None would use the bundled stand-in model
mano_model_path = 'data/mano'
# the target conventions (mmhand2p.codecs.TwoHandCodec) of A2P: one variable
# for GenerateTwoHandTargets(encoder=codec) below and the head's decoder in
# the model configs that inherit this file (decoder=_base_.codec)
codec = dict(
    type='TwoHandCodec', left_as_right=True, depth_range=0.4, crop_extent=0.25)

train_pipeline = [
    dict(type='LoadTwoHandImage'),
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
    dict(type='MotionBlur', prob=0.3),
    dict(type='GenerateTwoHandTargets', encoder=codec),
    dict(type='PackTwoHandInputs'),
]
test_pipeline = [
    dict(type='LoadTwoHandImage'),
    dict(type='TwoHandCropAffine', input_size=input_size, test_mode=True),
    dict(type='GenerateTwoHandTargets', encoder=codec),
    dict(type='PackTwoHandInputs'),
]

train_dataloader = dict(
    batch_size=12,  # x 4 GPUs = 48, the paper's batch
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        hand_type='all',
        require_mano=True,
        mano_model_path=mano_model_path,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        hand_type='all',
        mano_model_path=mano_model_path,
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = [
    dict(type='TwoHandMetric', protocol='a2p'),
    dict(type='PenetrationMetric'),
]
test_evaluator = val_evaluator

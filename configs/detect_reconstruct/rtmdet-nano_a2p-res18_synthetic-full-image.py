# Whole images of the synthetic two-hand set through one model: the
# RTMDet-nano right/left hand detector, pairing of the boxes into two-hand
# crops and the A2P ResNet-18 reconstructor (docs/detect_reconstruct.md).
#
# The parts are trained separately with their own configs, then their
# checkpoints are merged into one (docs/detect_reconstruct.md):
#
#   DET=rtmdet_nano_1xb16-cpu_synthetic-hands-256
#   REC=a2p_res18_1xb16-cpu_synthetic-128x128
#   python tools/train.py configs/rtmdet_hand/$DET.py
#   python tools/train.py configs/a2p/synthetic/$REC.py
#   python -c "from mmhand2p.models.reconstructors import \
#   merge_part_checkpoints as m; m('work_dirs/$DET/iter_1500.pth', \
#   'work_dirs/$REC/iter_300.pth', 'work_dirs/rtmdet-nano_a2p-res18.pth')"
#   python tools/test.py THIS_CONFIG work_dirs/rtmdet-nano_a2p-res18.pth
#
# Oracle boxes (the annotated hand boxes instead of the detector's):
# rtmdet-nano_a2p-res18_synthetic-full-image_gt-boxes.py.
_base_ = [
    '../_base_/default_runtime.py', '../_base_/datasets/synthetic_interhand.py'
]

# The parts are the models of their own configs (read when the model is
# built, so their checkpoints always match); the detector's input size and
# padding and the reconstructor's crop size and padding come from those
# configs' test pipelines.
detector_config = ('configs/rtmdet_hand/'
                   'rtmdet_nano_1xb16-cpu_synthetic-hands-256.py')
reconstructor_config = ('configs/a2p/synthetic/'
                        'a2p_res18_1xb16-cpu_synthetic-128x128.py')

model = dict(
    type='DetectThenReconstruct',
    detector=detector_config,
    reconstructor=reconstructor_config,
    det_score_thr=0.3,
    box_source='detector',
    pair_cfg=dict(dist_thr=1.5, dup_iou_thr=0.5, priority='score'),
    # images without intrinsics only (every synthetic image has them)
    focal_factor=1.0,
    refine=True,
    # alternatively to one merged checkpoint (see above):
    detector_checkpoint=None,
    reconstructor_checkpoint=None)

# whole images, ground truth in the image's own camera frame
test_pipeline = [
    dict(type='LoadTwoHandImage'),
    dict(type='PackFullImageInputs'),
]
val_pipeline = test_pipeline
val_dataloader = dict(batch_size=8, dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(batch_size=8, dataset=dict(pipeline=test_pipeline))
val_evaluator = dict(type='TwoHandMetric', protocol='a2p')
test_evaluator = val_evaluator
val_cfg = dict()
test_cfg = dict()
# an inference model: nothing to train here (the parts have their configs)
train_dataloader = None
train_cfg = None
optim_wrapper = None

# The demo's embedded default (demo/image_demo.py with no arguments;
# docs/model_zoo.md): the RTMDet-nano right/left hand detector, the
# half-width ResNet-18 A2P reconstructor and the synthetic diffusion refiner,
# all trained on the synthetic two-hand set rendered with the bundled hand
# model, in one DetectThenReconstruct model whose weights are the single
# file demo/resources/checkpoints/hand2p_default_synthetic.pth
# (tools/misc/make_demo_checkpoints.py). Evaluate on full synthetic images:
#
#   python tools/test.py \
#       configs/detect_reconstruct/hand2p_default_synthetic.py \
#       demo/resources/checkpoints/hand2p_default_synthetic.pth
#
# (docs/model_zoo.md has the numbers and the no-refinement variant)
_base_ = ['./rtmdet-nano_a2p-res18_synthetic-full-image.py']

model = dict(
    detector='configs/rtmdet_hand/'
    'rtmdet_nano_1xb8-25min-cpu_synthetic-hands-160.py',
    reconstructor='configs/diffusion/'
    'a2p_res18w32+refiner_1xb16-cpu_synthetic-128x128.py',
    refine=True)

# before and after refinement in one run (the refiner keeps the stage-1
# meshes as pred_hands.unrefined_*); without refinement:
# hand2p_default_synthetic_no-refine.py
test_evaluator = [
    dict(type='TwoHandMetric', protocol='a2p'),
    dict(type='PenetrationMetric'),
    dict(
        type='TwoHandMetric',
        protocol='a2p',
        pred_keys=('unrefined_joints_3d', 'unrefined_vertices'),
        prefix='two_hand_unrefined'),
    dict(
        type='PenetrationMetric',
        vertices_key='unrefined_vertices',
        prefix='penetration_unrefined'),
]
val_evaluator = test_evaluator

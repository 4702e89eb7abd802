# RTMDet-nano, right/left hand boxes of the synthetic two-hand set on one CPU.
#
# Widths and depthwise convolutions are those of the RTMDet-nano hand and
# person detectors published with RTMPose (mmpose 1.3.2,
# mmpose/.mim/demo/mmdetection_cfg/rtmdet_nano_320-8xb32_hand.py):
# deepen_factor 0.33, widen_factor 0.25 (CSPNeXt P3-P5 channels 64/128/256),
# neck and head 64 channels, use_depthwise, unshared head convs.
# Everything else (data, schedule) is the tiny CPU config's.
_base_ = ['./rtmdet_tiny_1xb16-cpu_synthetic-hands-256.py']

model = dict(
    backbone=dict(deepen_factor=0.33, widen_factor=0.25, use_depthwise=True),
    neck=dict(
        in_channels=[64, 128, 256],
        out_channels=64,
        num_csp_blocks=1,
        use_depthwise=True),
    bbox_head=dict(
        in_channels=64,
        feat_channels=64,
        share_conv=False,
        exp_on_reg=False,
        use_depthwise=True))

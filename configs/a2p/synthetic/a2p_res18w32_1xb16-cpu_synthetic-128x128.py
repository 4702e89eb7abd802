# The embedded demo's reconstructor (docs/model_zoo.md): the synthetic A2P
# model of a2p_res18_1xb16-cpu_synthetic-128x128.py with a ResNet-18 at half
# width (32 base channels, 2.8M parameters instead of 11.2M) so that the
# detector, this model and the refiner fit the 20 MB of checkpoints shipped
# in demo/resources/checkpoints/. Same teachers, data and losses.
_base_ = ['./a2p_res18_1xb16-cpu_synthetic-128x128.py']

model = dict(
    backbone=dict(stem_channels=32, base_channels=32),
    neck=dict(in_channels=256))

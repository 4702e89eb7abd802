# Table-4-style ablation at half width (the budget of docs/a2p.md's rerun):
# a2p_res18-kp_1xb16-cpu_synthetic-128x128.py with the backbone of
# a2p_res18w32_1xb16-cpu_synthetic-128x128.py (32 base channels).
_base_ = ['./a2p_res18-kp_1xb16-cpu_synthetic-128x128.py']

model = dict(
    backbone=dict(stem_channels=32, base_channels=32),
    neck=dict(in_channels=256))

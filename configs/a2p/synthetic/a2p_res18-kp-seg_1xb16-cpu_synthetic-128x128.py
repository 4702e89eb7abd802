# Table-4-style ablation in the synthetic world:
# priors = ('keypoint', 'segmentation').
_base_ = './a2p_res18_1xb16-cpu_synthetic-128x128.py'
model = dict(neck=dict(priors=('keypoint', 'segmentation')))

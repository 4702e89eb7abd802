# Synthetic-world segmentation teacher (see priornet_keypoint_*.py for the
# recipe).
_base_ = './priornet_keypoint_1xb32-cpu_synthetic-128x128.py'
prior = 'segmentation'
model = dict(prior=prior)

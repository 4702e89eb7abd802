# The same model with oracle boxes: the annotated hand boxes of each image
# (gt_hands.bboxes) replace the detector's, and the annotated hands are one
# pair. This isolates the reconstruction error from detection and pairing
# errors (docs/detect_reconstruct.md):
#
#   python tools/test.py THIS_CONFIG work_dirs/rtmdet-nano_a2p-res18.pth
_base_ = ['./rtmdet-nano_a2p-res18_synthetic-full-image.py']

model = dict(box_source='gt')

# Copyright (c) mmhand2p contributors. All rights reserved.
"""Draw validation / test predictions with the runner's visualizer."""
import inspect
import logging
import os.path as osp
from typing import Optional, Sequence

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.visualization import Visualizer

from mmhand2p.registry import HOOKS

__all__ = ['TwoHandVisualizationHook']


@HOOKS.register_module()
class TwoHandVisualizationHook(Hook):
    """Draw the first sample of every ``interval``-th val / test batch.

    The picture (mesh overlay, skeletons, side view: see
    :class:`~mmhand2p.visualization.TwoHandLocalVisualizer`) is drawn by the
    runner's visualizer (``Visualizer.get_current_instance()``, built from
    the config's ``visualizer``), written under ``out_dir`` and sent to the
    visualizer's backends (``LocalVisBackend`` writes under
    ``<work_dir>/<timestamp>/vis_data/vis_image``; a configured
    ``TensorboardVisBackend`` shows it in TensorBoard).

    Files: ``<out_dir>/val/iter_<training iter>/<batch>_<image name>.png``
    during validation, ``<out_dir>/<batch>_<image name>.png`` in testing.
    Backend tags: ``val_<batch>`` at the training iteration as step (the
    same sample across evaluations), ``test`` at the batch index as step.
    In distributed runs only rank 0 draws (the first sample of its batch).

    Args:
        enable (bool): draw at all. Defaults to True.
        interval (int): draw batches 0, interval, 2 * interval... of each
            val / test run. Defaults to 50.
        out_dir (str, optional): folder of the files; a relative path is
            taken under the runner's ``work_dir``; None writes no files
            (backends only). Defaults to ``'vis'``.
        image_source (str): ``'input'`` draws on the network input of the
            batch (``data_batch['inputs']``, always available); ``'original'``
            reads ``img_path`` and draws on the original image (falls back to
            the input when the file cannot be read). Defaults to ``'input'``.
        input_channel_order (str): channel order of ``data_batch['inputs']``
            (``PackTwoHandInputs`` packs BGR). Defaults to ``'bgr'``.
        draw_gt (bool): draw the ground-truth skeletons. Defaults to True.
        draw_pred (bool): draw the predictions. Defaults to True.
        save_to_backends (bool): also send the pictures to the backends.
            Defaults to True.
        show (bool): show each picture in a window. Defaults to False.
        wait_time (float): seconds a shown picture stays. Defaults to 0.
        backend_args (dict, optional): file backend of ``img_path``.
    """

    priority = 'NORMAL'

    def __init__(self,
                 enable: bool = True,
                 interval: int = 50,
                 out_dir: Optional[str] = 'vis',
                 image_source: str = 'input',
                 input_channel_order: str = 'bgr',
                 draw_gt: bool = True,
                 draw_pred: bool = True,
                 save_to_backends: bool = True,
                 show: bool = False,
                 wait_time: float = 0.,
                 backend_args: Optional[dict] = None) -> None:
        if int(interval) < 1:
            raise ValueError(f'TwoHandVisualizationHook: interval must be '
                             f'>= 1, got {interval}')
        if image_source not in ('input', 'original'):
            raise ValueError("TwoHandVisualizationHook: image_source must be "
                             f"'input' or 'original', got {image_source!r}")
        if input_channel_order not in ('bgr', 'rgb'):
            raise ValueError('TwoHandVisualizationHook: input_channel_order '
                             f"must be 'bgr' or 'rgb', got "
                             f'{input_channel_order!r}')
        self.enable = enable
        self.interval = int(interval)
        self.out_dir = out_dir
        self.image_source = image_source
        self.input_channel_order = input_channel_order
        self.draw_gt = draw_gt
        self.draw_pred = draw_pred
        self.save_to_backends = save_to_backends
        self.show = show
        self.wait_time = wait_time
        self.backend_args = backend_args
        self._warned = set()

    # ------------------------------------------------------------------
    def _warn_once(self, key: str, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            print_log(
                f'TwoHandVisualizationHook: {msg}',
                logger='current',
                level=logging.WARNING)

    def _input_image(self, data_batch: dict) -> Optional[np.ndarray]:
        inputs = data_batch.get('inputs') if isinstance(data_batch,
                                                        dict) else None
        if inputs is None or len(inputs) == 0:
            return None
        img = inputs[0]
        if hasattr(img, 'detach'):
            img = img.detach().cpu().numpy()
        img = np.asarray(img)
        if img.ndim != 3:
            return None
        img = np.transpose(img, (1, 2, 0))  # (C, H, W) -> (H, W, C)
        if img.dtype != np.uint8:
            img = np.clip(np.round(img), 0, 255).astype(np.uint8)
        if img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        elif self.input_channel_order == 'bgr':
            img = img[..., ::-1]
        return np.ascontiguousarray(img[..., :3])

    def _original_image(self, data_sample) -> Optional[np.ndarray]:
        img_path = data_sample.metainfo.get('img_path')
        if not img_path:
            return None
        try:
            import mmcv
            from mmengine import fileio
            img_bytes = fileio.get(img_path, backend_args=self.backend_args)
            return mmcv.imfrombytes(img_bytes, channel_order='rgb')
        except Exception as e:  # unreadable: fall back to the input
            self._warn_once(
                'read', f'cannot read {img_path} ({e}); drawing '
                'on the network input instead')
            return None

    def _out_file(self, runner, mode: str, batch_idx: int,
                  data_sample) -> Optional[str]:
        if self.out_dir is None:
            return None
        root = self.out_dir if osp.isabs(self.out_dir) else osp.join(
            runner.work_dir, self.out_dir)
        img_path = data_sample.metainfo.get('img_path')
        stem = osp.splitext(osp.basename(img_path))[0] if img_path else \
            'sample'
        fname = f'{batch_idx:06d}_{stem}.png'
        if mode == 'val':
            return osp.join(root, 'val', f'iter_{runner.iter}', fname)
        return osp.join(root, fname)

    def _draw(self, runner, mode: str, batch_idx: int, data_batch: dict,
              outputs: Sequence) -> None:
        if not self.enable or batch_idx % self.interval != 0 or not outputs:
            return
        if not is_main_process():  # rank 0 draws its own first sample
            return
        try:
            visualizer = Visualizer.get_current_instance()
        except RuntimeError:  # no visualizer was ever built
            self._warn_once('visualizer', 'no visualizer has been built')
            return
        if type(visualizer).add_datasample is Visualizer.add_datasample:
            self._warn_once(
                'visualizer', f'the runner\'s visualizer '
                f'({type(visualizer).__name__}) does not draw data samples; '
                "set visualizer = dict(type='TwoHandLocalVisualizer', ...) "
                'in the config')
            return
        data_sample = outputs[0]
        if not hasattr(data_sample, 'metainfo'):
            self._warn_once(
                'sample', 'the model outputs are not data '
                f'samples ({type(data_sample).__name__}); nothing '
                'drawn')
            return
        if 'gt_hands' not in data_sample and isinstance(data_batch, dict):
            batch_samples = data_batch.get('data_samples')
            if batch_samples and 'gt_hands' in batch_samples[0]:
                data_sample = data_sample.clone()
                data_sample.gt_hands = batch_samples[0].gt_hands
        image, space = None, 'input'
        if self.image_source == 'original':
            image, space = self._original_image(data_sample), 'original'
        if image is None:
            image, space = self._input_image(data_batch), 'input'
        if image is None:
            self._warn_once(
                'image', 'no image to draw on (no inputs in the '
                'batch and no readable img_path)')
            return
        if mode == 'val':
            name, step = f'val_{batch_idx:06d}', runner.iter
        else:
            name, step = 'test', batch_idx
        out_file = self._out_file(runner, mode, batch_idx, data_sample)
        kwargs = dict(
            draw_gt=self.draw_gt,
            draw_pred=self.draw_pred,
            show=self.show,
            wait_time=self.wait_time,
            out_file=out_file,
            step=step)
        if 'image_space' in inspect.signature(
                visualizer.add_datasample).parameters:
            kwargs['image_space'] = space
        try:
            drawn = visualizer.add_datasample(name, image, data_sample,
                                              **kwargs)
        except Exception as e:  # a picture must not end a long run
            self._warn_once(
                'draw', f'drawing {name} failed ({type(e).__name__}: {e}); '
                'the run continues without pictures (further failures are '
                'not reported)')
            self.enable = False
            return
        # with out_file the visualizer writes the file only: send the
        # picture to the backends (TensorBoard...) as well
        if out_file is not None and self.save_to_backends:
            if drawn is None:
                drawn = visualizer.get_image()
            visualizer.add_image(name, drawn, step)

    def after_val_iter(self,
                       runner,
                       batch_idx: int,
                       data_batch: Optional[dict] = None,
                       outputs: Optional[Sequence] = None) -> None:
        """Draw the first sample of every ``interval``-th val batch."""
        self._draw(runner, 'val', batch_idx, data_batch, outputs)

    def after_test_iter(self,
                        runner,
                        batch_idx: int,
                        data_batch: Optional[dict] = None,
                        outputs: Optional[Sequence] = None) -> None:
        """Draw the first sample of every ``interval``-th test batch."""
        self._draw(runner, 'test', batch_idx, data_batch, outputs)

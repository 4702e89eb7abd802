# Copyright (c) mmhand2p contributors. All rights reserved.
"""Worker for test_ddp_gradients.py: gradients of the A2P model on a fixed
batch, either in one process (full batch) or under torchrun with gloo (each
rank half the batch, gradients averaged by DDP)."""
import sys

import numpy as np
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmhand2p.registry import MODELS
from mmhand2p.structures import HandDataSample
from mmhand2p.utils import register_all_modules
from mmhand2p.utils.geometry import axis_angle_to_rot6d


def make_batch(n: int, size: int = 64):
    """A deterministic batch with every target valid (so a mean over the
    full batch equals the average of the two halves' means)."""
    g = torch.Generator().manual_seed(123)
    k = np.array([[80.0, 0, 31.5], [0, 80.0, 31.5], [0, 0, 1]], np.float32)
    samples = []
    for _ in range(n):
        j3d = torch.rand(2, 21, 3, generator=g) * 0.1 + torch.tensor(
            [0.0, 0.0, 0.5])
        uvw = torch.einsum('ij,hnj->hni', torch.from_numpy(k),
                           j3d / j3d[..., 2:3])
        rel_z = j3d[..., 2] - j3d[:, :1, 2]
        ds = HandDataSample(
            metainfo=dict(cam_intrinsics=k, input_size=(size, size),
                          flip_left=True))
        ds.gt_hands = InstanceData(
            hand_valid=torch.ones(2, dtype=torch.bool),
            mano_valid=torch.ones(2, dtype=torch.bool),
            mano_pose_6d=axis_angle_to_rot6d(
                0.3 * torch.randn(2, 16, 3, generator=g)),
            mano_betas=torch.randn(2, 10, generator=g),
            joints_3d=j3d,
            joints_3d_valid=torch.ones(2, 21),
            joints_25d_norm=torch.stack(
                [uvw[..., 0] / size, uvw[..., 1] / size, rel_z / 0.4 + 0.5],
                -1),
            joints_25d_valid=torch.ones(2, 21),
            rel_transl=j3d[:, 0] - j3d[:1, 0],
            rel_transl_valid=torch.ones(2))
        samples.append(ds)
    imgs = torch.randint(0, 256, (n, 3, size, size), generator=g,
                         dtype=torch.uint8)
    return list(imgs), samples


def build_model(config: str):
    cfg = Config.fromfile(config)
    model_cfg = cfg.model
    # random-init teachers (their weights do not matter for the check) and
    # frozen batch-norm statistics: per-process batch statistics
    # legitimately differ from the full batch's
    for t in (model_cfg.neck.get('teachers') or {}).values():
        t['checkpoint'] = None
    model_cfg.backbone['norm_eval'] = True
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.train()
    return model


def grads(model, inputs, samples):
    data = model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses) if hasattr(
        model, 'parse_losses') else model.module.parse_losses(losses)
    loss.backward()


def main():
    config, out, mode = sys.argv[1:4]
    register_all_modules()
    inputs, samples = make_batch(4)
    model = build_model(config)
    if mode == 'single':
        grads(model, inputs, samples)
        named = model.named_parameters()
    else:
        dist.init_process_group('gloo')
        rank, world = dist.get_rank(), dist.get_world_size()
        from mmengine.model import MMDistributedDataParallel
        ddp = MMDistributedDataParallel(module=model)
        half = len(inputs) // world
        sl = slice(rank * half, (rank + 1) * half)
        data = model.data_preprocessor(
            dict(inputs=inputs[sl], data_samples=samples[sl]), True)
        losses = ddp(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        named = model.named_parameters()
        if rank != 0:
            dist.barrier()
            dist.destroy_process_group()
            return
    result = {
        n: p.grad.detach().clone()
        for n, p in named if p.grad is not None
    }
    torch.save(result, out)
    if mode != 'single':
        dist.barrier()
        dist.destroy_process_group()


if __name__ == '__main__':
    main()

"""One process or many: what the trainer needs to know about DistributedDataParallel.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the context joins the process group
(gloo on CPU, NCCL on GPU); otherwise it is a single-process stand-in with
the same methods, so the trainer has one code path.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as torch_dist
from torch import nn


class DistributedContext:
    """Rank, world size and device of this process; use as a context manager."""

    def __init__(self):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def __enter__(self) -> "DistributedContext":
        if self.enabled and not torch_dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            torch_dist.init_process_group(backend)
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled and torch_dist.is_initialized():
            torch_dist.destroy_process_group()

    def share(self, value):
        """``value`` as rank 0 has it, on every rank."""
        if not self.enabled:
            return value
        box = [value]
        torch_dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model on this process's device, wrapped for DDP when distributed."""
        model = model.to(self.device)
        if not self.enabled:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

"""Training in several processes (``torchrun``), and the random state each process carries.

Under ``torchrun --nproc_per_node=N`` every process trains on its own batches and
DistributedDataParallel averages the gradients. :func:`start` joins the process group with
the backend of the device (nccl for CUDA, gloo otherwise); :class:`RNGState` is what a
checkpoint keeps of each process's randomness, so a resumed run draws the same batches.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
from dataclasses import dataclass

import torch

from slm_helpers.device import choose_device

# Under torchrun, rank 0 prepares the dataset while the others wait, which for all of TinyStories
# takes longer than NCCL's default 10 minutes.
PROCESS_GROUP_TIMEOUT = datetime.timedelta(hours=2)


def start(device_request: str) -> tuple[int, int, int]:
    """(rank, local_rank, world_size): (0, 0, 1) outside torchrun. Under torchrun, joins the
    process group with the backend of the device this process will use, that device set
    first, so no rank creates a context on GPU 0 by mistake."""
    if "RANK" not in os.environ:
        return 0, 0, 1
    if not torch.distributed.is_initialized():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        device, _ = choose_device(device_request)
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
            torch.distributed.init_process_group(backend="nccl", device_id=torch.device("cuda", local_rank),
                                                 timeout=PROCESS_GROUP_TIMEOUT)
        else:
            torch.distributed.init_process_group(backend="gloo", timeout=PROCESS_GROUP_TIMEOUT)
    return torch.distributed.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), torch.distributed.get_world_size()


@contextlib.contextmanager
def group_left_on_exit():
    """Leave, on exit, a process group that :func:`start` joins inside this block.

    A process that ends with its gloo group still open aborts at exit ("terminate called
    without an active exception": the group's threads are destroyed unjoined), so whoever
    joins the group leaves it. A group that was already joined (by the command) is left to
    the one that joined it. On a clean exit the processes first wait for each other (one that
    tears its group down while another still works with it can abort the same way), and objects
    that still hold the group (DistributedDataParallel's reducer, once its wrapper is dropped) are
    collected while the interpreter is whole."""
    joined_before = torch.distributed.is_available() and torch.distributed.is_initialized()
    clean = False
    try:
        yield
        clean = True
    finally:
        if not joined_before and torch.distributed.is_available() and torch.distributed.is_initialized():
            if clean:
                torch.distributed.barrier()
            gc.collect()
            torch.distributed.destroy_process_group()


def rank_from_environment() -> int:
    """This process's rank as torchrun announces it (0 outside torchrun), before any group."""
    return int(os.environ.get("RANK", 0))


def average(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all processes (sum, then divide: ``ReduceOp.AVG`` is missing
    on gloo in older torch versions); ``value`` itself outside torchrun."""
    if not torch.distributed.is_initialized():
        return value
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.SUM)
    return value / torch.distributed.get_world_size()


def gather(obj, world_size: int) -> list:
    """``obj`` of every process, in rank order, on every process."""
    if world_size == 1:
        return [obj]
    gathered = [None] * world_size
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


@dataclass
class RNGState:
    """Everything random in training, captured at an optimizer-step boundary. Kept on the CPU:
    ``Generator.set_state`` and ``torch.cuda.set_rng_state`` take only CPU tensors."""

    batch: torch.Tensor
    torch_cpu: torch.Tensor
    device: torch.Tensor | None = None  # this process's CUDA generator

    @classmethod
    def capture(cls, batch_generator: torch.Generator, device: torch.device) -> RNGState:
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return cls(batch_generator.get_state(), torch.get_rng_state(), cuda)

    def restore(self, batch_generator: torch.Generator, device: torch.device) -> None:
        batch_generator.set_state(self.batch)
        torch.set_rng_state(self.torch_cpu)
        if self.device is not None and device.type == "cuda":
            torch.cuda.set_rng_state(self.device, device)

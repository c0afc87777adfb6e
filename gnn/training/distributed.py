"""Data-parallel training with PyTorch's own distributed runtime: the sampled trainer in several processes.

Each process holds the graph and a copy of the model (the same initial weights, broadcast from rank 0),
takes every ``world``-th batch of the epoch and its own sampled neighbourhoods, and before every step the
gradients are averaged across processes (``all_reduce``), so every copy takes the same step: one
optimiser over ``world`` times the batch. The ``gloo`` backend runs on CPUs, here two processes on one
machine; across machines the same code runs with ``init_method`` pointing at rank 0's address (``nccl``
on GPUs). Sampled training (:mod:`gnn.training.sampled`) is what makes this fit: a step needs the
batch's neighbourhood, not the whole graph, so the processes need no graph partitioning to start with.

Parameters no process has a gradient for (a relation with no edges in any of the batches) stay without
one, as in one process, so Adam leaves them alone there too.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from gnn.config import TrainConfig
from gnn.data.graph import GraphTensors, QuerySet


def average_gradients(model: nn.Module) -> None:
    """Average every parameter's gradient across the process group (those no process has stay None)."""
    params = list(model.parameters())
    have = torch.tensor([p.grad is not None for p in params], dtype=torch.float32)
    dist.all_reduce(have)
    world = dist.get_world_size()
    for p, count in zip(params, have.tolist(), strict=True):
        if count == 0:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker(rank: int, world: int, port: int, make_model: Callable[[], nn.Module], g: GraphTensors,
            config: TrainConfig, extra: QuerySet | None, extra_per_batch: int, results: Any) -> None:
    from gnn.training.sampled import train_sampled

    torch.set_num_threads(1)  # one core a process: the processes are the parallelism
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = make_model()
        for p in model.parameters():  # the same starting point everywhere
            dist.broadcast(p.data, src=0)
        result = train_sampled(model, g, config, extra=extra, extra_per_batch=extra_per_batch, rank=rank,
                               world=world, sync_gradients=average_gradients)
        checksum = torch.tensor([sum(float(p.detach().double().sum()) for p in model.parameters())])
        gathered = [torch.zeros(1, dtype=torch.float64) for _ in range(world)]
        dist.all_gather(gathered, checksum.double())
        buffer = io.BytesIO()  # bytes, not tensors: a tensor sent through a queue dies with its process
        torch.save(model.state_dict(), buffer)
        results.put((rank, buffer.getvalue(), result, [float(x) for x in gathered]))
    finally:
        dist.destroy_process_group()


def train_distributed(make_model: Callable[[], nn.Module], g: GraphTensors, config: TrainConfig, world: int = 2,
                      extra: QuerySet | None = None, extra_per_batch: int = 0) -> tuple[dict, Any, list[float]]:
    """Train ``make_model()`` on ``g`` in ``world`` processes (gloo, this machine). Returns rank 0's
    weights, its :class:`~gnn.training.loop.TrainResult` and every process's parameter checksum (equal
    when the copies stayed in step). ``make_model`` must be picklable (a module-level function)."""
    if config.sampler != "neighbour":
        raise ValueError("distributed training runs the sampled trainer: set train.sampler = 'neighbour'")
    context = mp.get_context("spawn")
    results = context.Queue()
    port = _free_port()
    processes = [context.Process(target=_worker, args=(rank, world, port, make_model, g, config, extra,
                                                      extra_per_batch, results)) for rank in range(world)]
    for p in processes:
        p.start()
    got = {}
    try:
        for _ in range(world):
            rank, state, result, checksums = results.get(timeout=3600)
            got[rank] = (state, result, checksums)
    finally:
        for p in processes:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    failed = [p.exitcode for p in processes if p.exitcode]
    if failed:
        raise RuntimeError(f"a training process failed (exit codes {failed})")
    state, result, checksums = got[0]
    return torch.load(io.BytesIO(state), weights_only=True), result, checksums

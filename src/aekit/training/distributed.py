"""Several processes, one run: data-parallel work under ``torchrun`` (``torch.distributed``).

``torchrun`` starts one process per GPU (or per CPU worker) and tells each its place through the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, the rendezvous address). :func:`join`
reads it, opens the process group — NCCL between GPUs, gloo between CPU processes — with a
timeout, and gives the process its device (``cuda:LOCAL_RANK``, or the CPU). Outside torchrun
(or with one process) it is a world of one and nothing here costs anything.

Every process loads the same data and model and checks the same things; :meth:`Group.agree`
is where they compare notes, so a mistake any one of them finds ends all of them with one
message (from rank 0), never a hang. Only rank 0 writes files.
"""

from __future__ import annotations

import atexit
import datetime
import os
import re
import signal
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist

from ..devices import pick_device
from ..errors import AekitError

DEFAULT_TIMEOUT_S = 600  # a collective that waits longer (a peer hung or died) is an error
MAX_TIMEOUT_S = 7 * 24 * 3600  # a week: longer is a typo (and beyond what timedelta takes)


class AgreedError(AekitError):
    """A failure every rank learnt of at once (:meth:`Group.agree`): rank 0 says it."""


class QuietExit(AgreedError):
    """A failure another rank reports: this rank exits non-zero without a message of its own."""


def farewell() -> None:
    """The last meeting of a group that stops on an agreed error: the others wait until rank 0
    has said why (torchrun ends every process as soon as one exits)."""
    if dist.is_initialized():
        dist.barrier()


@dataclass(frozen=True)
class Group:
    """This process's place in the run: ``rank`` of ``world`` processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes the run's files (rank 0)."""
        return self.rank == 0

    @property
    def on(self) -> bool:
        """Whether there are other processes to talk to."""
        return self.world > 1

    def agree(self, error: AekitError | None = None) -> None:
        """Wait for every rank; when any of them brings an error, all stop: rank 0 raises it
        (naming the rank it came from), the others exit quietly."""
        if not self.on:
            if error is not None:
                raise error
            return
        notes: list[str | None] = [None] * self.world
        dist.all_gather_object(notes, None if error is None else str(error))
        failed = [(r, note) for r, note in enumerate(notes) if note is not None]
        if not failed:
            return
        rank, note = failed[0]
        if self.main:
            raise AgreedError(note if rank == 0 else f"rank {rank}: {note}") from error
        raise QuietExit(note) from error

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (every rank gets the same answer)."""
        if not self.on:
            return flag
        t = torch.tensor([int(flag)], device=self.device_of_collectives())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over the ranks (float64 on the wire, so sums of many images stay
        exact enough), as float32 on ``values``' device."""
        if not self.on:
            return values
        t = values.detach().double().to(self.device_of_collectives())
        dist.all_reduce(t)
        return t.to(values.device, torch.float32)

    def gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Every rank's ``rows`` (N_r, ...), concatenated in rank order, on every rank."""
        if not self.on:
            return rows
        dev = self.device_of_collectives()
        sizes = [torch.zeros(1, dtype=torch.long, device=dev) for _ in range(self.world)]
        dist.all_gather(sizes, torch.tensor([len(rows)], device=dev))
        counts = [int(s.item()) for s in sizes]
        padded = torch.zeros((max(counts), *rows.shape[1:]), dtype=rows.dtype, device=dev)
        padded[: len(rows)] = rows
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)]).to(rows.device)

    def gather_objects(self, obj: object) -> list[object]:
        """Every rank's ``obj``, in rank order."""
        if not self.on:
            return [obj]
        out: list[object] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def shard(self, n: int) -> slice:
        """This rank's contiguous part of ``n`` items (parts differ by at most one item)."""
        per, extra = divmod(n, self.world)
        start = self.rank * per + min(self.rank, extra)
        return slice(start, start + per + (self.rank < extra))

    def device_of_collectives(self) -> torch.device:
        """NCCL moves CUDA tensors; gloo moves CPU ones."""
        if self.on and dist.get_backend() == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


SINGLE = Group()


def launched() -> bool:
    """Whether torchrun (or a launcher like it) started this process as one of several."""
    return _env_int("WORLD_SIZE", 1) > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise AekitError(
            f"the environment variable {name}={raw!r} is not a whole number: start the run "
            "with torchrun, which sets it"
        ) from None


def timeout_s() -> float:
    """Seconds a collective may wait for the others ($AEKIT_DIST_TIMEOUT, default 600)."""
    raw = os.environ.get("AEKIT_DIST_TIMEOUT", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_TIMEOUT_S:  # also refuses nan and inf
        raise AekitError(
            f"AEKIT_DIST_TIMEOUT={raw!r} is not a number of seconds from 1 to {MAX_TIMEOUT_S}: "
            "set it to, say, 600, or unset it"
        )
    return value


def join(device_name: str = "auto") -> tuple[Group, torch.device]:
    """This process's group and device. Under torchrun with several processes it opens the
    process group (once; a group the caller opened is reused): NCCL when the processes run on
    GPUs, each on ``cuda:LOCAL_RANK``; gloo on CPUs."""
    if not launched():
        return SINGLE, pick_device(device_name)
    local = _env_int("LOCAL_RANK", 0)
    device = pick_device(device_name)
    if device.type == "mps":
        raise AekitError(
            "several processes cannot share an Apple GPU (mps): run one process, or pass "
            "--device cpu to train on the CPUs with gloo"
        )
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local >= count:
            raise AekitError(
                f"LOCAL_RANK {local} has no GPU of its own: this machine has {count}; start "
                f"at most {count} processes per node (torchrun --nproc_per_node {count})"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        signal.signal(signal.SIGTERM, _stopped)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s()))
        atexit.register(_leave)
    return Group(dist.get_rank(), dist.get_world_size(), local), device


def _stopped(signum: int, frame: object) -> None:
    """torchrun ends the others with SIGTERM as soon as one process fails: say so in one line
    (files are written whole or not at all, so the stop loses no finished checkpoint)."""
    stop_listening()  # once: a second SIGTERM while this one is handled ends the process
    raise AekitError(
        "stopped by torchrun because another process of the group failed (its message and "
        "torchrun's report below say why)"
    )


def stop_listening() -> None:
    """SIGTERM ends the process again, silently (once its command has finished or failed)."""
    if signal.getsignal(signal.SIGTERM) is _stopped:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def connected() -> bool:
    """Whether this process has joined its torchrun group (errors before that are every
    rank's own, the same on each: rank 0 alone says them)."""
    return dist.is_initialized()


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def exit_process(code: int) -> NoReturn:
    """End the ``aekit`` command's process with exit status ``code``.

    A process of a torchrun group closes its group, flushes its output and ends with
    ``os._exit``, skipping interpreter shutdown: there gloo's worker threads can still be
    dropping a finished all_gather's tensors, which needs the GIL of an interpreter that is
    going away, and the process aborts — "terminate called without an active exception",
    SIGABRT (core dump: ``AsyncAllgatherWork::~AsyncAllgatherWork`` in
    ``ProcessGroupGloo::runLoop`` during ``Py_FinalizeEx``). Seen in CI; here 5 aborts in 63
    runs with rank 0 held back 5 s at the end, none in 40 since. ``destroy_process_group``
    does not stop those threads once a DistributedDataParallel model has used the group
    (measured: they outlive it). Every file is written and closed by then (rank 0 writes whole
    files only)."""
    if dist.is_initialized():
        _leave()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main_process() -> bool:
    """Whether this process speaks for the run (rank 0, or the only process)."""
    return _env_int("RANK", 0) == 0 or not launched()


def rank_prefix() -> str:
    """ "rank N: " for messages of a rank other than 0 under torchrun, else ""."""
    rank = os.environ.get("RANK", "0").strip() or "0"
    return f"rank {rank}: " if launched() and rank != "0" else ""


# what gloo and NCCL say when the other end of a collective died or timed out (raised from
# inside DDP's backward as a plain RuntimeError)
PEER_WORDS = ("gloo", "nccl", "connection reset", "connection closed", "timed out", "timeout")


def peer_detail(error: BaseException) -> str:
    """The first sentence of what the backend said, without its source-file prefix."""
    text = re.sub(
        r"^\[[^\]]*\]\s*", "", str(error).strip().splitlines()[0] if str(error).strip() else ""
    )
    return text.split(". ")[0].rstrip(".") or type(error).__name__


def peer_failure(error: BaseException) -> bool:
    """Whether ``error`` means another process of the group died or stopped answering."""
    if isinstance(error, dist.DistError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and launched() and any(w in text for w in PEER_WORDS)

"""The ``train`` loop: one plain loop over epochs and steps, with the run folder, the time
limit, the guard against spikes, checkpoints and resume.

What a step computes is :mod:`aekit.training.step`; what it trains on,
:mod:`aekit.training.training_data`; what each epoch reports, :mod:`aekit.training.report`.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..data.warn import warn
from ..errors import AekitError
from ..files import folder_lock, remove_stale_temps
from ..models import Autoencoder
from . import card, distributed, fastpath, runs, tblog
from .distributed import SINGLE, Group, QuietExit
from .ema import Ema
from .guard import Diverged, Guard
from .init import load_init
from .report import epoch_line, epoch_row, save_samples
from .runs import RunConfig
from .schedules import lr_factor
from .step import Objective, evaluate, step, warmup_fraction
from .training_data import (
    TrainingData,
    check_ranks,
    fit_model_config,
    load_textures,
    load_training_data,
)

PROBE_IMAGES = 64  # at most, in the guard's fixed batch (one forward pass per check)


def _probe(
    model: Autoencoder, data: TrainingData, obj: Objective, bs: int, device: torch.device,
    seed: int,
) -> Callable[[], torch.Tensor]:  # fmt: skip
    """The guard's fixed batch: the loss of the first held-out images (cut to the training
    size), with the same noise each time, under the model's current weights."""
    _, h, w = data.shape
    images = data.held.images[: min(bs, PROBE_IMAGES)]
    top, left = max(0, (images.shape[2] - h) // 2), max(0, (images.shape[3] - w) // 2)
    images = images[:, :, top : top + h, left : left + w].to(device)

    @torch.no_grad()
    def loss() -> torch.Tensor:
        gen = torch.Generator(device).manual_seed(seed + 104729)
        return step(model, images, obj, gen, training=False).loss

    return loss


def _diverge(epoch: int, message: str) -> None:
    raise Diverged(f"training diverged: {message}")


def _check(guard: Guard, epoch: int, run: Path, group: Group, ema: Ema | None) -> None:
    """The guard's check; when it undid a spike, the weights' average starts again from the
    weights it went back to."""
    restores = guard.restores
    _guarded(guard.check, epoch, run=run, group=group)
    if ema is not None and guard.restores != restores:
        ema.reset()


def _guarded(check: Callable[..., Any], epoch: int, *args: Any, run: Path, group: Group) -> Any:
    """``check(epoch, *args)`` of the guard; a divergence stops the run with one line saying
    what is kept (every rank sees the same summed loss: rank 0 says so)."""
    try:
        return check(epoch, *args)
    except Diverged as e:
        kept = (
            f"the last good checkpoint (epoch {epoch - 1}) is kept in {run}"
            if epoch > 1
            else "no epoch finished, so nothing was saved"
        )
        message = f"{e}; {kept}. Try a lower --lr (or a smaller noise / sparsity weight)"
        raise AekitError(message) if group.main else QuietExit(message) from None


def train(
    cfg: RunConfig, out: str | Path, resume: bool = False, progress: bool | None = None
) -> Path:
    """Train ``cfg`` into the run folder ``out`` (or continue it with ``resume``); returns it.

    ``progress=None`` shows a progress bar only when stderr is a terminal. The folder is held
    as the run's one writer until training ends (another ``train`` into it is refused).

    Under ``torchrun`` with several processes it trains data-parallel: each rank takes its part
    of every batch of ``batch_size`` x ranks images, gradients are averaged across ranks
    (DistributedDataParallel), and rank 0 alone writes the folder.
    """
    if not str(out).strip():
        raise AekitError("--out is empty: name the run folder to create")
    group, device = distributed.join(cfg.train.device)
    with contextlib.ExitStack() as held:
        error, run = None, Path(out)
        try:
            if group.main:
                held.enter_context(folder_lock(run, "a training run"))
            _open_run(run, resume, clean=group.main)
        except AekitError as e:
            error = e
        group.agree(error)
        return _train(cfg, run, resume, progress, group, device)


def _train(
    cfg: RunConfig,
    run: Path,
    resume: bool,
    progress: bool | None,
    group: Group,
    device: torch.device,
) -> Path:
    error = None
    try:
        data = load_training_data(cfg)
        cfg = fit_model_config(cfg, data)
        check_ranks(data, cfg, group)
        obj = Objective.from_config(cfg, device)
        obj.textures = load_textures(cfg, device)
        torch.manual_seed(cfg.train.seed)
        model = Autoencoder(cfg.model).to(device, memory_format=fastpath.memory_format(device))
        if not resume and cfg.train.init:  # fine-tuning: the weights of a trained model
            load_init(model, cfg.train.init)
        elif not resume:
            model.start_at_mean(data.channel_mean(model.config.arch).to(device))
        opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
        cpu_gen = torch.Generator().manual_seed(cfg.train.seed)  # the same order on every rank
        dev_gen = torch.Generator(device).manual_seed(cfg.train.seed + 1 + 1009 * group.rank)
        start, clock, guard_state = 0, Clock(cfg.train.time_limit), {}
        ema = Ema(model, cfg.train.ema) if cfg.train.ema else None
        if resume:
            start, clock.before, guard_state = _restore(
                run, cfg, model, opt, cpu_gen, dev_gen, group, ema
            )
        if cfg.train.log == "tensorboard":
            tblog.check_available()
    except AekitError as e:
        error = e
    group.agree(error)
    if group.main:
        if resume:
            runs.keep_metrics(run, start)
        else:
            (run / runs.METRICS).unlink(missing_ok=True)  # from a run that never finished
        runs.save_config(run, cfg)  # on resume: the new number of epochs
    log = tblog.EpochLog(run, start + 1) if group.main and cfg.train.log else None
    data.to_device(device)
    held_images = data.held.images[:8]
    bs, steps = cfg.train.batch_size, data.steps(cfg.train.batch_size, group)
    net = model
    if group.on:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    fwd = fastpath.training_forward(net, device, cfg.train.compile)
    probe = _probe(model, data, obj, bs, device, cfg.train.seed)
    guard = Guard(model, opt, device, steps, probe, group, guard_state)
    total_steps = cfg.train.epochs * steps
    epoch = start
    clock.start()  # the budget counts training, not loading the data or building the model
    # a fresh run trains at least one step, however short its budget; a resumed one whose
    # budget is spent only finishes saving
    while epoch < cfg.train.epochs and not (clock.spent() and (resume or epoch > start)):
        epoch += 1
        model.train()
        t0 = time.perf_counter()
        seen, cut = 0, False
        bar = tqdm(
            total=data.per_epoch(bs, group),
            unit="img",
            desc=f"epoch {epoch}" + ("" if clock.limit else f"/{cfg.train.epochs}"),
            disable=not group.main or (None if progress is None else not progress),
            leave=False,
        )
        for i, batch in enumerate(data.batches(bs, cpu_gen, group)):
            batch = batch.to(device, non_blocking=True)
            warm = warmup_fraction(epoch, i, steps, obj.kl_warmup)
            done = clock.fraction() if clock.limit else ((epoch - 1) * steps + i) / total_steps
            for group_ in opt.param_groups:
                group_["lr"] = cfg.train.lr * lr_factor(cfg.train.schedule, done) * guard.lr_scale
            res = step(model, batch, obj, dev_gen, training=True, warm=warm,
                       forward=fwd if len(batch) == bs else net)  # fmt: skip
            opt.zero_grad(set_to_none=True)
            res.loss.backward()
            guard.clip()
            opt.step()
            if ema is not None:
                ema.update()
            guard.add(res.loss, len(batch))
            seen += len(batch)
            bar.update(len(batch) * group.world)
            if not bar.disable and i % 20 == 0:  # a host sync, only when someone watches
                bar.set_postfix(loss=f"{guard.running():.4f}")
            if guard.due():
                _check(guard, epoch, run, group, ema)
            # the time limit (rank 0's clock, so all ranks stop at the same step): this epoch
            # ends here, saved as any other
            if clock.limit is not None and group.any(clock.spent() and group.main):
                cut = True
                break
        bar.close()
        # the steps since the last check
        _check(guard, epoch, run, group, ema)
        taken = guard.take_epoch()
        if taken is None:  # every step of it was undone: trained again at the lower rate
            if cut:
                message = f"no step of epoch {epoch} could be kept within the time limit"
                _guarded(_diverge, epoch, message, run=run, group=group)
            epoch -= 1
            continue
        train_loss, guarded = taken
        seen = int(group.sum(torch.tensor(float(seen), device=device)).item())
        seconds = time.perf_counter() - t0
        kept = model if ema is None else ema.model  # what is evaluated and saved
        ev = evaluate(kept, data.held.images, obj, seed=cfg.train.seed, group=group,
                      references=data.references)  # fmt: skip
        row = epoch_row(epoch, train_loss, seconds, seen, ev)
        row.update(guarded)
        if group.on:
            row["ranks"] = group.world
        if cut:
            row["stopped"] = f"time limit of {clock.limit:g} minutes"
        device_rngs = group.gather_objects(dev_gen.get_state())
        if group.main:
            runs.append_metrics(run, row)
            if progress is not False:
                line = epoch_line(row, cfg.train.epochs, clock.limit, clock.seconds() / 60)
                print(line, file=sys.stderr, flush=True)
            samples = save_samples(run, epoch, kept, held_images, obj)
            runs.save_checkpoint(run, {
                "model": runs.state_dict(model), "optimizer": opt.state_dict(), "epoch": epoch,
                "cpu_rng": cpu_gen.get_state(), "device_rng": dev_gen.get_state(),
                "device_rngs": device_rngs, "world_size": group.world,
                "trained_seconds": clock.seconds(),
                "guard": guard.state(), **({} if ema is None else {"ema": ema.state_dict()}),
            })  # fmt: skip
            runs.save_weights(run, kept, epoch)  # after the checkpoint: a kill between resumes
            if log is not None:
                log.epoch(row, samples)
            card.write_card(run, cfg, runs.read_metrics(run), samples)
        group.agree()  # the others wait while rank 0 writes: a checkpoint is whole for all
    if group.main:
        if epoch == start:  # resumed only to finish what a kill interrupted
            runs.save_weights(run, model if ema is None else ema.model, start)
        from ..viz import loss_plot

        loss_plot(runs.read_metrics(run), run / runs.LOSS_PLOT)
    if log is not None:
        log.close()
    return run


class Clock:
    """Training time against ``--time-limit`` (minutes, or None): ``before`` seconds from earlier
    sessions of the run (its checkpoint) plus the time since this one started."""

    def __init__(self, limit: float | None) -> None:
        self.limit, self.before, self.t0 = limit, 0.0, time.perf_counter()

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.t0

    def fraction(self) -> float:
        """How much of the budget is spent (0 without a limit)."""
        return self.seconds() / (60 * self.limit) if self.limit else 0.0

    def spent(self) -> bool:
        return self.limit is not None and self.fraction() >= 1.0


def _open_run(out: str | Path, resume: bool, clean: bool = True) -> Path:
    """The run folder to write, checked before any work: never an empty path (the current
    folder), never a folder holding another run unless resuming it; leftovers of a killed
    writer are removed (``clean``: by the one process that writes)."""
    run = Path(out)
    if not resume:
        held = [name for name in (runs.CHECKPOINT, runs.WEIGHTS) if (run / name).exists()]
        if held:
            raise AekitError(
                f"{run} already holds a run ({held[0]}): pass --resume to continue it, or "
                "choose another --out"
                if held[0] == runs.CHECKPOINT
                else f"{run} already holds a trained model ({runs.WEIGHTS}) that has no "
                "checkpoint to resume from: choose another --out"
            )
    for folder in (run, run / "samples") if clean else ():
        remove_stale_temps(folder)
    if clean:  # found now, not after an epoch of training
        try:
            tempfile.TemporaryFile(dir=run).close()
        except OSError as exc:
            raise AekitError(
                f"cannot write in {run} ({exc.strerror or exc}): make it writable, or choose "
                "another --out"
            ) from exc
    return run


def _restore(
    run: Path,
    cfg: RunConfig,
    model: Autoencoder,
    opt: torch.optim.Optimizer,
    cpu_gen: torch.Generator,
    dev_gen: torch.Generator,
    group: Group = SINGLE,
    ema: Ema | None = None,
) -> tuple[int, float, dict[str, Any]]:
    """Load the checkpoint's weights, optimizer and RNG states; returns its epoch, the
    seconds trained so far and the guard's state (its learning-rate scale). Each rank takes its
    own noise generator's state; resumed by another number of processes, the run goes on (a
    warning says what changes)."""
    ckpt = runs.load_checkpoint(run, cfg.train.epochs)
    try:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        cpu_gen.set_state(ckpt["cpu_rng"])
        ranks = int(ckpt.get("world_size", 1))
        states = ckpt.get("device_rngs") or [ckpt["device_rng"]]
        if ranks != group.world and group.main:
            bs = cfg.train.batch_size
            warn(
                f"{run} was trained by {ranks} process(es) and now resumes with {group.world}: "
                f"each step now averages {bs * group.world} images instead of {bs * ranks} "
                f"(--batch-size {bs} per process, the same --lr), and the run is no longer "
                "the one an unbroken run would give"
            )
        state = states[group.rank] if ranks == group.world else None
        if state is not None and len(state) == len(dev_gen.get_state()):
            dev_gen.set_state(state)
        # else the run moved to another kind of device or number of processes: the noise
        # continues from the run's seed, and the run is no longer bit-for-bit the same
        guard = dict(ckpt.get("guard") or {})
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AekitError(
            f"{run / runs.CHECKPOINT} does not fit {run / runs.CONFIG} ({first}): it is "
            "another run's or damaged; start the run again"
        ) from e
    return ckpt["epoch"], float(ckpt.get("trained_seconds", 0.0)), guard

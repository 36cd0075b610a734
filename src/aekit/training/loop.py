"""Training: one ``step`` shared by training and evaluation, ``evaluate``, and the ``train`` loop.

Data stays uint8 (on the training device when it fits); each batch is scaled, augmented and
corrupted there, in batched tensor ops. Losses are summed on the device and read once per epoch.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from . import card, distributed, fastpath, runs, tblog
from .data import ImageSet, augment
from .data.classes import class_names
from .data.folder import FolderFiles, scan_folder
from .data.npzarrays import memmap_threshold
from .data.photos import (
    HELD_SIDE,
    PhotoSet,
    check_patch_size,
    patch_batches,
    patches_per_epoch,
)
from .data.sources import parse_source
from .data.warn import warn
from .data.wds import Stream
from .devices import bf16_native
from .distributed import SINGLE, Group, QuietExit
from .errors import AekitError
from .files import folder_lock, remove_stale_temps
from .guard import Diverged, Guard
from .metrics import mse_per_image, psnr, ssim_per_image
from .models import Autoencoder, get_family, to_model_scale, to_unit_scale
from .objectives import (
    Noise,
    Sparsity,
    active_mask,
    corrupt,
    nll_per_image,
    parse_noise,
    parse_sparsity,
    reconstruction_loss,
    sparsity_penalty,
)
from .runs import RunConfig
from .schedules import lr_factor
from .splits import (
    STREAM_WORKERS,
    folder_stream_split,
    load_photo_splits,
    stream_split,
    training_split,
)

DEVICE_RESIDENT_BYTES = 8 * 2**30  # larger (memory-mapped) sets stay on the host, streamed
PROBE_IMAGES = 64  # at most, in the guard's fixed batch (one forward pass per check)


@dataclass
class Objective:
    """What a step computes: the loss, the input corruption, the sparsity term, augmentation."""

    loss: str
    noise: Noise | None = None
    sparsity: Sparsity | None = None
    augment: tuple[str, ...] = ()
    amp: bool = False  # bf16 autocast for the model's forward pass
    beta: float = 1.0  # the weight of a family's KL term
    kl_warmup: int = 0  # epochs over which that weight rises from 0 to beta

    def term_weight(self, name: str, warm: float) -> float:
        """The weight of a family's loss term ``name``; ``warm``: the KL warm-up's fraction."""
        return self.beta * warm if name == "kl" else 1.0

    @classmethod
    def from_config(cls, cfg: RunConfig, device: torch.device | None = None) -> Objective:
        """The objective of a run; bf16 autocast only on a ``device`` that runs it natively."""
        loss = cfg.train.loss or get_family(cfg.model.arch).default_loss
        amp = cfg.train.amp and device is not None and bf16_native(device)
        noise, sparsity = parse_noise(cfg.train.noise), parse_sparsity(cfg.train.sparsity)
        return cls(loss, noise, sparsity, cfg.data.augment_ops(), amp, cfg.train.beta,
                   cfg.train.kl_warmup)  # fmt: skip


@dataclass
class StepOut:
    loss: torch.Tensor  # scalar, float32
    clean: torch.Tensor  # (B, C, H, W) target, model scale
    inputs: torch.Tensor  # what the model saw (corrupted when denoising)
    latent: torch.Tensor  # (B, D)
    output: torch.Tensor  # (B, C, H, W) reconstruction, model scale
    terms: dict[str, torch.Tensor]  # the family's own loss terms, unweighted


def warmup_fraction(epoch: int, i: int, steps: int, warmup: int) -> float:
    """How far the KL warm-up is at step ``i`` (from 0) of ``epoch`` (from 1) of ``steps``
    steps: rises linearly to 1 over ``warmup`` epochs (1 at once without warm-up)."""
    return 1.0 if warmup <= 0 else min(1.0, ((epoch - 1) * steps + i + 1) / (warmup * steps))


def step(
    model: Autoencoder,
    batch: torch.Tensor,
    obj: Objective,
    gen: torch.Generator | None,
    training: bool,
    noisy: bool = True,
    sample: bool | None = None,
    warm: float = 1.0,
    forward: Callable[..., Any] | None = None,
) -> StepOut:
    """Scale a uint8 batch, augment (training) and corrupt it, reconstruct, and score it.

    A family that samples its code (a vae) draws from ``gen`` when ``sample`` (default: when
    ``training``), else decodes its posterior mean; ``warm`` scales its KL term (warm-up).
    ``forward`` runs the model in training: the compiled and/or DistributedDataParallel
    wrapper of ``model`` (default ``model`` itself).
    """
    vr = model.value_range
    x = to_model_scale(batch, model.config.arch)
    if training and obj.augment:
        x = augment.augment_batch(x, obj.augment, gen)
    inputs = corrupt(x, obj.noise, vr, gen) if obj.noise and noisy else x
    eps = None
    if model.generative and (training if sample is None else sample):
        eps = torch.randn(len(x), model.config.latent_dim, generator=gen, device=x.device)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=obj.amp):
        out = (model if forward is None else forward)(inputs, eps)
    loss = reconstruction_loss(out.recon, x, obj.loss, vr)
    loss = loss + sparsity_penalty(out.code, obj.sparsity)
    for name, term in out.terms.items():  # the family's own terms (KL, ...)
        loss = loss + obj.term_weight(name, warm) * term.float()
    return StepOut(loss, x, inputs, out.code, out.recon, out.terms)


@torch.no_grad()
def evaluate(
    model: Autoencoder,
    images: torch.Tensor,
    obj: Objective,
    batch_size: int = 256,
    seed: int = 0,
    with_ssim: bool = False,
    group: Group = SINGLE,
) -> dict[str, Any]:
    """Held-out numbers on the [0, 1] scale; the corruption uses a fixed seed, so they compare.
    The model runs under bf16 autocast when ``obj.amp`` (within 1e-3 of float32: ``fastpath``).

    In a ``group`` of several processes each scores its share of ``images`` and the sums are
    added up, so every rank returns the numbers of the whole set.
    """
    model.eval()
    n = len(images)
    shared = group.on and n >= group.world
    if shared:
        images = images[group.shard(n)]
    device = next(model.parameters()).device
    gen = torch.Generator(device).manual_seed(seed + 7919)
    sums: dict[str, torch.Tensor] = {}
    ever_active = None
    spread = Spread()

    def add(key: str, value: torch.Tensor) -> None:
        sums[key] = sums.get(key, 0) + value.float().sum()

    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device, non_blocking=True)
        b = len(batch)
        clean = step(model, batch, obj, gen, training=False, noisy=False)
        target = to_unit_scale(clean.clean, model.config.arch)
        add("mse", mse_per_image(to_unit_scale(clean.output, model.config.arch), target))
        spread.add(to_unit_scale(clean.output, model.config.arch), target)
        if with_ssim:
            add("ssim", ssim_per_image(to_unit_scale(clean.output, model.config.arch), target))
        scored = clean
        if obj.noise:
            scored = step(model, batch, obj, gen, training=False)
            add("noisy_mse", mse_per_image(to_unit_scale(scored.inputs, model.config.arch), target))
            add(
                "denoised_mse",
                mse_per_image(to_unit_scale(scored.output, model.config.arch), target),
            )
        add("loss", scored.loss * b)
        if "kl" in clean.terms:  # a vae: KL and the negative ELBO of one posterior draw
            pixels = clean.clean[0].numel()
            add("kl", clean.terms["kl"] * pixels * b)
            drawn = step(model, batch, obj, gen, training=False, noisy=False, sample=True)
            nll = nll_per_image(drawn.output, drawn.clean, obj.loss, model.value_range)
            add("nelbo", nll + drawn.terms["kl"] * pixels)
        if obj.sparsity:
            active = active_mask(clean.latent, obj.sparsity)
            add("active", active.float().mean(dim=1))
            ever_active = active.any(0) if ever_active is None else ever_active | active.any(0)
    keys = sorted(sums)
    totals = torch.stack([sums[k] for k in keys])
    if shared:
        totals = group.sum(totals)
        if ever_active is not None:
            ever_active = group.sum(ever_active.float()) > 0
    # the one host sync of an evaluation
    means = dict(zip(keys, (v / n for v in totals.tolist()), strict=True))
    result = {"count": n, "loss": means["loss"], "mse": means["mse"], "psnr": psnr(means["mse"])}
    if spread.collapsed(group if shared else SINGLE):
        result["collapsed"] = True
    if with_ssim:
        result["ssim"] = means["ssim"]
    if obj.noise:
        result["noisy_psnr"] = psnr(means["noisy_mse"])
        result["denoised_psnr"] = psnr(means["denoised_mse"])
    if "kl" in means:
        result["kl"], result["nelbo"] = means["kl"], means["nelbo"]
    if obj.sparsity and ever_active is not None:
        result["active_fraction"] = means["active"]
        result["dead_units"] = int((~ever_active).sum().item())
    return result


class Spread:
    """How much the reconstructions of the held-out images differ from one another, against
    how much the images do: a model whose output no longer depends on its input (the same
    picture for every image) has collapsed."""

    LEVEL = 1 / 255  # less spread than one 8-bit level, at every pixel, is no spread at all

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None

    def add(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """One batch of [0, 1] reconstructions and images, (B, C, H, W) each."""
        # about mid-grey, so that float32 sums of squares keep their precision
        o, t = output.float() - 0.5, target.float() - 0.5
        batch = torch.stack([o.sum(0), o.square().sum(0), t.sum(0), t.square().sum(0)])
        count = torch.full_like(batch[:1], float(len(output)))
        batch = torch.cat([batch, count])
        self.sums = batch if self.sums is None else self.sums + batch

    def collapsed(self, group: Group = SINGLE) -> bool:
        if self.sums is None:
            return False
        sums = group.sum(self.sums) if group.on else self.sums
        n = sums[4]
        if float(n.min()) < 2:
            return False

        def std(s: torch.Tensor, sq: torch.Tensor) -> float:
            return float((sq / n - (s / n).square()).clamp_min(0).sqrt().max())

        return std(sums[0], sums[1]) < self.LEVEL <= std(sums[2], sums[3])


def _epoch_row(epoch: int, train_loss: float, seconds: float, n: int, ev: dict) -> dict[str, Any]:
    row = {
        "epoch": epoch,
        "train_loss": train_loss,
        "test_loss": ev["loss"],
        "test_mse": ev["mse"],
        "test_psnr": ev["psnr"],
        "seconds": round(seconds, 3),
        "images_per_s": round(n / seconds, 1),
    }
    keys = ("noisy_psnr", "denoised_psnr", "kl", "nelbo", "active_fraction", "dead_units",
            "collapsed")  # fmt: skip
    row.update({k: ev[k] for k in keys if k in ev})
    return row


def epoch_line(
    row: dict[str, Any], epochs: int, limit: float | None = None, minutes: float = 0.0
) -> str:
    """The line training prints at each epoch's end: its numbers, and what went wrong.
    ``limit``: the run's --time-limit, of which ``minutes`` are spent."""
    of = f" ({minutes:.1f} of {limit:g} min)" if limit else f"/{epochs}"
    parts = [f"train loss {row['train_loss']:.5g}", f"held-out PSNR {row['test_psnr']:.2f} dB"]
    if "denoised_psnr" in row:
        parts.append(f"denoised {row['noisy_psnr']:.2f} -> {row['denoised_psnr']:.2f} dB")
    parts.append(f"{row['images_per_s']:.0f} images/s")
    for spike in row.get("spikes", []):
        parts.append(f"loss spike at step {spike['step']} undone (back to step "
                     f"{spike['back_to_step']}, learning rate x{spike['lr_scale']:g})")  # fmt: skip
    if row.get("collapsed"):
        parts.append("COLLAPSED: every held-out image gets the same output (try another --lr "
                     "or --arch)")  # fmt: skip
    if row.get("stopped"):
        parts.append(f"stopped at the {row['stopped']}")
    return f"epoch {row['epoch']}{of}: " + ", ".join(parts)


def _save_samples(
    run: Path, epoch: int, model: Autoencoder, images: torch.Tensor, obj: Objective
) -> Path:
    from .viz import image_rows

    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        gen = torch.Generator(device).manual_seed(1)
        out = step(model, images.to(device), obj, gen, training=False)
    arch = model.config.arch
    rows = [("original", to_unit_scale(out.clean, arch))]
    if obj.noise:
        rows.append(("noisy input", to_unit_scale(out.inputs, arch)))
    rows.append(("reconstruction", to_unit_scale(out.output, arch)))
    path = run / "samples" / f"epoch_{epoch:03d}.png"
    image_rows(rows, path, title=f"epoch {epoch}")
    return path


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
        data = _load_data(cfg)
        cfg = _fit_model_config(cfg, data)
        _check_ranks(data, cfg, group)
        obj = Objective.from_config(cfg, device)
        torch.manual_seed(cfg.train.seed)
        model = Autoencoder(cfg.model).to(device, memory_format=fastpath.memory_format(device))
        if not resume:
            model.start_at_mean(data.channel_mean(model.config.arch).to(device))
        opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
        cpu_gen = torch.Generator().manual_seed(cfg.train.seed)  # the same order on every rank
        dev_gen = torch.Generator(device).manual_seed(cfg.train.seed + 1 + 1009 * group.rank)
        start, clock, guard_state = 0, Clock(cfg.train.time_limit), {}
        if resume:
            start, clock.before, guard_state = _restore(
                run, cfg, model, opt, cpu_gen, dev_gen, group
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
            guard.add(res.loss, len(batch))
            seen += len(batch)
            bar.update(len(batch) * group.world)
            if not bar.disable and i % 20 == 0:  # a host sync, only when someone watches
                bar.set_postfix(loss=f"{guard.running():.4f}")
            if guard.due():
                _guarded(guard.check, epoch, run=run, group=group)
            # the time limit (rank 0's clock, so all ranks stop at the same step): this epoch
            # ends here, saved as any other
            if clock.limit is not None and group.any(clock.spent() and group.main):
                cut = True
                break
        bar.close()
        # the steps since the last check
        _guarded(guard.check, epoch, run=run, group=group)
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
        ev = evaluate(model, data.held.images, obj, seed=cfg.train.seed, group=group)
        row = _epoch_row(epoch, train_loss, seconds, seen, ev)
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
            samples = _save_samples(run, epoch, model, held_images, obj)
            runs.save_checkpoint(run, {
                "model": runs.state_dict(model), "optimizer": opt.state_dict(), "epoch": epoch,
                "cpu_rng": cpu_gen.get_state(), "device_rng": dev_gen.get_state(),
                "device_rngs": device_rngs, "world_size": group.world,
                "trained_seconds": clock.seconds(),
                "guard": guard.state(),
            })  # fmt: skip
            runs.save_weights(run, model, epoch)  # after the checkpoint: a kill between resumes
            if log is not None:
                log.epoch(row, samples)
            card.write_card(run, cfg, runs.read_metrics(run), samples)
        group.agree()  # the others wait while rank 0 writes: a checkpoint is whole for all
    if group.main:
        if epoch == start:  # resumed only to finish what a kill interrupted
            runs.save_weights(run, model, start)
        from .viz import loss_plot

        loss_plot(runs.read_metrics(run), run / runs.LOSS_PLOT)
    if log is not None:
        log.close()
    return run


def _check_ranks(data: TrainingData, cfg: RunConfig, group: Group) -> None:
    """Refuse more processes than there are images to share out (each needs one per step),
    or than a streamed split has shards (each process reads whole shards)."""
    shards = None if data.stream is None else len(data.stream.shards.urls)
    if group.on and shards is not None and shards < group.world:
        raise AekitError(
            f"{cfg.data.source} has {shards} shard(s) for {group.world} processes: each process "
            f"reads whole shards; start at most {shards}, or pack the data into more shards "
            "(aekit data pack --shard-size)"
        )
    n = data.per_epoch(cfg.train.batch_size, group)
    if group.on and n < group.world:
        what = "patches" if data.photos is not None else "training images"
        raise AekitError(
            f"{group.world} processes share {n} {what} of {cfg.data.source}: every process "
            f"needs at least one; start at most {n} (torchrun --nproc_per_node), or use more data"
        )


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


@dataclass
class TrainingData:
    """What a run trains on: whole images, or random patches of photos (``--patch-size``); and
    the held-out images scored at each epoch's end."""

    held: ImageSet
    images: torch.Tensor | None = None  # uint8 (N, C, H, W), whole-image training
    rows: torch.Tensor | None = None  # the rows of ``images`` that train (None: all of them)
    photos: PhotoSet | None = None  # patch training
    stream: Stream | None = None  # a wds: split, streamed from its shards
    files: FolderFiles | None = None  # a folder too large to decode whole: read per batch
    patch_size: int = 0
    normal: list[str] | None = None  # the class names --classes kept

    def per_epoch(self, batch_size: int, group: Group = SINGLE) -> int:
        """Images (or patches) per epoch, over all ranks."""
        if self.stream is not None:
            return group.world * min(self.stream.count(r, group.world) for r in range(group.world))
        if self.photos is not None:
            return patches_per_epoch(self.photos, self.patch_size, batch_size * group.world)
        if self.rows is not None:
            return len(self.rows)
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of what the model trains on."""
        if self.photos is not None:
            return self.photos.channels, self.patch_size, self.patch_size
        if self.stream is not None:
            return self.stream.shape
        if self.files is not None:
            w, h = self.files.size_wh
            return (1 if self.files.gray else 3), h, w
        _, c, h, w = self.images.shape
        return int(c), int(h), int(w)

    def channel_mean(self, arch: str, most: int = 4096) -> torch.Tensor:
        """(C,) the per-channel mean of (the first ``most``) held-out images on ``arch``'s
        scale: what the decoder starts at. The held-out images are in memory however the
        training split is read (whole, per batch from files, streamed from shards), so every
        way of reading one dataset starts the same run."""
        return to_model_scale(self.held.images[:most].float().mean(dim=(0, 2, 3)), arch)

    def steps(self, batch_size: int, group: Group = SINGLE) -> int:
        """Optimizer steps per epoch: batches of ``batch_size`` x ranks, less a last one too
        small to give every rank an image."""
        per_step = batch_size * group.world
        n = self.per_epoch(batch_size, group)
        return n // per_step + (n % per_step >= group.world)

    def to_device(self, device: torch.device) -> None:
        """Keep the uint8 training data on an accelerator when it fits."""
        if device.type == "cpu":
            return
        if self.photos is not None and self.photos.flat.numel() <= DEVICE_RESIDENT_BYTES:
            self.photos = self.photos.to(device)
        elif self.images is not None and self.images.numel() <= DEVICE_RESIDENT_BYTES:
            self.images = self.images.to(device)
            self.rows = None if self.rows is None else self.rows.to(device)

    def batches(
        self, batch_size: int, gen: torch.Generator, group: Group = SINGLE
    ) -> Iterator[torch.Tensor]:
        """One epoch of uint8 batches, in an order drawn from ``gen``: this rank's part of each
        batch of ``batch_size`` x ranks (the order is the same on every rank, the parts differ;
        a last batch with fewer images than ranks is left out)."""
        per_step = batch_size * group.world
        if self.stream is not None:  # the ranks' shards hold unequal counts: stop together
            it = self.stream.batches(batch_size, gen, group.rank, group.world)
            for _ in range(self.steps(batch_size, group)):
                batch = next(it, None)
                if group.any(batch is None):
                    return
                yield batch
            return
        if self.photos is not None:
            cut = patch_batches(self.photos, self.patch_size, per_step, gen, group.shard)
            yield from itertools.islice(cut, self.steps(batch_size, group))
            return
        n = self.per_epoch(batch_size, group)
        device = self.images.device if self.images is not None else torch.device("cpu")
        perm = torch.randperm(n, generator=gen).to(device)
        if self.rows is not None:
            perm = self.rows.to(perm.device)[perm]
        parts = (perm[s : s + per_step] for s in range(0, n - group.world + 1, per_step))
        parts = (chunk[group.shard(len(chunk))] for chunk in parts)
        if self.files is None:
            yield from (self.images[part] for part in parts)
            return
        from torch.utils.data import DataLoader

        from .data.folder import stack_present

        # decoded by DataLoader workers, two batches ahead of the model
        yield from DataLoader(self.files, batch_sampler=[p.tolist() for p in parts],
                              num_workers=STREAM_WORKERS, prefetch_factor=2,
                              collate_fn=stack_present)  # fmt: skip


def _load_data(cfg: RunConfig) -> TrainingData:
    if cfg.data.patch_size is None and parse_source(cfg.data.source).kind == "wds":
        held, stream = stream_split(cfg.data)
        normal = None if cfg.data.classes is None else class_names(held, cfg.data.classes)
        return TrainingData(held, stream=stream, normal=normal)
    src = parse_source(cfg.data.source)
    if cfg.data.patch_size is None and src.kind == "folder":
        scanned = scan_folder(Path(src.name), cfg.data.train_split, cfg.data.image_size)
        if scanned.decoded_bytes() > memmap_threshold():  # too big to decode into memory
            held, data, rows = folder_stream_split(cfg.data, scanned)
            normal = None if cfg.data.classes is None else class_names(held, cfg.data.classes)
            return TrainingData(held, files=data, rows=rows, normal=normal)
    if cfg.data.patch_size is None:
        train_set, rows, held = training_split(cfg.data)
        normal = None if cfg.data.classes is None else class_names(train_set, cfg.data.classes)
        return TrainingData(held, images=train_set.images, rows=rows, normal=normal)
    photos, held = load_photo_splits(cfg.data)
    size = cfg.data.patch_size
    check_patch_size(photos, size)
    # held-out photos are scored on their centres: the patch size for a fixed-size family,
    # else as much as all of them have (up to HELD_SIDE)
    side = min(HELD_SIDE, held.smallest()[0]) if get_family(cfg.model.arch).any_size else size
    check_patch_size(held, side)
    return TrainingData(held.centre_crops(side), photos=photos, patch_size=size)


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
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AekitError(
            f"{run / runs.CHECKPOINT} does not fit {run / runs.CONFIG} ({first}): it is "
            "another run's or damaged; start the run again"
        ) from e
    return ckpt["epoch"], float(ckpt.get("trained_seconds", 0.0)), guard


def _fit_model_config(cfg: RunConfig, data: TrainingData) -> RunConfig:
    """Take channels and size from the data (and k from topk sparsity); ``--classes`` is
    saved by class name (a folder's splits number their classes each on its own)."""
    c, h, w = data.shape
    if h != w:
        raise AekitError(
            f"{cfg.data.source} has {h}x{w} images; the models need square ones: "
            "pass --image-size to resize them"
        )
    sp = parse_sparsity(cfg.train.sparsity)
    topk = sp.k if sp and sp.kind == "topk" else None
    data_cfg = cfg.data
    if data.normal and not any("," in name for name in data.normal):
        data_cfg = replace(cfg.data, classes=",".join(data.normal))
    model = replace(cfg.model, in_channels=c, image_size=h, topk=topk)
    return replace(cfg, data=data_cfg, model=model)

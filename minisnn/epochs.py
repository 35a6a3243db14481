"""The training loop of ``python -m minisnn.train``: :func:`fit` reads forward -> loss -> backward
-> step per batch (:func:`train_step`) and evaluate -> save per epoch (:func:`end_epoch`).

Beside it: :func:`evaluate` (a split without dropout or weight change), the finite-state guard,
the dead-network check, the run's :class:`Clock` (throughput and the time left) and the
checkpoints an epoch writes (:class:`Saver`). Over several processes
(:mod:`minisnn.distributed`) each trains on its rows of every batch, the gradients and metrics
are summed over them, and rank 0 alone writes the run folder.
"""
from __future__ import annotations

import datetime as _dt
import math
import time
from dataclasses import asdict

from . import checkpoint
from .data.pipeline import batches
from .distributed import Solo
from .runs import EXIT_DEAD, EXIT_NONFINITE, SIGNALS, Interrupted, Meter, Stop, duration, progress_bar, write_failure

TIMING_BATCHES = 5    # the time estimate is printed after this many batches (the first is start-up)


def fit(net, opt, sched, data, config, run, metrics, start_epoch=0, meter=None, callbacks=(), quiet=False,
        cluster=None):
    """Train epochs ``start_epoch``.. ``config["epochs"]`` (continuing ``meter``, the running sums
    of a partly done epoch): per batch forward -> loss -> backward -> step, per epoch evaluate ->
    save. ``callbacks`` run as ``cb(net, epoch, batch)`` after each step. Raises Stop when the
    run cannot go on; on SIGINT/SIGTERM saves ``interrupted.h5`` and raises Interrupted.
    Over the processes of ``cluster`` (:mod:`minisnn.distributed`), each trains on its rows of
    every batch, the gradients and metrics are summed over them, and rank 0 alone (whose ``run``
    is the run folder; None elsewhere) saves."""
    cluster = cluster or Solo()
    epochs, per_epoch = int(config["epochs"]), data.train.num_samples
    resumed = start_epoch > 0 or (meter is not None and meter.batches > 0)
    clock = Clock(epochs, per_epoch, metrics["wall_seconds"], resumed)
    saver = Saver(net, opt, sched, config, run, metrics, data.standardize, cluster)
    epoch, meter = start_epoch, meter or Meter()
    try:
        for epoch in range(start_epoch, epochs):
            lr = sched.set_epoch(epoch)
            bar = progress_bar(per_epoch, f"epoch {epoch + 1}/{epochs}", quiet, done=meter.seen)
            t0 = time.perf_counter() - meter.seconds
            for b, x, y in batches(data.train, epoch, data.frames, start=meter.batches):
                started = time.perf_counter()
                sums = train_step(net, opt, x, y, config, epoch, b, cluster, data.frames)
                meter.add(*sums)
                for callback in callbacks:
                    callback(net, epoch, b)
                clock.add_batch(sums[2], time.perf_counter() - started, meter.seen, epoch)
                meter.seconds = time.perf_counter() - t0
                if bar is not None:
                    bar.update(meter.seen - bar.n)
                    bar.set_postfix(loss=f"{meter.loss / meter.seen:.4f}", acc=f"{100 * meter.correct / meter.seen:.2f}%",
                                    run_left=duration(clock.left(meter.seen, epoch)), refresh=False)
                cluster.check_signals()
            if bar is not None:
                bar.close()
            if not clock.told and clock.batches:
                clock.tell(meter.seen, epoch)
            net.backend.synchronize()
            end_epoch(net, data, config, metrics, saver, clock, epoch, lr, meter, t0, quiet, cluster)
            meter = Meter()
    except Interrupted as exc:
        SIGNALS.pending = None                                  # a second signal aborts this save
        saver.on_root(lambda: saver.save("interrupted.h5", epoch, partial=asdict(meter)))
        exc.saved = run / "interrupted.h5" if run is not None else None
        raise
    finally:
        metrics["wall_seconds"] = clock.wall()


def train_step(net, opt, x, y, config, epoch, b, cluster, frames):
    """Batch ``b`` of ``epoch``: forward -> loss (eq 3.8) -> backward -> step on this process's
    rows; returns the batch's sums (loss, correct, samples, spike rates) over every process."""
    total = int(y.shape[0])
    x, y = cluster.local(x, y, frames)                                                  # this process's rows
    out = net.forward(x, config["timesteps"], train=True, rng_key=(config["seed"], "train", epoch, b),
                      part=cluster.part(total))
    loss, error, sums = cluster.loss(out, y, config["loss_reduction"], net)             # loss (eq 3.8)
    if not math.isfinite(loss):
        raise Stop(f"the training loss became {loss} in epoch {epoch + 1}, batch {b + 1} "
                   f"(lr {opt.lr:g}); training stopped, lower --lr", EXIT_NONFINITE)
    net.backward(error)                                                                 # backward
    opt.step(cluster.gradients(net))                                                    # step
    check_finite_state(net, opt, f"in epoch {epoch + 1}, batch {b + 1}")
    return sums


def end_epoch(net, data, config, metrics, saver, clock, epoch, lr, meter, t0, quiet, cluster):
    """After the epoch's last batch: the dead-network check, evaluation of the validation and (every
    ``test_every`` epochs and after the last) test sets, the epoch's row of history, the best
    epoch, the checkpoints and metrics (rank 0), and the epoch's line on the terminal."""
    epochs, history, best = int(config["epochs"]), metrics["epochs"], metrics["best"]
    train = meter.result()
    check_alive(net, train["spike_rates"], history, epoch, saver.opt.lr)
    row = {"epoch": epoch + 1, "lr": lr, "train_loss": train["loss"], "train_accuracy": train["accuracy"],
           "val_loss": None, "val_accuracy": None, "test_loss": None, "test_accuracy": None,
           "train_seconds": meter.seconds, "train_images_per_s": train["samples"] / max(meter.seconds, 1e-9),
           "spike_rates": {"train": train["spike_rates"]}}
    te = time.perf_counter()
    for split, iterator in (("val", data.val), ("test", data.test)):                   # evaluate
        if iterator is None or (split == "test" and (epoch + 1) % config["test_every"] and epoch + 1 < epochs):
            continue
        r = evaluate_finite(net, iterator, config, split, epoch, data.frames, quiet, cluster,
                            f"after epoch {epoch + 1} (lr {saver.opt.lr:g})")
        row.update({f"{split}_loss": r["loss"], f"{split}_accuracy": r["accuracy"]})
        row["spike_rates"][split] = r["spike_rates"]
    clock.eval = time.perf_counter() - te
    row["epoch_seconds"] = time.perf_counter() - t0
    row["finished_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    history.append(row)
    improved = row["val_accuracy"] is not None and (best["val_accuracy"] is None
                                                    or row["val_accuracy"] > best["val_accuracy"])
    if improved:
        best.update(epoch=epoch + 1, val_accuracy=row["val_accuracy"], test_accuracy=row["test_accuracy"])
    metrics.update(epochs_completed=epoch + 1, wall_seconds=clock.wall())
    saver.on_root(lambda: saver.save_epoch(epoch + 1, improved))                        # save
    parts = [f"epoch {epoch + 1}/{epochs} lr {lr:.3g}", f"train loss {train['loss']:.4f} acc {100 * train['accuracy']:.2f}%"]
    parts += [f"{s} loss {row[s + '_loss']:.4f} acc {100 * row[s + '_accuracy']:.2f}%"
              for s in ("val", "test") if row[s + "_loss"] is not None]
    print(" | ".join(parts + [f"{row['epoch_seconds']:.1f}s, {row['train_images_per_s']:.1f} img/s, run left "
                              f"{duration(clock.left(0, epoch + 1))}"]), flush=True)


def evaluate_start(net, opt, sched, data, config, run, metrics, quiet=False, cluster=None):
    """A run of 0 epochs: the network as it starts (``--init-from``: a warm start, or an ANN
    converted into spikes) evaluated on the validation and test sets, recorded as
    ``metrics["start"]`` and saved as ``checkpoint.h5`` after epoch 0, which ``--resume`` trains
    further and ``minisnn.analyze`` reads."""
    start = {"spike_rates": {}}
    for split, iterator in (("val", data.val), ("test", data.test)):
        if iterator is not None:
            r = evaluate_finite(net, iterator, config, split, 0, data.frames, quiet, cluster, "at the start")
            start.update({f"{split}_loss": r["loss"], f"{split}_accuracy": r["accuracy"]})
            start["spike_rates"][split] = r["spike_rates"]
            metrics["wall_seconds"] += r["seconds"]
    metrics["start"] = start
    saver = Saver(net, opt, sched, config, run, metrics, data.standardize, cluster)
    saver.on_root(lambda: saver.save_epoch(0, improved=False))
    parts = [f"{s} loss {start[s + '_loss']:.4f} acc {100 * start[s + '_accuracy']:.2f}%"
             for s in ("val", "test") if s + "_loss" in start]
    print(" | ".join(["the start (0 epochs)", *parts]), flush=True)


# -------------------------------------------------------------------------------------------
# Evaluation and the guards
# -------------------------------------------------------------------------------------------

def evaluate_finite(net, iterator, config, split, epoch, frames, quiet, cluster, when):
    """:func:`evaluate`, stopping the run (Stop) when the loss is NaN/inf: ``when`` says at which point."""
    r = evaluate(net, iterator, config, split, epoch, frames, quiet, cluster)
    if not math.isfinite(r["loss"]):
        raise Stop(f"the {split} loss became {r['loss']} {when}: the outputs overflow; training stopped, lower --lr",
                   EXIT_NONFINITE)
    return r


def evaluate(net, iterator, config, split, epoch, frames, quiet=False, cluster=None):
    """Loss per sample, accuracy and spike rates on a split (no dropout, no weight change); over
    the processes of ``cluster``, each evaluates its rows of every batch."""
    cluster = cluster or Solo()
    meter, bar, start = Meter(), progress_bar(iterator.num_samples, split, quiet), time.perf_counter()
    for b, x, y in batches(iterator, 0, frames):
        if not cluster.collective:
            cluster.check_signals()
        total = int(y.shape[0])
        x, y = cluster.local(x, y, frames)
        out = net.forward(x, config["timesteps"], train=False, rng_key=(config["seed"], "eval", split, epoch, b),
                          part=cluster.part(total))
        meter.add(*cluster.evaluation(out, y, net))
        if bar is not None:
            bar.update(total)
        if cluster.collective:
            cluster.check_signals()             # the signals the ranks agreed on in the sums
    if bar is not None:
        bar.close()
    return {**meter.result(), "seconds": time.perf_counter() - start}


def check_finite_state(net, opt, where):
    """Stop when a weight or optimiser buffer holds NaN/inf: one float64 sum per array, one sync."""
    xp = net.xp
    arrays = {**net.parameters(), **{f"{b}/{k}": v for b, per in opt.state.items() for k, v in per.items()}}
    if math.isfinite(float(sum(a.sum(dtype=xp.float64) for a in arrays.values()))):
        return
    bad = next(k for k, a in arrays.items() if not math.isfinite(float(a.sum(dtype=xp.float64))))
    raise Stop(f"{bad} became NaN or infinite {where} (lr {opt.lr:g}); training stopped, lower --lr", EXIT_NONFINITE)


def _output_input(rates, net):
    """Spike rate of the layer feeding the output layer (the network's last spiking layer), looked
    up by name: a resumed run's history holds the rates with their names sorted."""
    return rates.get(net.neuron_layers()[-1].name) if rates else None


def check_alive(net, rates, history, epoch, lr):
    """Stop when no spike reached the output layer during the epoch (training ``rates``): a silent
    network cannot learn, whether silent from the start or died after spiking in an earlier epoch."""
    if _output_input(rates, net) != 0:
        return
    if any(_output_input(r.get("spike_rates", {}).get("train", {}), net) for r in history):
        raise Stop(f"no spike reached the output layer during epoch {epoch + 1} though spikes did before "
                   f"(lr {lr:g}): the network died and cannot learn; lower --lr", EXIT_DEAD)
    raise Stop(f"no spike reached the output layer during epoch {epoch + 1}: the network is silent from "
               "the start and cannot learn; raise --timesteps, --encoding-scale or --width, or lower "
               "--dropout", EXIT_DEAD)


# -------------------------------------------------------------------------------------------
# The clock and the checkpoints
# -------------------------------------------------------------------------------------------

class Clock:
    """The run's clock: the training throughput, the last evaluation's time (``eval``) and from
    them the time the run has left; ``wall_seconds`` of an earlier part of the run count on."""

    def __init__(self, epochs, per_epoch, wall_seconds, resumed):
        self.epochs, self.per_epoch, self.resumed = epochs, per_epoch, resumed
        self.images, self.seconds, self.batches, self.first, self.told, self.eval = 0, 0.0, 0, (0, 0.0), False, 0.0
        self.start = time.perf_counter() - wall_seconds

    def wall(self):
        return time.perf_counter() - self.start

    def add_batch(self, images, seconds, done_in_epoch, epoch):
        """A trained batch; the timing line is printed after TIMING_BATCHES of them."""
        self.images, self.seconds, self.batches = self.images + images, self.seconds + seconds, self.batches + 1
        if self.batches == 1:
            self.first = (images, self.seconds)
        if self.batches == TIMING_BATCHES:
            self.tell(done_in_epoch, epoch)

    def rate(self):
        """Training images per second; the first batch (start-up: allocations, threads) counts only
        while it is the only one timed."""
        images, seconds = self.images, self.seconds
        if self.batches > 1:
            images, seconds = images - self.first[0], seconds - self.first[1]
        return images / max(seconds, 1e-9)

    def left(self, done_in_epoch, epoch):
        """Seconds left in the run, from the training throughput and the last evaluation time."""
        if not self.images:
            return None
        return ((self.epochs - epoch) * self.per_epoch - done_in_epoch) / self.rate() + (self.epochs - epoch) * self.eval

    def tell(self, done_in_epoch, epoch):
        """One line with the measured speed and the time the run (or its rest) should take."""
        (n, seconds), what = self.first, "the rest of the run" if self.resumed else "the run"
        steady = f", then {self.rate():.1f} images/s" if self.batches > 1 else ""
        print(f"timing: {seconds:.2f}s for the first {n} images{steady}; {what} should take about "
              f"{duration(self.left(done_in_epoch, epoch))} plus evaluation", flush=True)
        self.told = True


class Saver:
    """The checkpoints and metrics a run writes into its folder ``run`` (rank 0 of ``cluster``
    writes; a failure there stops every process)."""

    def __init__(self, net, opt, sched, config, run, metrics, standardize, cluster):
        self.net, self.opt, self.sched, self.config, self.run = net, opt, sched, config, run
        self.metrics, self.standardize, self.cluster = metrics, standardize, cluster

    def on_root(self, write):
        """Rank 0 writes; a failure there stops every process (in one process: ``write()``)."""
        self.cluster.root_writes(write, lambda exc: write_failure(exc, self.run.path))

    def save(self, name, epoch, **extra):
        """Checkpoint ``name`` of the state after ``epoch`` epochs; Stop when it holds NaN/inf."""
        for kept in ("init_from", "start"):
            if self.metrics.get(kept) is not None:
                extra[kept] = self.metrics[kept]
        ckpt = checkpoint.capture(self.net, self.opt, self.sched, self.config, epoch, self.metrics["epochs"],
                                  {"best": self.metrics["best"], "standardize": self.standardize, **extra})
        try:
            checkpoint.save(self.run / name, ckpt)
        except checkpoint.NonFiniteError as exc:
            raise Stop(f"{exc} after epoch {epoch}; not saved, lower --lr", EXIT_NONFINITE) from None

    def save_epoch(self, epoch, improved):
        """best.h5 when the validation accuracy improved, checkpoint.h5, the metrics."""
        if improved:
            self.save("best.h5", epoch)
        self.save("checkpoint.h5", epoch)
        (self.run / "interrupted.h5").unlink(missing_ok=True)
        self.run.write(self.metrics)


__all__ = ["Clock", "Saver", "TIMING_BATCHES", "check_alive", "check_finite_state", "end_epoch", "evaluate",
           "evaluate_finite", "evaluate_start", "fit", "train_step"]

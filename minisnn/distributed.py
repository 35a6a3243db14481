"""Data-parallel training over MPI: one run across K processes, ``mpiexec -n K python -m minisnn.train``.

Each process (rank) takes a contiguous slice of the rows of every global batch, runs the forward
and the aggregated backward (eqs 3.23-3.25) on it, and the ranks add their weight gradients in
one all-reduce of one flat buffer per iteration (MPI on the CPU; NCCL through
``cupy.cuda.nccl`` on GPUs, one device per rank). Since dE/dW is a sum over samples (eq 3.8),
the sum of the ranks' gradients is the gradient of the global batch, and every rank applies the
same update (eq 3.26) to the same weights: the ranks never drift apart.

The random draws stay those of one process: the spikes and dropout masks of a batch come from one
counter-based stream keyed by ``(seed, "train", epoch, batch)`` (:meth:`Backend.rng`), in
which every sample's numbers sit at fixed positions. :class:`RowStream` hands a rank the numbers
at its rows' positions - on the CPU by jumping ahead in the stream (PCG64 ``advance``), elsewhere
by drawing the whole batch's numbers and keeping its rows - so a sample draws the same spikes
whichever rank, and however many ranks, simulate it.

A small float64 all-reduce per batch carries the loss, the counts, the spike rates and the
signals received: every rank stops at the same batch, for the same reason, with the same exit
status. Rank 0 alone writes the run folder and prints; the steps before training end in an
agreement (:meth:`MPICluster.agree`), so that an error on any rank stops them all.
"""
from __future__ import annotations

import math
import os
import signal
import sys

import numpy as np

from .runs import SIGNALS, Interrupted

#: The ``--distributed`` choices.
MODES = ("none", "auto", "mpi")
INSTALL = "pip install 'minisnn[mpi]' (mpi4py and the MPICH wheel; any other MPI works with mpi4py too)"
#: Environment variables in which launchers pass the number of processes (MPICH/Intel MPI, Open MPI,
#: MVAPICH, PMIx).
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


class DistributedError(RuntimeError):
    """A distributed run cannot start (mpi4py missing, ...)."""


# -------------------------------------------------------------------------------------------
# The random numbers of a slice of the batch
# -------------------------------------------------------------------------------------------

class RowStream:
    """The uniform draws of rows ``start .. start + n`` of a batch of ``total`` samples.

    ``rng.random(shape)`` with ``shape[axis] == n`` returns what the same call with
    ``shape[axis] == total`` on ``generator`` returns at those rows; successive calls continue the
    stream as the whole batch's calls would. Only float32 draws (one 32-bit number each) are
    supported, the only kind the encoders and dropout make."""

    def __init__(self, generator, start, total, axis):
        self.generator, self.start, self.total, self.axis = generator, int(start), int(total), axis
        self.position = 0            # 32-bit numbers the whole batch has drawn so far
        numpy_pcg64 = isinstance(generator, np.random.Generator) and isinstance(generator.bit_generator, np.random.PCG64)
        self._initial = generator.bit_generator.state if numpy_pcg64 else None

    def random(self, shape, dtype=np.float32):
        if np.dtype(dtype) != np.float32:
            raise TypeError(f"RowStream draws float32 numbers only, got {np.dtype(dtype)}")
        shape = tuple(int(s) for s in shape)
        outer, n, inner = math.prod(shape[:self.axis]), shape[self.axis], math.prod(shape[self.axis + 1:])
        whole = shape[:self.axis] + (self.total,) + shape[self.axis + 1:]
        if self._initial is None:           # CuPy and others: draw the batch's numbers, keep the rows
            rows = (slice(None),) * self.axis + (slice(self.start, self.start + n),)
            out = self.generator.random(whole, dtype=np.float32)[rows]
        else:                               # PCG64: jump to each run of the rows' numbers
            out = np.empty((outer, n * inner), np.float32)
            bits = self.generator.bit_generator
            for o in range(outer):
                first = self.position + (o * self.total + self.start) * inner
                bits.state = self._initial
                bits.advance(first // 2)            # a 64-bit output holds two 32-bit numbers
                if first % 2:
                    self.generator.random(dtype=np.float32)
                self.generator.random(n * inner, dtype=np.float32, out=out[o])
            out = out.reshape(shape)
        self.position += math.prod(whole)
        return out


def rows_of(generator, part, axis):
    """``generator`` itself when ``part`` is None (the whole batch), else the :class:`RowStream` of
    ``part = (start, total)``."""
    return generator if part is None else RowStream(generator, part[0], part[1], axis)


# -------------------------------------------------------------------------------------------
# One process
# -------------------------------------------------------------------------------------------

class Solo:
    """A run in one process: every collective step is the identity, nothing is reshaped."""

    rank, size, local_rank, local_size, is_root, collective = 0, 1, 0, 1, True, False

    def part(self, total):
        return None

    def local(self, x, y, frames):
        return x, y

    def loss(self, out, y, reduction, net):
        """(loss as a float, dE/d output, the Meter's sums of the batch)."""
        from .loss import correct, mse_loss

        loss, error = mse_loss(out, y, reduction)
        loss, n = float(loss), int(y.shape[0])
        return loss, error, (loss * n if reduction == "mean" else loss, int(correct(out, y)), n, net.spike_rates())

    def evaluation(self, out, y, net):
        from .loss import correct, mse_loss

        return float(mse_loss(out, y)[0]), int(correct(out, y)), int(y.shape[0]), net.spike_rates()

    def gradients(self, net):
        return net.gradients()

    def check_signals(self):
        SIGNALS.check()

    def agree(self, failure=None, value=None):
        return [value]

    def on_root(self, function):
        return function()

    def root_writes(self, function, outcome=None):
        function()

    def fail(self, status, message):
        pass

    def start(self):
        pass

    def use_gpus(self, backend):
        pass

    def threads(self):
        return None

    def device(self, device):
        return device

    def describe(self):
        return None


# -------------------------------------------------------------------------------------------
# K processes
# -------------------------------------------------------------------------------------------

def launcher_size(environ=None):
    """The number of processes a launcher started, from its environment; None if none says."""
    environ = os.environ if environ is None else environ
    for name in SIZE_VARIABLES:
        if str(environ.get(name, "")).isdigit():
            return int(environ[name])
    return None


def launcher_rank(environ=None):
    """This process's rank as a launcher's environment gives it; None if none says."""
    environ = os.environ if environ is None else environ
    for name in RANK_VARIABLES:
        if str(environ.get(name, "")).isdigit():
            return int(environ[name])
    return None


def find_mpiexec():
    """The path of ``mpiexec``: first the one installed beside this Python (where the ``mpich``
    wheel puts it, matching mpi4py's MPI), then the one on PATH; None if there is none."""
    import shutil
    import sysconfig

    scripts = [sysconfig.get_path("scripts"), os.path.join(sys.prefix, "bin"), os.path.dirname(sys.executable)]
    user = sysconfig.get_preferred_scheme("user")
    scripts.append(sysconfig.get_path("scripts", user))
    for folder in scripts:
        candidate = os.path.join(folder, "mpiexec")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("mpiexec")


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise DistributedError(f"--distributed mpi needs mpi4py, which cannot be imported ({exc}); install it: {INSTALL}") from None
    return MPI


def connect(mode="auto"):
    """The processes of this run: :class:`Solo`, or an :class:`MPICluster` when ``mode`` is
    "mpi", or "auto" and a launcher started more than one process (read from its environment;
    mpi4py is asked only when a launcher's rank variable is set without the size)."""
    if mode not in MODES:
        raise DistributedError(f"--distributed must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "none":
        return Solo()
    if mode == "auto":
        size = launcher_size()
        if size is None and any(name in os.environ for name in RANK_VARIABLES):
            try:
                from mpi4py import MPI
            except ImportError:
                return Solo()
            size = MPI.COMM_WORLD.Get_size()
        if size is None or size < 2:
            return Solo()
        try:
            _mpi()
        except DistributedError as exc:
            raise DistributedError(f"started as one of {size} processes, but mpi4py cannot be imported: the {size} "
                                   f"processes would be {size} separate runs; install it: {INSTALL}, or pass "
                                   "--distributed none to run them anyway") from exc
    return MPICluster(_mpi())


class MPICluster:
    """The ranks of ``MPI.COMM_WORLD``: the rows each takes, the all-reduces, the agreements."""

    collective = True

    def __init__(self, MPI):
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.is_root = self.rank == 0
        self.training = False        # from the last agreement on: failures are collective by construction
        self.signal = None           # the signal the ranks agreed on at the last batch
        self._flat = self._nccl = None

    # -- the rows of a batch ---------------------------------------------------------------
    def rows(self, total):
        return slice(total * self.rank // self.size, total * (self.rank + 1) // self.size)

    def part(self, total):
        return (self.rows(total).start, total)

    def local(self, x, y, frames):
        """This rank's rows of a batch (event frames (T, B, ...) are cut along B)."""
        rows = self.rows(int(y.shape[0]))
        if frames:
            return x[:, rows], y[rows]
        return x[rows], y[rows]

    # -- the batch's sums --------------------------------------------------------------------
    def _sums(self, loss, correct, n, net):
        """All-reduce (loss, correct, n, per-layer rate sums, signals) in float64; remember the
        signal any rank received (SIGTERM before SIGINT)."""
        names = [layer.name for layer in net.neuron_layers()]
        rates = net.spike_rates() if n else dict.fromkeys(names, 0.0)
        pending = SIGNALS.pending
        local = [loss, correct, n] + [rates[k] * n for k in names]
        local += [pending == signal.SIGINT, pending == signal.SIGTERM]
        sums = np.asarray(local, dtype=np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, sums, op=self.MPI.SUM)
        self.signal = signal.SIGTERM if sums[-1] else signal.SIGINT if sums[-2] else None
        n = int(sums[2])
        return float(sums[0]), int(sums[1]), n, {k: float(v) / max(n, 1) for k, v in zip(names, sums[3:-2])}

    def loss(self, out, y, reduction, net):
        """The global batch's loss (summed or averaged over all its samples, eq 3.8), this rank's
        dE/d output (eq 3.9; averaged: divided by the global batch size) and the Meter's sums."""
        from .loss import correct, mse_loss

        local, error = mse_loss(out, y, "sum")
        total, hits, n, rates = self._sums(float(local), int(correct(out, y)), int(y.shape[0]), net)
        if reduction == "mean":
            error = error / n
            return total / n, error, (total, hits, n, rates)
        return total, error, (total, hits, n, rates)

    def evaluation(self, out, y, net):
        from .loss import correct, mse_loss

        return self._sums(float(mse_loss(out, y)[0]), int(correct(out, y)), int(y.shape[0]), net)

    def check_signals(self):
        if self.signal is not None:
            raise Interrupted(self.signal)

    # -- the gradients ---------------------------------------------------------------------
    def gradients(self, net):
        """The global batch's dE/dW: this rank's gradients copied into one flat buffer, summed
        over the ranks in one all-reduce; returned as views of the buffer."""
        if self._flat is None:
            self._flat = FlatGradients(net, self._reduce_nccl if self._nccl else self._reduce_mpi)
        return self._flat(net.gradients())

    def _reduce_mpi(self, flat, backend):
        host = flat if isinstance(flat, np.ndarray) else backend.to_host(flat)    # CuPy without NCCL: via the host
        self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        if host is not flat:
            flat[...] = backend.to_device(host)

    def _reduce_nccl(self, flat, backend):
        nccl = self._nccl_module
        kind = nccl.NCCL_FLOAT32 if flat.dtype == np.float32 else nccl.NCCL_FLOAT64
        self._nccl.allReduce(flat.data.ptr, flat.data.ptr, flat.size, kind, nccl.NCCL_SUM,
                             backend.xp.cuda.get_current_stream().ptr)

    def use_gpus(self, backend):
        """On GPUs: sum the gradients with NCCL when every rank has ``cupy.cuda.nccl`` and a GPU
        of its own (NCCL refuses two ranks on one device); else through the host with MPI.
        Collective: every rank calls it."""
        if backend.device != "gpu":
            return
        try:
            from cupy.cuda import nccl as module
        except ImportError:
            module = None
        usable = module is not None and getattr(module, "available", True)
        ranks = self.agree(value=(usable, self.MPI.Get_processor_name(), backend.gpu_index))
        if not all(ok for ok, _, _ in ranks) or len({(host, gpu) for _, host, gpu in ranks}) < self.size:
            return
        uid = self.on_root(module.get_unique_id)
        self._nccl_module, self._nccl = module, module.NcclCommunicator(self.size, uid, self.rank)

    def device(self, device):
        """``gpu``/``cuda`` without an index: the rank's own GPU (its rank on the node modulo the
        GPUs the node has); anything else as given."""
        if str(device).strip().lower() not in ("gpu", "cuda"):
            return device
        try:
            import cupy
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception:          # no CuPy or no device: the Backend says so
            return device
        return f"gpu:{self.local_rank % count}" if count else device

    def threads(self):
        """CPU worker threads per rank by default: the cores of the node shared by its ranks."""
        from .backend import cpu_count
        return max(1, cpu_count() // self.local_size)

    def describe(self):
        return {"backend": "mpi", "ranks": self.size, "ranks_per_node": self.local_size,
                "gradient_sum": "nccl" if self._nccl else "mpi"}

    # -- agreements --------------------------------------------------------------------------
    def agree(self, failure=None, value=None):
        """One step every rank takes together: each gives its failure (None, or (status,
        message)); the first failure stops every rank (:class:`Agreed`, with its status) and,
        before training, so does a signal any rank received. Returns every rank's ``value``."""
        pending = None if self.training else SIGNALS.pending
        entries = self.comm.allgather((failure, pending, value))
        for rank, (fail, _, _) in enumerate(entries):
            if fail is not None:
                status, message = fail
                raise Agreed(message if rank == 0 else f"rank {rank}: {message}", status, mine=rank == self.rank)
        signals = [s for _, s, _ in entries if s is not None]
        if signals:
            SIGNALS.pending = None
            raise Interrupted(max(signals))
        return [v for _, _, v in entries]

    def start(self):
        """The last agreement before training (or evaluation): from here on, every failure is
        met by every rank at the same step."""
        self.agree()
        self.training = True

    def on_root(self, function):
        """``function()`` computed on rank 0 (reading a checkpoint, opening the run folder), its
        result given to every rank. An exception on rank 0 propagates there; the caller's
        handler shares it (:meth:`fail`), and the other ranks raise :class:`Agreed`."""
        return self.agree(value=function() if self.is_root else None)[0]

    def root_writes(self, function, outcome):
        """Rank 0 runs ``function`` (writes to the run folder); if it raises, every rank stops with
        the (status, message) ``outcome(exception)`` gives, rank 0 with the exception itself."""
        failure = error = None
        if self.is_root:
            try:
                function()
            except Exception as exc:             # noqa: BLE001 - outcome() says which ones are expected
                failure, error = outcome(exc), exc
                if failure is None:
                    raise
        try:
            self.agree(failure)
        except Agreed:
            if error is not None:
                raise error from None
            raise

    def fail(self, status, message):
        """Share this rank's failure before training (the others are in :meth:`agree`); in
        training, where the others cannot hear of it, abort every rank with its status."""
        if not self.training:
            try:
                self.agree((status, message))
            except Agreed:
                return
        print(f"minisnn.train (rank {self.rank}): {message}", file=sys.__stderr__, flush=True)
        self.comm.Abort(status)


class Agreed(Exception):
    """A failure every rank stops for (``mine``: it happened on this rank)."""

    def __init__(self, message, status, mine=False):
        super().__init__(message)
        self.status, self.mine = status, mine


class FlatGradients:
    """The gradients as views of one flat buffer, summed over the ranks by ``reduce(flat, backend)``."""

    def __init__(self, net, reduce):
        xp, params = net.xp, net.parameters()
        self.flat = xp.empty(sum(v.size for v in params.values()), dtype=next(iter(params.values())).dtype)
        self.views, offset = {}, 0
        for key, value in params.items():
            self.views[key] = self.flat[offset:offset + value.size].reshape(value.shape)
            offset += value.size
        self.reduce, self.backend = reduce, net.backend

    def __call__(self, grads):
        for key, view in self.views.items():
            view[...] = grads[key]
        self.reduce(self.flat, self.backend)
        return self.views

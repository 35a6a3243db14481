"""Neuron dynamics over a chunk of time steps, in place (section 3.1, eqs 3.1-3.2), and the neuron
models built on them (:class:`Neuron`, :class:`LIFNeuron`, :class:`IFNeuron`): each owns its
forward, its derivative and its recursion through time; a layer of them is
:class:`minisnn.layers.Neurons`.

Both neurons take a chunk of input currents ``(T_chunk, ...)`` and overwrite it with the spike
train they emit, so a layer needs no second buffer of the chunk's size. The membrane potential
lives in a ``NeuronState`` that carries over from one chunk to the next, together with the two
per-neuron statistics the backward pass needs (docs/algorithm.md):

    a(T) = sum_t o_t                  spike count, eq 3.4
    f(T) = sum_k lambda^(T - t_k)     leaky trace of the neuron's own spikes (eqs 3.18-3.22)
"""
from __future__ import annotations

import math

from .events import compiled_kernels


class NeuronState:
    """Membrane potential, spike count and leaky spike trace of a layer's neurons. A neuron with
    more state (an adaptive threshold, ...) adds arrays of the same shape as attributes."""

    def __init__(self, xp, shape, dtype, keep_trace):
        self.potential = xp.zeros(shape, dtype=dtype)
        self.count = xp.zeros(shape, dtype=dtype)
        self.trace = xp.zeros(shape, dtype=dtype) if keep_trace else None

    def rows(self, rows):
        """The state of some samples of the batch, every array of it sliced alike (views: updates
        write through). The network gives each CPU worker such a view of its rows."""
        view = object.__new__(type(self))
        for key, value in vars(self).items():
            setattr(view, key, None if value is None else value[rows])
        return view


def integrate_and_fire(xp, currents, state, threshold, leak=1.0, reset="zero"):
    """LIF (leak < 1) or IF (leak = 1) neurons over the chunk's time axis.

        U_t  = lambda U'_{t-1} + I_t       (eq 3.1 discretised; I_t = W s_t, eq 3.2)
        o_t  = [U_t > V_th]
        U'_t = U_t (1 - o_t)               reset="zero": hard reset to 0 (minisnn's neurons)

    ``reset="subtract"`` (converted networks, Rueckauer et al. 2017) fires at U_t >= V_th and
    keeps the charge above threshold: U'_t = U_t - V_th o_t.
    ``currents`` is overwritten with the spikes o_t and returned. Four in-place passes a step:
    the reference, which CuPy runs; with numba, :func:`minisnn.kernels.integrate_and_fire` fuses
    them into one loop over the neurons (bitwise the same result).
    """
    if reset not in ("zero", "subtract"):
        raise ValueError(f"reset must be 'zero' or 'subtract', got {reset!r}")
    fast = compiled_kernels(xp)
    v = state.potential
    if fast is not None and reset == "zero" and _fusable(currents, v, state.count):
        kind = currents.dtype.type                       # the fused loop, bitwise the passes below
        fast.integrate_and_fire(currents.reshape(currents.shape[0], -1), v.reshape(-1),
                                state.count.reshape(-1), kind(threshold), kind(leak))
        if state.trace is not None:
            leaky_sum(xp, currents, state.trace, leak)
        return currents
    for t in range(currents.shape[0]):
        if leak != 1.0:
            v *= leak
        v += currents[t]
        if reset == "zero":
            below = xp.less_equal(v, threshold, out=currents[t])   # 1 - o_t
            v *= below                                             # hard reset where it spiked
            xp.subtract(1, below, out=currents[t])                 # o_t
        else:
            fired = xp.greater_equal(v, threshold, out=currents[t])  # o_t
            v -= fired * threshold
    state.count += currents.sum(axis=0)                                # a(T), eq 3.4
    if state.trace is not None:
        leaky_sum(xp, currents, state.trace, leak)                     # f(T), eqs 3.18-3.22
    return currents


def _fusable(currents, potential, count):
    """Whether the compiled loop can update these arrays in place (contiguous, one float type)."""
    arrays = (currents, potential, count)
    return all(a.flags.c_contiguous and a.dtype == currents.dtype for a in arrays) and currents.dtype.kind == "f"


def leaky_sum(xp, chunk, total, leak):
    """total <- lambda^Tc total + sum_t lambda^(Tc-1-t) x_t, in place: the leaky sum over time of
    a chunk of Tc steps, carried from chunk to chunk (the neurons' trace f(T) and the output
    layer's leaky input sum, eq 3.5)."""
    steps = chunk.shape[0]
    powers = xp.asarray([leak ** (steps - 1 - t) for t in range(steps)], dtype=chunk.dtype)
    recent = xp.tensordot(powers, chunk, axes=(0, 0))
    total *= leak ** steps
    total += recent
    return total


def lif_derivative(xp, count, trace, threshold, leak):
    """Approximate d a / d net of an LIF neuron (eqs 3.13, 3.16, 3.22), per neuron:

        a'(net) = (1 / V_th) (1 + ln(lambda) f(T) / a(T))   where a(T) > 0
        a'(net) = 0                                         where the neuron never fired
    The first term is the IF derivative 1/V_th (3.16); the second the leak compensation 1/beta.
    """
    fired = count > 0
    ratio = trace / xp.maximum(count, 1)
    return xp.where(fired, (1.0 + math.log(leak) * ratio) / threshold, 0).astype(count.dtype)


def through_hard_reset(xp, g, spikes):
    """dE/dU_t through the hard reset, backwards from g_{T+1} = 0 (the authors' graph):

        g_t = o_t a' dE/do_t + (1 - o_t) g_{t+1}

    ``g`` (T, B, ...) holds a' dE/do_t and is overwritten: a spike passes its step's gradient, a
    silent step passes the next step's on. Returns g_t = dE/d(input current at step t)."""
    g[-1] *= spikes[-1]
    for t in range(g.shape[0] - 2, -1, -1):
        xp.copyto(g[t], g[t + 1], where=~spikes[t])     # silent: g_t = g_{t+1}
    return g


# ------------------------------------------------------------------------------------------
# Neuron models: what a layer of neurons (minisnn.layers.Neurons) asks of its neuron
# ------------------------------------------------------------------------------------------

class Neuron:
    """A neuron model. A subclass defines :meth:`fire` (the forward over a chunk),
    :meth:`derivative` (a'(net), the aggregated backward, eq 3.12) and, for the gradient through
    time, :meth:`through_time`; :class:`minisnn.layers.Neurons` wraps it into a layer, and
    ``models.build(..., neuron=...)`` puts it in every spiking layer of a model."""

    #: Whether the state keeps f(T), the leaky trace of the neuron's own spikes (eqs 3.18-3.22).
    keeps_trace = False

    def state(self, xp, shape, dtype, training):
        """A fresh :class:`NeuronState` for a pass; a neuron with more state adds its arrays here."""
        return NeuronState(xp, shape, dtype, keep_trace=self.keeps_trace and training)

    def fire(self, xp, currents, state):
        """Integrate input currents ``(T_chunk, B, ...)`` into ``state``; overwrite ``currents``
        with the spikes o_t and return them; keep the spike count a(T) in ``state.count``."""
        raise NotImplementedError(f"{type(self).__name__}.fire: integrate a chunk of currents, return its spikes")

    def derivative(self, xp, state):
        """a'(net) per neuron (B, ...) from the statistics of the pass (eq 3.12)."""
        raise NotImplementedError(f"{type(self).__name__}.derivative: give a'(net) for the aggregated gradient")

    def through_time(self, xp, g, spikes):
        """dE/d(input current at each step) from ``g`` = a' dE/do_t and the recorded ``spikes``,
        both (T, B, ...): the recursion of the neuron's reset (may overwrite ``g``)."""
        raise NotImplementedError(f"{type(self).__name__}.through_time: define it for gradient='through-time'")

    def through_time_refusal(self):
        """Why the gradient through time cannot run with this neuron (None: it can)."""
        if type(self).through_time is Neuron.through_time:
            return f"{type(self).__name__} defines no through_time"
        return None


#: A neuron's ``reset``: the name of the rule in :func:`integrate_and_fire`.
RESETS = {"hard": "zero", "subtract": "subtract"}


class LIFNeuron(Neuron):
    """Leaky integrate-and-fire neurons (eqs 3.1-3.2) and their derivative (3.22).

    ``reset="hard"`` (the thesis): U <- 0 after a spike. ``reset="subtract"``: U <- U - V_th,
    which keeps the charge above threshold, so a(T) V_th = net - U_T - (leak losses) and the
    IF reading a ~ net / V_th of eq 3.16 holds up to one threshold; the derivative is the same
    eq 3.22. The gradient through time follows the hard reset's graph only."""

    keeps_trace = True

    def __init__(self, threshold=1.0, leak=0.99, reset="hard"):
        if not 0 < leak <= 1:
            raise ValueError(f"LIF leak must be in (0, 1], got {leak}")
        if reset not in RESETS:
            raise ValueError(f"reset must be 'hard' or 'subtract', got {reset!r}")
        self.threshold, self.leak, self.reset = threshold, leak, reset

    def fire(self, xp, currents, state):
        return integrate_and_fire(xp, currents, state, self.threshold, self.leak, reset=RESETS[self.reset])

    def derivative(self, xp, state):
        return lif_derivative(xp, state.count, state.trace, self.threshold, self.leak)

    def through_time(self, xp, g, spikes):
        if self.reset != "hard":
            raise NotImplementedError(self.through_time_refusal())
        return through_hard_reset(xp, g, spikes)

    def through_time_refusal(self):
        if self.reset != "hard":
            return ("the gradient through time follows the hard reset; use the aggregated gradient with reset "
                    "by subtraction")
        return None


class IFNeuron(LIFNeuron):
    """Integrate-and-fire neurons: LIF without leak (lambda = 1), no trace; a' = 1 / V_th where
    the neuron fired (eq 3.16)."""

    keeps_trace = False

    def __init__(self, threshold=1.0, reset="hard"):
        super().__init__(threshold, 1.0, reset)

    def derivative(self, xp, state):
        return xp.where(state.count > 0, 1.0 / self.threshold, 0).astype(state.count.dtype)

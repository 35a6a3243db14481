"""Neuron dynamics over a chunk of time steps, in place (section 3.1, eqs 3.1-3.2).

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
    """Membrane potential, spike count and leaky spike trace of a layer's neurons."""

    def __init__(self, xp, shape, dtype, keep_trace):
        self.potential = xp.zeros(shape, dtype=dtype)
        self.count = xp.zeros(shape, dtype=dtype)
        self.trace = xp.zeros(shape, dtype=dtype) if keep_trace else None

    def rows(self, rows):
        """The state of some samples of the batch (views: updates write through)."""
        view = object.__new__(NeuronState)
        view.potential, view.count = self.potential[rows], self.count[rows]
        view.trace = None if self.trace is None else self.trace[rows]
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

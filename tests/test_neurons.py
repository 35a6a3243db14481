"""Neuron dynamics against closed forms, and the LIF derivative's statistics (eqs 3.1-3.2, 3.22)."""
import math

import numpy as np
import pytest

from minisnn.neurons import NeuronState, integrate_and_fire, lif_derivative

XP = np
DTYPE = np.float64


def simulate(current, steps, threshold=1.0, leak=1.0, chunk=7):
    """Spike train of one neuron driven by a constant current, run in chunks of ``chunk`` steps."""
    state = NeuronState(XP, (1,), DTYPE, keep_trace=True)
    trains, potentials = [], []
    for t0 in range(0, steps, chunk):
        n = min(chunk, steps - t0)
        trains.append(integrate_and_fire(XP, np.full((n, 1), current, DTYPE), state, threshold, leak)[:, 0])
        potentials.append(state.potential[0])
    return np.concatenate(trains), state


@pytest.mark.parametrize("current", [0.3, 0.13, 0.7, 0.45, 0.999])
def test_if_neuron_fires_every_ceil_threshold_over_current_steps(current):
    spikes, _ = simulate(current, 200)
    period = math.ceil(1.0 / current)
    expected = np.zeros(200)
    expected[period - 1::period] = 1
    np.testing.assert_array_equal(spikes, expected)


def test_if_pooling_threshold():
    """The pooling neurons: threshold 0.75; input 0.25 reaches exactly 0.75 at step 3, which is
    not above threshold (strict >), so they fire at step 4, every 4th step."""
    spikes, _ = simulate(0.25, 40, threshold=0.75)
    np.testing.assert_array_equal(np.flatnonzero(spikes) + 1, np.arange(4, 41, 4))


@pytest.mark.parametrize("current,leak", [(0.05, 0.99), (0.3, 0.9), (0.021, 0.99), (0.5, 0.95)])
def test_lif_period_from_the_geometric_series(current, leak):
    """From reset, U_n = I (1 - lambda^n) / (1 - lambda); the first n with U_n > V_th is the period."""
    period = math.ceil(math.log(1 - (1 - leak) / current) / math.log(leak))
    spikes, _ = simulate(current, 5 * period + 3, leak=leak)
    assert np.array_equal(np.flatnonzero(spikes) + 1, np.arange(period, 5 * period + 4, period)[:len(np.flatnonzero(spikes))])
    assert spikes.sum() == (5 * period + 3) // period


@pytest.mark.parametrize("current", [0.01, 0.0099, 0.005])
def test_lif_never_fires_at_or_below_the_leak_current(current):
    """I <= (1 - lambda) V_th: the potential tends to I / (1 - lambda) <= V_th and never crosses."""
    spikes, state = simulate(current, 3000, leak=0.99)
    assert spikes.sum() == 0
    assert state.potential[0] <= 1.0


def test_reset_is_exact_and_statistics_match_definitions():
    rng = np.random.default_rng(0)
    currents = rng.uniform(0, 0.6, (37, 5))
    leak = 0.97
    state = NeuronState(XP, (5,), DTYPE, keep_trace=True)
    spikes = np.concatenate([integrate_and_fire(XP, currents[t:t + 8].copy(), state, 1.0, leak)
                             for t in range(0, 37, 8)])
    # reference loop, written out step by step
    v, ref = np.zeros(5), []
    for t in range(37):
        v = leak * v + currents[t]
        o = (v > 1.0).astype(float)
        v = np.where(o > 0, 0.0, v)
        ref.append(o)
    ref = np.array(ref)
    np.testing.assert_array_equal(spikes, ref)
    np.testing.assert_array_equal(state.potential, v)
    np.testing.assert_array_equal(state.count, ref.sum(0))
    T = 37
    trace = sum(ref[t] * leak ** (T - 1 - t) for t in range(T))   # f(T) = sum_k lambda^(T - t_k)
    np.testing.assert_allclose(state.trace, trace, rtol=1e-12)


def test_lif_derivative_formula():
    count = np.array([0.0, 1.0, 4.0, 10.0])
    trace = np.array([0.0, 0.9, 3.0, 9.5])
    leak, vth = 0.99, 2.0
    got = lif_derivative(XP, count, trace, vth, leak)
    expected = np.array([0.0] + [(1 + math.log(leak) * f / a) / vth for a, f in zip(count[1:], trace[1:])])
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_lif_derivative_is_smaller_for_leakier_neurons():
    """1/beta < 1: a leaky neuron needs more input for the same count (eq 3.17)."""
    _, state = simulate(0.3, 100, leak=0.9)
    d = lif_derivative(XP, state.count, state.trace, 1.0, 0.9)
    assert 0 < d[0] < 1.0


def test_reset_by_subtraction_keeps_the_charge_above_threshold():
    """reset="subtract" (converted networks): U <- U - V_th at U >= V_th, so over n steps of a
    constant current I an IF neuron fires floor(n I / V_th) times; a hard reset loses the rest."""
    state = NeuronState(XP, (3,), DTYPE, keep_trace=False)
    currents = np.tile([0.75, 0.5, 0.25], (10, 1))
    spikes = integrate_and_fire(XP, currents.copy(), state, 1.0, reset="subtract")
    np.testing.assert_array_equal(spikes.sum(axis=0), [7, 5, 2])
    np.testing.assert_array_equal(state.count, [7, 5, 2])
    np.testing.assert_array_equal(state.potential, [0.5, 0.0, 0.5])
    zero = NeuronState(XP, (3,), DTYPE, keep_trace=False)
    assert integrate_and_fire(XP, currents.copy(), zero, 1.0).sum(axis=0).tolist() == [5, 3, 2]
    with pytest.raises(ValueError, match="reset must be"):
        integrate_and_fire(XP, currents.copy(), zero, 1.0, reset="soft")


def test_leaky_sum_over_chunks_is_the_whole_sum():
    from minisnn.neurons import leaky_sum
    x = np.random.default_rng(0).random((23, 4))
    total = np.zeros(4)
    for t0 in range(0, 23, 5):
        leaky_sum(XP, x[t0:t0 + 5], total, 0.9)
    np.testing.assert_allclose(total, np.tensordot(0.9 ** np.arange(22, -1, -1.0), x, axes=(0, 0)), rtol=1e-12)

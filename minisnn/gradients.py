"""The backward pass a network runs: its gradient strategy (docs/algorithm.md).

* :class:`Aggregated` (the thesis, eqs 3.23-3.25, the default): one pass of every layer's
  ``backward`` on the statistics the forward accumulated over T.
* :class:`ThroughTime` (the authors' per-step gradient through the hard reset): at a training
  reset every layer keeps its per-step inputs or spikes (:meth:`Layer.record_steps`; memory grows
  with T), and every layer's ``backward_through_time`` runs on them.

A strategy first checks the layers (:meth:`check`): a combination it cannot run, such as an ANN
or neurons with reset by subtraction through time, is refused with :class:`UnsupportedGradient`
naming the layers and why, never replaced by another gradient.
"""
from __future__ import annotations


class UnsupportedGradient(ValueError):
    """The network's layers cannot run the gradient asked for."""


class Aggregated:
    """One backward pass on the statistics over T (eqs 3.23-3.25)."""

    name = "aggregated"

    def check(self, layers):
        """Every layer has a ``backward`` (the base class's raises when it is called)."""

    def prepare(self, layers, T):
        """After a training reset: the statistics the layers accumulate anyway suffice."""

    def backward(self, layers, error):
        grad = error
        for layer in reversed(layers):
            grad = layer.backward(grad)
        return grad


class ThroughTime:
    """The authors' gradient through time: each layer's ``backward_through_time`` on the steps
    it recorded; dE/d(input spikes at each step) comes out, (T, B, ...)."""

    name = "through-time"

    def check(self, layers):
        refused = {}
        for layer in layers:
            why = layer.through_time_refusal()
            if why:
                refused.setdefault(why, []).append(str(layer.name))
        if refused:
            raise UnsupportedGradient("gradient='through-time' cannot run through this network: " + "; ".join(
                f"{why} ({', '.join(names)})" for why, names in refused.items()))

    def prepare(self, layers, T):
        for layer in layers:
            layer.record_steps(T)

    def backward(self, layers, error):
        grad = error
        for layer in reversed(layers):
            grad = layer.backward_through_time(grad)
        return grad


#: The strategies by name (a network's ``gradient``).
GRADIENTS = {strategy.name: strategy for strategy in (Aggregated, ThroughTime)}


def strategy(name):
    """The strategy called ``name``, or a ValueError listing the names."""
    if name not in GRADIENTS:
        raise ValueError(f"gradient must be one of {', '.join(map(repr, GRADIENTS))}, got {name!r}")
    return GRADIENTS[name]()


__all__ = ["Aggregated", "ThroughTime", "UnsupportedGradient", "GRADIENTS", "strategy"]

"""Input encoding (section 4.1.3): bipolar Poisson rate coding of images, or given spike frames.

An encoder turns the network's input into the spike train, chunk by chunk:
``steps(x, T)`` checks T and ``chunks(xp, x, T, chunk, rng)`` yields ``(T_chunk, B, ...)`` spike
arrays; ``leading_axes`` names the input's axes before the sample's own. The network rate-codes
images with :class:`PoissonEncoder` (the default), passes given spike trains or event frames
(T, B, ...) through with :class:`FrameInput`, and feeds the image itself as the input at every
step with :class:`DirectInput` (with T = 1 and ReLU units, that network is an ANN).

Per time step and pixel, draw u ~ U(0, 1) and emit

    s_t = sign(x) * [ scale * |x| > u ]

so a pixel of intensity x fires with probability min(1, scale |x|) per step. ``scale`` is the
choice docs/algorithm.md asks us to make explicit: the thesis compares the raw intensity
(``scale=1``); the authors' MNIST code compares |x| / 2 (``scale=0.5``, at most one spike every
other step). Colour images are standardised first, so their values are signed and the spikes
bipolar.
"""
from __future__ import annotations

from .data.preprocess import check_pixel_scale


def _positive_steps(T):
    """T, checked: encoders of images take any positive number of time steps."""
    if T is None or T < 1:
        raise ValueError(f"T must be a positive number of time steps, got {T}")
    return T


class PoissonEncoder:
    """Rate-codes a batch of images chunk by chunk, so the whole train is never held at once."""

    def __init__(self, scale: float = 1.0):
        if scale <= 0:
            raise ValueError(f"PoissonEncoder scale must be positive, got {scale}")
        self.scale = scale

    leading_axes = ("batch",)
    spikes = True       # the first layer receives spikes (energy counts them as SOPs)

    def __repr__(self):
        return f"PoissonEncoder(scale={self.scale})"

    def steps(self, images, T):
        return _positive_steps(T)

    def chunks(self, xp, images, T, chunk, rng):
        """The spike train of ``images`` in chunks of ``chunk`` steps, each drawn when asked for."""
        prepared = self.prepare(xp, images)
        for t0 in range(0, T, chunk):
            yield self.encode(xp, prepared, min(chunk, T - t0), rng)

    def prepare(self, xp, images):
        """Per-batch constants: the firing probability |x| * scale and the sign of x (None when
        no pixel is negative, as for MNIST: the spikes are then unipolar). Float images on the
        0-255 scale, which would fire at every step, are refused (:func:`check_pixel_scale`)."""
        check_pixel_scale(images)
        signed = bool((images < 0).any())
        return xp.abs(images) * self.scale, (xp.sign(images) if signed else None)

    def encode(self, xp, prepared, steps, rng):
        """Spikes for the next ``steps`` time steps: (steps, *images.shape)."""
        probability, sign = prepared
        # drawn in float32 whatever the dtype, so float32 and float64 runs see the same spikes
        u = rng.random((steps,) + probability.shape, dtype=xp.float32)
        spikes = u if probability.dtype == u.dtype else xp.empty(u.shape, probability.dtype)
        xp.less(u, probability, out=spikes)           # u < p  <=>  p > u
        if sign is not None:
            spikes *= sign
        return spikes


class FrameInput:
    """Pass-through for input that is already a spike train: event frames (T, B, ...) such as
    binned N-MNIST recordings. T is the number of frames."""

    leading_axes = ("T", "batch")
    spikes = True

    def __repr__(self):
        return "FrameInput()"

    def steps(self, frames, T):
        if T is not None and T != frames.shape[0]:
            raise ValueError(f"T={T} but the given spike train has {frames.shape[0]} steps")
        return frames.shape[0]

    def chunks(self, xp, frames, T, chunk, rng):
        for t0 in range(0, T, chunk):
            yield frames[t0:t0 + chunk]


class DirectInput:
    """The image itself, unchanged, as the input of every time step (no spikes). With T = 1 and
    ReLU units in place of the LIF neurons (:func:`minisnn.ann.build`) the network is the ANN
    of the same architecture, trained by the same engine."""

    leading_axes = ("batch",)
    spikes = False      # analog current: the first layer multiplies (energy counts MACs)

    def __repr__(self):
        return "DirectInput()"

    def steps(self, images, T):
        return _positive_steps(T)

    def chunks(self, xp, images, T, chunk, rng):
        for t0 in range(0, T, chunk):
            yield xp.broadcast_to(images, (min(chunk, T - t0),) + images.shape)


def poisson_encode(xp, images, steps, rng, scale=1.0):
    """Whole spike train (steps, *images.shape) at once: for tutorials and tests."""
    encoder = PoissonEncoder(scale)
    return encoder.encode(xp, encoder.prepare(xp, images), steps, rng)

"""minisnn: a small, autodiff-free NumPy/CuPy framework for training deep spiking neural networks.

It implements spike-based back-propagation of Lee, Sarwar, Panda, Srinivasan and Roy,
"Enabling spike-based backpropagation for training deep neural network architectures",
Front. Neurosci. 14:119, 2020 (https://doi.org/10.3389/fnins.2020.00119), as restated in the
thesis "Training Spiking Neural Networks" (P. Tsoukas, 2023); equation numbers in the code are
the thesis'. The equations and an index from each to its function: docs/algorithm.md.

Start with ``minisnn.models.build("lenet5")``, ``minisnn.data.load("mnist", "train")`` and
``python -m minisnn.train``; ``minisnn.load(path)`` gives a trained network back from a
checkpoint, with its preprocessing.
"""
from . import _startup  # noqa: F401  (first: Ctrl-C while a command starts)
from .backend import Backend, DeviceError, get_backend
from .encoding import DirectInput, FrameInput, PoissonEncoder, poisson_encode
from .layers import (LIF, Conv2d, Dropout, Flatten, Identity, Linear, Output, ResidualBlock,
                     SpikingAvgPool, Subsample)
from .loss import correct, mse_loss
from .network import Network, RunOptions
from .optim import SGD, Adam, MultiStepLR
from .pretrained import Pretrained, load

__version__ = "0.1.0"

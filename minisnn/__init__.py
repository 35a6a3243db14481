"""minisnn: a small, autodiff-free NumPy/CuPy framework for training deep spiking neural networks.

It implements spike-based back-propagation of Lee et al. 2020 as restated in the thesis
"Training Spiking Neural Networks" (2023); equation numbers in the code are the thesis'.
"""
from .backend import Backend, DeviceError, get_backend
from .encoding import PoissonEncoder, poisson_encode
from .layers import (LIF, Conv2d, Dropout, Flatten, Identity, Linear, Output, ResidualBlock,
                     SpikingAvgPool, Subsample)
from .loss import correct, mse_loss
from .network import Network
from .optim import SGD, Adam, MultiStepLR
from .pretrained import Pretrained, load

__version__ = "0.1.0"

"""The configuration of a training run: every knob, its default, and the presets.

A run's configuration is a flat dict ``{knob: value}``. :data:`KNOBS` lists every knob once with
its default and what it means; ``python -m minisnn.train`` makes one flag of each (``--batch-size``
for ``batch_size``) and builds its ``--help`` from this table. A default of :data:`PRESET` means
"the preset decides": the ``thesis`` preset takes the thesis' value for the model and dataset
(each dataset's registry entry, :data:`THESIS_MODEL`), the ``fast`` preset overrides a few of them
(:data:`FAST_PRESET`). Explicit values always win over the preset.

Loss convention (loss.py): E = 1/2 sum_b sum_j e_j^2, summed over the batch. The authors' code
uses sum e^2 without the 1/2, so their learning rate eta equals 2 eta here.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from .backend import parse_device
from .data.errors import DatasetError
from .data.registry import DATA_ROOT_RULE, DATASETS, NAMES, canonical_name
from .models import MODELS, default_dataset, layers

PRESET = "<preset>"     # marker: the default comes from the preset tables below


class ConfigError(ValueError):
    """A knob value (from a flag or a checkpoint) that cannot work."""


@dataclass(frozen=True)
class Knob:
    name: str
    default: object            # a value, or PRESET
    help: str
    type: type = str           # int, float, str or list (of epochs)
    choices: tuple | None = None
    rule: tuple | None = None  # (predicate, "what it must be")
    optional: bool = False     # None is allowed
    experiment: bool = True    # defines the experiment: a resumed run cannot change it
    group: str = "model and data"
    metavar: str | None = None  # how --help names the value (default: the flag's name)


_POS = (lambda v: v > 0, "> 0")
_NONNEG = (lambda v: v >= 0, ">= 0")
_AT_LEAST_1 = (lambda v: v >= 1, ">= 1")
_FRACTION = (lambda v: 0 <= v < 1, "in [0, 1)")
_EPOCHS = (lambda v: all(m >= 0 for m in v), "epochs >= 0")
_SEED = (lambda v: 0 <= v < 2 ** 63, "in 0..2**63-1 (9223372036854775807)")   # larger seeds would wrap around


def _is_device(value):
    try:
        parse_device(value)
    except ValueError:
        return False
    return True


_DEVICE = (_is_device, "cpu, gpu, cuda, gpu:N or cuda:N (N: the GPU's index)")

K = Knob
KNOBS = {k.name: k for k in [
    # -- model and data ---------------------------------------------------------------------
    K("preset", "thesis", "named set of defaults: 'thesis' (the thesis' protocol, 150 epochs) or "
      "'fast' (LeNet5 on MNIST/Fashion-MNIST in 20 epochs); flags given override it", choices=("thesis", "fast")),
    K("model", "lenet5", "network of tables 4.2-4.4", choices=MODELS),
    K("network", "snn", "'snn': the spiking network; 'ann': the same architecture with ReLU units and "
      "plain average pooling, run one step on the image itself (the ANN of table 4.9; T is 1)",
      choices=("snn", "ann")),
    K("dataset", None, "dataset (default: the model's thesis dataset, lenet5 -> mnist, "
      "vgg9/resnet9/resnet11 -> cifar10, vgg7/resnet7 -> svhn)", choices=NAMES, optional=True),
    K("data_dir", None, "folder holding the dataset files, or a data root with one subfolder per "
      f"dataset (default: {DATA_ROOT_RULE})", optional=True, experiment=False),
    K("width", 1.0, "multiplier of every hidden channel / feature count (1.0 = the thesis' network)",
      float, rule=_POS),
    K("dropout", None, "dropout probability after LIF layers (default per model: lenet5 0, vgg 0.2, "
      "resnet 0.25, as the authors' code)", float, rule=_FRACTION, optional=True),
    K("timesteps", PRESET, "simulation time steps T", int, rule=_AT_LEAST_1),
    K("encoding_scale", PRESET, "Poisson encoding: a pixel spikes when scale*|x| > u (the authors' "
      "MNIST code uses 0.5)", float, rule=_POS),
    K("reset", "hard", "spiking neurons' reset after a spike: 'hard' to zero (the thesis) or 'subtract' the "
      "threshold, keeping the charge above it (converted networks, Rueckauer et al. 2017); not for --network ann",
      choices=("hard", "subtract")),
    K("input", "poisson", "how images enter a spiking network: 'poisson' rate-coded spikes (the thesis) or "
      "'direct', the image itself as the first layer's input current at every step; not for --network ann "
      "(which always takes the image) nor event data", choices=("poisson", "direct")),
    K("augment", PRESET, "training augmentation: random crop (pad 4) and horizontal flip",
      choices=("none", "crop", "crop-flip")),
    K("limit_train", None, "use at most N training samples (seeded subset)", int, rule=_AT_LEAST_1, optional=True),
    K("limit_test", None, "use at most N test samples (seeded subset)", int, rule=_AT_LEAST_1,
      optional=True, experiment=False),
    K("val_split", 0.0, "fraction of the training set held out for validation (0 = none); best.h5 "
      "keeps the best-validation weights", float, rule=_FRACTION),
    # -- optimisation -----------------------------------------------------------------------
    K("epochs", PRESET, "number of epochs (0: test the network as it starts - with --init-from an ANN, the "
      "converted network - and save it as checkpoint.h5 to analyse or --resume)", int, rule=_NONNEG,
      experiment=False, group="optimisation"),
    K("batch_size", PRESET, "mini-batch size", int, rule=_AT_LEAST_1, group="optimisation"),
    K("optimizer", PRESET, "sgd (static data) or adam (N-MNIST), as the thesis", choices=("sgd", "adam"),
      group="optimisation"),
    K("lr", PRESET, "learning rate for E = 1/2 sum e^2 (the authors' lr x 2)", float, rule=_POS,
      group="optimisation"),
    K("loss_reduction", PRESET, "E summed over the batch (the thesis) or averaged: with 'mean' the lr "
      "is B times the summed one and carries across batch sizes", choices=("sum", "mean"), group="optimisation"),
    K("milestones", PRESET, "comma-separated epochs where the lr is multiplied by --gamma ('none': "
      "no step)", list, rule=_EPOCHS, group="optimisation"),
    K("gamma", PRESET, "lr factor at each milestone", float, rule=_POS, group="optimisation"),
    K("weight_decay", PRESET, "L2 weight decay wd (SGD adds wd W to dE/dW); like the lr it belongs to "
      "the loss reduction: the summed loss's wd is B times the averaged loss's", float, rule=_NONNEG,
      group="optimisation"),
    K("momentum", PRESET, "SGD momentum (the authors' code applies none)", float, rule=_FRACTION,
      group="optimisation"),
    K("gradient", "aggregated", "backward pass: 'aggregated' (one pass on statistics over T, the "
      "thesis) or 'through-time' (the authors' per-step gradient through the reset; memory grows with T)",
      choices=("aggregated", "through-time"), group="optimisation"),
    K("init_from", None, "start from the weights of this checkpoint (any run of the same model and width; "
      "a new run: fresh optimiser state and schedule from epoch 1, data order from --seed); an ANN's "
      "checkpoint in a spiking run is converted first (hybrid training, docs/hybrid.md)", optional=True,
      group="optimisation", metavar="CHECKPOINT"),
    K("convert_percentile", 99.9, "with --init-from an ANN checkpoint (--network ann) of a spiking run: each "
      "layer's scale is this percentile of its positive ReLU activations (100: the maximum; "
      "docs/hybrid.md)", float, rule=(lambda v: 0 < v <= 100, "in (0, 100]"), group="optimisation", metavar="P"),
    K("convert_images", 2000, "with --init-from an ANN checkpoint: how many training images give the "
      "activation statistics", int, rule=_AT_LEAST_1, group="optimisation", metavar="N"),
    K("calibrate_output", 0, "with --init-from an ANN checkpoint: after the conversion, scale the output layer "
      "so that on this many of those images the spiking outputs match the ANN's in size (least squares; "
      "0: off; docs/hybrid.md)", int, rule=(lambda v: v >= 0, ">= 0"), group="optimisation", metavar="N"),
    # -- run --------------------------------------------------------------------------------
    K("device", "cpu", "cpu (NumPy), or gpu / cuda (CuPy on GPU 0), gpu:N / cuda:N (GPU N)",
      rule=_DEVICE, experiment=False, group="run"),
    K("dtype", "float32", "floating point type", choices=("float32", "float64"), group="run"),
    K("seed", 0, "seed of weights, data order, encoding and dropout (0 to 2**63-1)", int, rule=_SEED, group="run"),
    K("threads", None, "CPU worker threads, each simulating a slice of the batch (default: every "
      "core; use 1 per run when several runs share the machine)", int, rule=_AT_LEAST_1, optional=True,
      experiment=False, group="run"),
    K("execution", "auto", "how layers compute their weighted products: dense matrix products or "
      "event-driven sparse products (same results up to float rounding)",
      choices=("auto", "dense", "event"), experiment=False, group="run"),
    K("time_chunk", 10, "time steps simulated per block (memory vs speed)", int, rule=_AT_LEAST_1, group="run"),
    K("eval_batch_size", None, "batch size of evaluation (default: max(batch size, 64))", int,
      rule=_AT_LEAST_1, optional=True, experiment=False, group="run"),
    K("test_every", 1, "evaluate the test set every N epochs (and always after the last)", int,
      rule=_AT_LEAST_1, experiment=False, group="run"),
]}
del K

#: Knobs added after checkpoints were first written, with the value older checkpoints imply.
ADDED_LATER = {"loss_reduction": "sum", "preset": "thesis", "execution": "auto", "gradient": "aggregated",
               "network": "snn", "init_from": None, "reset": "hard", "input": "poisson",
               "convert_percentile": 99.9, "convert_images": 2000, "calibrate_output": 0}

#: Knobs of the conversion of an ANN checkpoint given to --init-from (hybrid training).
CONVERSION_KNOBS = ("convert_percentile", "convert_images", "calibrate_output")

#: Knobs that define the experiment: a resumed run must not change them.
IDENTITY_KEYS = tuple(name for name, knob in KNOBS.items() if knob.experiment)

#: Experiment knobs that --eval-only may still change (they do not change the weights).
EVAL_MAY_CHANGE = ("dtype", "time_chunk")


# -------------------------------------------------------------------------------------------
# The thesis preset
# -------------------------------------------------------------------------------------------

#: Each dataset's values (time steps, encoding scale, optimiser and schedule, augmentation) are
#: its registry entry's ``preset`` (:class:`~minisnn.data.DatasetInfo`); Adam takes this lr
#: unless the dataset's preset fixes one.
ADAM_LR = 1e-3

#: Per model: batch size and SGD learning rate (our loss convention, see the module docstring).
#: LeNet5: 0.003, measured. One epoch on 2,000 MNIST training samples (seeded subset), T = 50,
#: batch 64, SGD wd 5e-4, encoding scale 1, test on 1,000 samples (``--limit-train 2000 --epochs 1
#: --limit-test 1000 --lr LR``; records in experiments/results/lenet5-lr-probe/):
#:     lr     0.001  0.003  0.005  0.01   0.017  0.03
#:     test   75.0   82.6   80.2   72.0   10.9   9.9    (%)
#:     loss   0.378  0.352  0.367  0.430  0.563  0.721  (train, per sample)
#: The authors' 0.0085 (sum e^2 without 1/2) is 0.017 here: its first updates overshoot into a
#: (nearly) silent network that recovers after tens of steps, how many depending on the batch
#: order - too late for the 31 steps above; over two epochs of 12,000 images it overtakes 0.003
#: (validation 93.0 / 97.2 % against 92.9 / 94.9 %, docs/results.md): give --lr 0.017 for the
#: authors' exact protocol.
#: VGG9 0.0033 -> 0.0066, ResNet11 0.0025 -> 0.005 (authors' code, batch 16), not
#: measured here; VGG7 / ResNet7 / ResNet9 take their family's value.
THESIS_MODEL = {
    "lenet5": dict(batch_size=64, lr=0.003),
    "vgg7": dict(batch_size=16, lr=0.0066),
    "vgg9": dict(batch_size=16, lr=0.0066),
    "resnet7": dict(batch_size=16, lr=0.005),
    "resnet9": dict(batch_size=16, lr=0.005),
    "resnet11": dict(batch_size=16, lr=0.005),
}


def thesis_preset(model, dataset):
    """The thesis' values of the PRESET knobs for ``model`` on ``dataset``."""
    preset = DATASETS[dataset].preset
    values = {**preset, **THESIS_MODEL[model]}
    values["lr"] = preset.get("lr", THESIS_MODEL[model]["lr"])
    return values


# -------------------------------------------------------------------------------------------
# The fast preset
# -------------------------------------------------------------------------------------------

#: ``--preset fast``: LeNet5 on MNIST / Fashion-MNIST in 20 epochs: momentum 0.9, lr x0.2 at
#: epochs 10 and 15, the loss averaged over the batch (so the lr carries across batch sizes). Its
#: lr and weight decay are derived from the summed-loss values it was chosen with, lr 0.0012 and
#: the thesis' weight decay 5e-4: lr x B = 0.0768 and weight decay / B = 7.8125e-6 make every
#: update the same (SGD adds wd W to dE/dW). Chosen on a validation split (12,000 training
#: / 3,000 validation MNIST images, 2 epochs at a constant lr, T=50, batch 64). Summed-loss lr,
#: momentum -> validation accuracy after epoch 1 / 2:
#:     0.003, 0 (the thesis default)  92.9 / 94.9 %       0.0003, 0.9   93.0 / 95.4 %
#:     0.006, 0                       94.4 / 96.7 %       0.0006, 0.9   95.2 / 97.1 %
#:                                                        0.0012, 0.9   96.3 / 97.8 %
_FAST_BATCH, _FAST_SUMMED_LR, _FAST_SUMMED_DECAY = 64, 0.0012, 5e-4
FAST_PRESET = dict(epochs=20, batch_size=_FAST_BATCH, loss_reduction="mean", momentum=0.9,
                   lr=_FAST_SUMMED_LR * _FAST_BATCH, weight_decay=_FAST_SUMMED_DECAY / _FAST_BATCH,
                   milestones=[10, 15], gamma=0.2)
FAST_MODELS = ("lenet5",)


def preset_values(preset, model, dataset, optimizer=None):
    """Defaults of the PRESET knobs under ``preset`` (``optimizer``: one chosen explicitly,
    which brings its own lr: Adam 1e-3 unless the dataset says otherwise); ConfigError where the
    preset does not apply."""
    values = thesis_preset(model, dataset)
    if preset == "fast":
        fast_datasets = [name for name, info in DATASETS.items() if info.fast_preset]
        if model not in FAST_MODELS or dataset not in fast_datasets:
            raise ConfigError(f"--preset fast is defined for {'/'.join(FAST_MODELS)} on "
                              f"{' and '.join(fast_datasets)}, not {model} on {dataset}; use --preset thesis")
        values.update(FAST_PRESET)
    if optimizer is not None and optimizer != values["optimizer"]:
        values["optimizer"] = optimizer
        values["lr"] = DATASETS[dataset].preset.get("lr", ADAM_LR) if optimizer == "adam" else THESIS_MODEL[model]["lr"]
    return values


# -------------------------------------------------------------------------------------------
# Resolution and validation
# -------------------------------------------------------------------------------------------

def resolve(given: dict, base: dict | None = None) -> dict:
    """Every knob's value: ``given`` (explicit), else ``base`` (a stored config), else the
    preset's or the table's default. Raises ConfigError for a value that cannot work."""
    config = {**(base or {}), **{k: v for k, v in given.items() if k in KNOBS}}
    for name in ("preset", "model"):
        config.setdefault(name, KNOBS[name].default)
    _check("preset", config["preset"])
    _check("model", config["model"])
    try:
        config["dataset"] = canonical_name(config.get("dataset") or default_dataset(config["model"]))
    except DatasetError as exc:
        raise ConfigError(str(exc)) from None
    preset = preset_values(config["preset"], config["model"], config["dataset"], config.get("optimizer"))
    if config.get("network") == "ann":
        config.setdefault("timesteps", 1)                 # an ANN is one step on the image
    for name, knob in KNOBS.items():
        if name not in config:
            config[name] = preset[name] if knob.default is PRESET else knob.default
    if config["eval_batch_size"] is None:
        config["eval_batch_size"] = max(int(config["batch_size"]), 64)
    for name in ("data_dir", "init_from"):                 # paths are kept absolute
        if config.get(name) is not None:
            config[name] = str(Path(config[name]).expanduser().resolve())
    for name, value in config.items():
        _check(name, value)
    _check_width(config["model"], config["width"])
    _check_spiking(config, given)
    _check_network(config)
    return {name: config[name] for name in KNOBS}


def flag(name):
    """The command-line flag of a knob: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def _check(name, value):
    knob = KNOBS.get(name)
    if knob is None:
        raise ConfigError(f"unknown setting {name!r}")
    if value is None:
        if knob.optional:
            return
        raise ConfigError(f"{flag(name)} must be given a value, got none")
    if knob.type is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        what = "a finite number"
    elif knob.type is int:
        ok, what = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif knob.type is list:
        ok = isinstance(value, list) and all(isinstance(m, int) and not isinstance(m, bool) for m in value)
        what = "a list of integer epochs"
    else:
        ok, what = isinstance(value, str), "a string"
    if not ok:
        raise ConfigError(f"{flag(name)} must be {what}, got {value!r}")
    if knob.choices is not None and value not in knob.choices:
        raise ConfigError(f"{flag(name)} must be one of {', '.join(knob.choices)}, got {value!r}")
    if knob.rule is not None and not knob.rule[0](value):
        raise ConfigError(f"{flag(name)} must be {knob.rule[1]}, got {value!r}")


def _check_width(model, width):
    """Every hidden layer keeps at least one channel: round(width * smallest count) >= 1."""
    smallest = min(layer.weight_shape[0] for layer in layers(model)[:-1] if hasattr(layer, "weight_shape"))
    if round(width * smallest) < 1:
        raise ConfigError(f"--width {width} leaves {model}'s smallest layer ({smallest} channels at width 1) "
                          f"with no channel; use --width >= {0.5 / smallest:.3g}")


def _check_network(config):
    """An ANN runs one step on images: T must be 1 and the dataset a static one."""
    if config["network"] != "ann":
        return
    if config["timesteps"] != 1:
        raise ConfigError(f"--network ann runs one step on the image: leave out --timesteps (or give 1), "
                          f"got {config['timesteps']}")
    if DATASETS[config["dataset"]].frames:
        raise ConfigError(f"--network ann needs an image dataset; {config['dataset']} holds event recordings")


def _check_spiking(config, given):
    """The spiking network's reset and input: combinations that cannot work, named."""
    if config["network"] == "ann":
        named = [flag(k) for k in ("reset", "input") if k in given]
        if named:
            raise ConfigError(f"{' and '.join(named)} describe the spiking network; --network ann has ReLU units "
                              "and always takes the image itself: leave them out")
    if config["reset"] != "hard" and config["gradient"] == "through-time":
        raise ConfigError("--gradient through-time follows the hard reset's graph; use --reset hard with it, or the "
                          "aggregated gradient with --reset subtract")
    if config["input"] == "direct":
        if DATASETS[config["dataset"]].frames:
            raise ConfigError(f"--input direct feeds images; {config['dataset']} holds event recordings, "
                              "which enter as spike frames: leave out --input")
        if "encoding_scale" in given:
            raise ConfigError("--encoding-scale sets the Poisson spike rate; with --input direct the image "
                              "enters as a current: leave out one of them")
    converting = [flag(k) for k in CONVERSION_KNOBS if k in given]
    if converting and config["init_from"] is None:
        raise ConfigError(f"{' and '.join(converting)} apply to --init-from an ANN checkpoint; give --init-from "
                          "or leave them out")


def upgrade_stored(stored) -> dict:
    """A checkpoint's config made current: knobs added later take the value older runs implied;
    a knob that every checkpoint must hold is required. Raises ConfigError."""
    if not isinstance(stored, dict):
        raise ConfigError("the stored config is not a mapping")
    config = {**ADDED_LATER, **stored}
    missing = [name for name in KNOBS if name not in config]
    if missing:
        raise ConfigError(f"the stored config lacks {', '.join(missing)}")
    unknown = sorted(set(config) - set(KNOBS))
    if unknown:
        raise ConfigError(f"the stored config has unknown settings {', '.join(unknown)}")
    return config


def resolve_stored(given, stored, mode):
    """The config of a checkpoint's ``stored`` config with the flags ``given``, for ``mode``
    "resume" (only run knobs may change) or "eval" (also EVAL_MAY_CHANGE; the whole test set
    unless --limit-test is given). ConfigError for a flag that would change the experiment."""
    stored = upgrade_stored(stored)
    fixed = [k for k in IDENTITY_KEYS if mode == "resume" or k not in EVAL_MAY_CHANGE]
    clashes = [f"{flag(k)} {given[k]!r} (checkpoint: {stored[k]!r})" for k in fixed if k in given and given[k] != stored[k]]
    if clashes:
        raise ConfigError(f"model/config mismatch, --{'resume' if mode == 'resume' else 'eval-only'} cannot change "
                          + ", ".join(clashes))
    if mode == "eval":
        stored["limit_test"] = given.get("limit_test")
    return resolve(given, base=stored)


def _milestones(text):
    text = text.strip()
    if text in ("", "none"):
        return []
    try:
        return sorted(int(m) for m in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"milestones must be comma-separated epochs, got {text!r}") from None


def add_flags(parser):
    """One flag per knob (``--batch-size`` for ``batch_size``; absent unless given), in argument
    groups by the knobs' ``group``; returns the groups. Values are checked by :func:`resolve`."""
    groups = {}
    types = {int: int, float: float, list: _milestones, str: None}
    for name, knob in KNOBS.items():
        group = groups.get(knob.group) or groups.setdefault(knob.group, parser.add_argument_group(knob.group))
        flags = [flag(name)] + (["-T"] if name == "timesteps" else [])
        group.add_argument(*flags, dest=name, type=types[knob.type], choices=knob.choices, metavar=knob.metavar,
                           default=argparse.SUPPRESS, help=knob.help + describe_default(name))
    return groups


def describe_default(name):
    """The default of a knob as --help shows it (from the tables above, never restated)."""
    knob = KNOBS[name]
    if knob.default is not PRESET:
        return "" if knob.default is None else f" (default: {knob.default})"
    per_dataset = {d: thesis_preset("lenet5", d)[name] for d in DATASETS}
    per_model = {m: thesis_preset(m, next(iter(DATASETS)))[name] for m in THESIS_MODEL}
    if len({str(v) for v in per_model.values()}) > 1:
        shown = ", ".join(f"{m} {v}" for m, v in per_model.items())
        if name == "lr":
            shown += f"; adam {ADAM_LR}"
    elif len({str(v) for v in per_dataset.values()}) > 1:
        shown = ", ".join(f"{d} {v}" for d, v in per_dataset.items())
    else:
        shown = str(next(iter(per_dataset.values())))
    fast = f"; fast: {FAST_PRESET[name]}" if name in FAST_PRESET else ""
    return f" (thesis: {shown}{fast})"


__all__ = ["KNOBS", "PRESET", "IDENTITY_KEYS", "ADDED_LATER", "EVAL_MAY_CHANGE", "ADAM_LR",
           "THESIS_MODEL", "FAST_PRESET", "ConfigError", "resolve", "resolve_stored", "upgrade_stored", "preset_values",
           "describe_default", "add_flags", "flag", "CONVERSION_KNOBS"]

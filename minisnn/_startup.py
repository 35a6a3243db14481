"""Ctrl-C while ``python -m minisnn.train`` (or ``minisnn.analyze``) is starting.

Such a command loads this package, and NumPy with it, before its own code runs: a Ctrl-C then
would end it with an import traceback. The package imports this module first; while ``python -m``
is locating a ``minisnn.`` module (``sys.argv[0]`` is "-m" until it is found), it installs a
SIGINT handler that ends the start with one line and status 130. The handler exits at once
(``os._exit``): an exception raised inside an extension module's import would reach the user as
an ImportError traceback, and nothing has been written yet that needs cleaning up. The command's
main() replaces it with its own handling.
"""
import os
import signal
import sys


def _command():
    """``minisnn.<command>`` of ``python -m minisnn.<command>`` while it is being located, else None."""
    if sys.argv[:1] != ["-m"]:
        return None
    args = sys.orig_argv
    for i, arg in enumerate(args[1:], 1):
        if arg.startswith("-m"):           # "-m minisnn.train" or "-mminisnn.train"
            target = arg[2:] or (args[i + 1] if i + 1 < len(args) else "")
            return target if target.startswith("minisnn.") else None
    return None


COMMAND = _command()


def _interrupted(signum, frame):
    print(f"{COMMAND}: interrupted while starting", file=sys.stderr, flush=True)
    os._exit(128 + signum)


if COMMAND:
    signal.signal(signal.SIGINT, _interrupted)

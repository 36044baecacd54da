"""Command-line edge: flag types that reject bad values, one-line errors with exit code 2, and graceful stops."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, NoReturn


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line on stderr and exits with code 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see --help)")


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _integer(text: str) -> int:
    """Accept 1000, 1e6 or 1_000_000; reject 2.5."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not value.is_integer():
            raise argparse.ArgumentTypeError(f"must be an integer, got {text}") from None
        return int(value)


def positive_int(text: str) -> int:
    value = _integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 disables), got {text}")
    return value


def unit_float(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


class StopRequest:
    """SIGINT/SIGTERM: the first asks the loop to finish its step and checkpoint; a second aborts at once.

    Python delivers signals to the main thread only: elsewhere (a worker thread) nothing is installed.
    """

    def __init__(self) -> None:
        self.requested = False
        in_main_thread = threading.current_thread() is threading.main_thread()
        self.previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main_thread else {}
        for sig in self.previous:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{signal.Signals(signum).name}: finishing this step and writing a checkpoint (again to abort now)", file=sys.stderr)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

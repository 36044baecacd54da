"""Command-line edge: flag types that reject bad values, one-line errors with exit code 2, and graceful stops."""
from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, NoReturn


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


def explicit_flags(argv: list[str]) -> set[str]:
    """The names of the flags given on a command line ('--seed 3' and '--seed=3' give 'seed')."""
    return {a[2:].split("=")[0] for a in argv if a.startswith("--")}


def merge_resume_flags(config: argparse.Namespace, explicit: set[str], fixed: set[str], algo: str) -> argparse.Namespace:
    """The checkpoint's flags, overridden by the flags given on this command line (`explicit`); `fixed` ones cannot change.

    --resume is a checkpoint file or a run name (its newest `<algo>_*` checkpoint); config.resume becomes its path.
    """
    from utils.checkpoints import CheckpointError, load_checkpoint
    from utils.constants import RunPaths

    path = Path(config.resume)
    if not path.is_file():  # a run name: its newest checkpoint
        run_folder = RunPaths(config.output_dir, config.resume).checkpoints
        candidates = sorted(run_folder.glob(f"{algo}_*_ckpt_steps_*.pth"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
        if not candidates:
            fail(f"--resume '{config.resume}' is neither a checkpoint file nor a run with checkpoints in {run_folder}")
        path = candidates[-1]
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as e:
        fail(f"--resume: {e}")
    if "step" not in checkpoint or "args" not in checkpoint:
        fail(f"--resume: '{path}' is a model file without its step and flags, not a training checkpoint (use models/checkpoints/<run>/...)")
    if "env_id" in explicit and config.env_id != checkpoint["env_id"]:
        fail(f"--resume: '{path}' is a checkpoint of {checkpoint['env_id']}, not of --env_id {config.env_id}")
    if "random_states" in checkpoint:  # a training checkpoint continues its own random states, optimizer and memory
        for flag in sorted(fixed & explicit):
            stored = checkpoint["args"].get(flag)
            if stored is not None and getattr(config, flag) != stored:
                fail(f"--resume: --{flag} cannot change on resume (the checkpoint has {stored}); start a new run to change it")
    merged = vars(config) | checkpoint["args"]  # flags newer than the checkpoint keep their defaults
    merged.update({k: v for k, v in vars(config).items() if k in explicit})
    merged["output_dir"] = Path(merged["output_dir"])
    merged["resume"] = str(path)
    resumed = argparse.Namespace(**merged)
    if resumed.num_of_training_steps <= checkpoint["step"]:
        fail(f"--resume: the checkpoint is at step {checkpoint['step']}; pass a larger --num_of_training_steps to go on")
    return resumed


def check_writable(output_dir: Path) -> None:
    """Fail in one line, creating nothing, when output_dir cannot be created or written."""
    existing = Path(output_dir).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        fail(f"--output_dir '{output_dir}' cannot be created: '{existing}' is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        fail(f"--output_dir '{output_dir}' is not writable ({e.strerror}); choose another with --output_dir")


def parse_training_flags(
    parser: argparse.ArgumentParser, presets: dict[str, dict[str, Any]], argv: list[str], fixed_on_resume: set[str], algo: str,
    checks: Callable[[argparse.Namespace], None], run_name_prefix: str = "",
) -> argparse.Namespace:
    """A training script's flags: a --preset's defaults (flags given win), --resume's stored flags, then the checks.

    Checks, each one line on stderr and exit code 2: a registered Atari --env_id, --device cuda only with a GPU,
    the script's own `checks`, a writable --output_dir. --run_name defaults to <prefix><env_id>_<date>_<time>.
    """
    import torch

    from utils.env_wrappers import EnvIdError, validate_env_id

    config = parser.parse_args(argv)
    if config.preset:
        parser.set_defaults(**presets[config.preset])
        config = parser.parse_args(argv)
    if config.resume:
        config = merge_resume_flags(config, explicit_flags(argv), fixed_on_resume, algo)
    try:
        validate_env_id(config.env_id)
    except EnvIdError as e:
        fail(str(e))
    if config.device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda was given but no CUDA GPU is visible to PyTorch; use --device cpu or auto")
    checks(config)
    check_writable(config.output_dir)
    if config.run_name is None:
        config.run_name = f"{run_name_prefix}{config.env_id}_{time.strftime('%Y%m%d_%H%M%S')}"
    return config


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

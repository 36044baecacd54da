"""Checkpoints and best models: atomic writes, safe loads, names, pruning.

A checkpoint is a dict of tensors and plain Python values only (so it loads with
`weights_only=True`). Every file is written to a temporary file in the destination folder,
flushed, fsynced and renamed over the target, so a kill at any moment leaves either the old
file or the new one. Old checkpoints are pruned only after the new one is in place.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

import torch

from utils.constants import ROOT_PATH


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or not one of ours; the message is one line."""


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file through `write(f)` into a temp file beside `path`, fsync it and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def atomic_torch_save(obj: dict[str, Any], path: Path) -> Path:
    """torch.save(obj) to `path` atomically."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: Path | str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (`weights_only=True`, `map_location`); raise CheckpointError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises several types for truncated, foreign or unsafe files
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot load checkpoint '{path}': {first_line[:200]}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "env_id" not in checkpoint:
        raise CheckpointError(f"'{path}' is not a DQN checkpoint of this project (no state_dict/env_id)")
    return checkpoint


def list_checkpoints(folder: Path, env_id: str, algo: str = "dqn") -> list[Path]:
    """Checkpoints of env_id (and algorithm, the file name's prefix) in folder, oldest (fewest steps) first."""
    pattern = re.compile(rf"^{algo}_{re.escape(env_id)}_ckpt_steps_(\d+)\.pth$")
    found = [(int(m.group(1)), p) for p in Path(folder).glob("*.pth") if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def prune_checkpoints(folder: Path, env_id: str, keep: int, algo: str = "dqn") -> None:
    """Delete all but the `keep` newest checkpoints of env_id (keep <= 0 keeps all)."""
    if keep > 0:
        for old in list_checkpoints(folder, env_id, algo)[:-keep]:
            old.unlink(missing_ok=True)


def next_binary_path(folder: Path, env_id: str, algo: str = "dqn") -> Path:
    """models/binaries/<algo>_<env_id>_<NNNNNN>.pth with the next free number: a new run never overwrites a best model."""
    pattern = re.compile(rf"^{algo}_{re.escape(env_id)}_(\d{{6}})\.pth$")
    taken = [int(m.group(1)) for p in Path(folder).glob("*.pth") if (m := pattern.match(p.name))]
    return Path(folder) / f"{algo}_{env_id}_{max(taken, default=-1) + 1:06d}.pth"


def git_commit() -> str | None:
    """The current commit hash of the repository, or None outside git (never fails)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT_PATH, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None

"""Helpers shared by the benchmarks: import path, machine description, median timing, real frames, the training loop's FPS.

The benchmarks import the library (utils/, models/) and run train_DQN_script.py as a user does, in a
subprocess, reading its speed from the FPS scalars it writes to TensorBoard."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402


def cpu_kind() -> str:
    """'AMX', 'AVX-512 bf16', 'AVX-512', 'AVX2' or 'other': the best matrix instructions this CPU has."""
    try:
        flags = set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return "other"
    for flag, kind in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 bf16"), ("avx512f", "AVX-512"), ("avx2", "AVX2")):
        if flag in flags:
            return kind
    return "other"


def machine() -> dict:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cpu_kind": cpu_kind(),
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 5, sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time of fn() over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def real_frames(env_id: str, count: int, seed: int = 0) -> np.ndarray:
    """`count` consecutive (84, 84) uint8 frames of random play through the training wrapper stack."""
    from utils.env_wrappers import make_atari_env

    env = make_atari_env(env_id, training=True)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    frames = np.empty((count, 84, 84), dtype=np.uint8)
    for i in range(count):
        frames[i] = obs
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return frames


def training_loop_fps(argv: list[str], steps: int, warmup: int, threads: int | None = None) -> list[float]:
    """Agent steps/s of `train_DQN_script.py *argv` over `steps` agent steps after `warmup`, one figure per window of steps / 4.

    Runs the script in a subprocess (nothing saved but its TensorBoard scalars) and reads its FPS scalar,
    skipping the window that contains the warmup.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    window = max(steps // 4, 1)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads)) if threads else None
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([
            sys.executable, str(ROOT / "train_DQN_script.py"), *argv, "--num_of_training_steps", str(warmup + steps),
            "--num_warmup_steps", str(warmup), "--log_freq", str(window), "--console_log_freq", "0", "--checkpoint_freq", "0",
            "--eval_freq", "0", "--grads_log_freq", "0", "--output_dir", out, "--run_name", "bench",
        ], check=True, capture_output=True, text=True, env=env)
        events = EventAccumulator(str(Path(out) / "runs" / "bench"), size_guidance={"scalars": 0})
        events.Reload()
        return [e.value for e in events.Scalars("FPS") if e.step > warmup + window]

"""Helpers shared by the benchmarks: import path, machine description, median timing, real frames."""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402


def machine() -> dict:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
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

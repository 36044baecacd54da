"""Resident memory and sample latency of the replay buffer filled with real game frames. Prints JSON.

    python bench/replay_memory.py --size 1000000

For each game and mode (raw, lz4), in a fresh subprocess: collect --real_frames frames of random
play through the training wrappers, fill a buffer of --size slots with them (cycling through the
real frames when size > real_frames), and report the process's RSS growth, bytes per transition
and the median latency of sampling a batch of 32. --size defaults to 1M when the raw buffer fits
in the available RAM, else the largest size that does.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import psutil
from _common import machine, median_seconds, real_frames

from utils.replay_buffer import ReplayBuffer, replay_buffer_bytes


def measure(env_id: str, compression: str, size: int, num_real: int) -> dict:
    frames = real_frames(env_id, num_real)
    process = psutil.Process()
    rss_before = process.memory_info().rss
    buffer = ReplayBuffer(size, seed=0, compression=compression)
    for i in range(size):
        slot = buffer.store_frame(frames[i % num_real])
        buffer.store_action_reward_done(slot, i % 4, 0.0, i % 1000 == 999)
    rss = process.memory_info().rss - rss_before
    sample = median_seconds(lambda: buffer.fetch_random_states(32), repeats=500)
    return {
        "env_id": env_id,
        "mode": compression,
        "size": size,
        "real_frames_cycled": num_real,
        "rss_gb": round(rss / 1e9, 3),
        "bytes_per_transition": round(rss / size, 1),
        "sample_32_ms": round(sample * 1e3, 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--real_frames", type=int, default=50_000)
    p.add_argument("--games", nargs="+", default=["BreakoutNoFrameskip-v4", "PongNoFrameskip-v4"])
    p.add_argument("--modes", nargs="+", default=["none", "lz4"])
    p.add_argument("--one", nargs=2, metavar=("ENV_ID", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    size = args.size
    if size is None:
        fits = int(0.8 * psutil.virtual_memory().available / replay_buffer_bytes(1))
        size = min(1_000_000, fits)
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], size, min(args.real_frames, size))))
        return
    results = []
    for game in args.games:
        for mode in args.modes:
            out = subprocess.run(
                [sys.executable, __file__, "--one", game, mode, "--size", str(size), "--real_frames", str(args.real_frames)],
                capture_output=True, text=True, check=True,
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(json.dumps({
        "benchmark": "replay_memory",
        "raw_lower_bound_gb": round(size * 84 * 84 / 1e9, 3),
        "results": results,
        "machine": machine(),
    }, indent=2))


if __name__ == "__main__":
    main()

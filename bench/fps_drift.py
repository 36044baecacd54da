"""Does the training loop slow down as the replay buffer fills? Prints JSON.

    python bench/fps_drift.py --buffer_size 200000

Runs train_DQN_script.py until a buffer of --buffer_size frames is full, at constant epsilon, logging FPS
(the current rate over windows of --window agent steps). Compares the mean FPS of the windows at
10-20% buffer fill with the last 10% (90-100% fill): drift = (late - early) / early in percent.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import ROOT, machine
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env_id", default="BreakoutNoFrameskip-v4")
    p.add_argument("--buffer_size", type=int, default=200_000)
    p.add_argument("--warmup", type=int, default=10_000)
    p.add_argument("--window", type=int, default=2_000)
    p.add_argument("--epsilon", type=float, default=0.1)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--replay_compression", choices=["none", "lz4"], default="none")
    p.add_argument("--num_envs", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads)) if args.threads else None
    n = args.buffer_size
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([
            sys.executable, str(ROOT / "train_DQN_script.py"), "--num_envs", str(args.num_envs), "--env_id", args.env_id, "--replay_buffer_size", str(n), "--num_of_training_steps", str(n),
            "--num_warmup_steps", str(args.warmup), "--log_freq", str(args.window), "--console_log_freq", "0",
            "--checkpoint_freq", "0", "--eval_freq", "0", "--grads_log_freq", "0", "--device", args.device,
            "--epsilon_start_value", str(args.epsilon), "--epsilon_end_value", str(args.epsilon),
            "--replay_compression", args.replay_compression, "--output_dir", out, "--run_name", "drift",
        ], check=True, capture_output=True, env=env)
        events = EventAccumulator(str(Path(out) / "runs" / "drift"), size_guidance={"scalars": 0})
        events.Reload()
        fps = {e.step: e.value for e in events.Scalars("FPS")}
    early = [v for s, v in fps.items() if 0.1 * n < s <= 0.2 * n and s > args.warmup + args.window]
    late = [v for s, v in fps.items() if s > 0.9 * n]
    early_fps, late_fps = float(np.mean(early)), float(np.mean(late))
    print(json.dumps({
        "benchmark": "fps_drift",
        "env_id": args.env_id,
        "buffer_size": n,
        "num_envs": args.num_envs,
        "replay_compression": args.replay_compression,
        "fps_at_10_20pct_fill": round(early_fps, 1),
        "fps_at_90_100pct_fill": round(late_fps, 1),
        "drift_pct": round(100 * (late_fps - early_fps) / early_fps, 2),
        "fps_windows": {str(s): round(v, 1) for s, v in sorted(fps.items())},
        "machine": machine(),
    }, indent=2))


if __name__ == "__main__":
    main()

"""Agent steps/s of the PPO and A2C training loops in fp32 and in bf16 (fp32 masters, bf16 body), A B A B. Prints JSON.

    python bench/on_policy_throughput.py --env_id BreakoutNoFrameskip-v4 --rounds 2

Runs train_PPO_script.py and train_A2C_script.py as a user does (their own settings: PPO 8 envs x 128 steps,
4 epochs x 4 minibatches of 256; A2C 16 envs x 5 steps), in a subprocess with nothing saved but TensorBoard
scalars, and reads their FPS scalar over --windows logging windows (PPO: 2,048 agent steps each, A2C: 4,000),
after a first one that is skipped (start-up).
The precisions alternate within each round, because machines drift; needs an idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, machine

# (script, agent steps per window): one PPO iteration is 1024 agent steps, one A2C update 80.
LOOPS = {"ppo": ("train_PPO_script.py", 2048), "a2c": ("train_A2C_script.py", 4000)}


def loop_fps(algo: str, env_id: str, precision: str, windows: int) -> list[float]:
    """Agent steps/s of one run of the algorithm's script, one figure per logging window after the first."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    script, window = LOOPS[algo]
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([
            sys.executable, str(ROOT / script), "--env_id", env_id, "--precision", precision,
            "--num_of_training_steps", str(window * (windows + 1)), "--log_freq", str(window), "--eval_freq", "0",
            "--checkpoint_freq", "0", "--output_dir", out, "--run_name", "bench",
        ], check=True, capture_output=True, text=True, env=dict(os.environ))
        events = EventAccumulator(str(Path(out) / "runs" / "bench"), size_guidance={"scalars": 0})
        events.Reload()
        return [e.value for e in events.Scalars("FPS") if e.step > window]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env_id", default="BreakoutNoFrameskip-v4")
    p.add_argument("--algos", default="ppo,a2c", help="comma-separated: ppo, a2c")
    p.add_argument("--rounds", type=int, default=2, help="A B rounds (fp32 then bf16) per algorithm")
    p.add_argument("--windows", type=int, default=3, help="logging windows timed per run, after the first")
    args = p.parse_args()
    result = {"machine": machine(), "env_id": args.env_id, "loops": {}}
    for algo in args.algos.split(","):
        runs = {"fp32": [], "bf16": []}
        for _ in range(args.rounds):
            for precision in runs:
                runs[precision].append(statistics.median(loop_fps(algo, args.env_id, precision, args.windows)))
        result["loops"][algo] = {
            "agent_steps_per_s": {k: [round(v, 1) for v in vals] for k, vals in runs.items()},
            "bf16_over_fp32": round(statistics.median(runs["bf16"]) / statistics.median(runs["fp32"]), 2),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

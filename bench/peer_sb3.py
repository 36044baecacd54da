"""This project's training loop against Stable-Baselines3's DQN, side by side on identical settings. Prints JSON.

    make bench-peer                      # makes .venv-sb3 (bench/peer_requirements.txt), then runs this
    python bench/peer_sb3.py --peer_python .venv-sb3/bin/python --rounds 2

Settings shared by both (rl-baselines3-zoo's Atari DQN where they have one): Breakout, one update of
a 32-batch per 4 agent steps, 100k buffer, target copy every 1000 steps, Adam 1e-4, a constant
epsilon, the same torch threads, learning started after --warmup steps, --num_envs games on each side
(SB3: a DummyVecEnv with train_freq 4 // N vector steps, so one update per 4 agent steps on both). Rounds alternate A B A B
(this project, then SB3) so a drift of the machine hits both alike; each figure is agent steps/s
over --steps steps after learning starts. Needs an idle machine.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

from _common import ROOT, machine, training_loop_fps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peer_python", type=Path, default=ROOT / ".venv-sb3" / "bin" / "python", help="Python of the SB3 environment")
    p.add_argument("--env_id", default="BreakoutNoFrameskip-v4")
    p.add_argument("--steps", type=int, default=4000, help="agent steps timed after learning starts")
    p.add_argument("--warmup", type=int, default=2000)
    p.add_argument("--epsilon", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2, help="A B pairs")
    p.add_argument("--num_envs", type=int, default=1, choices=[1, 2, 4], help="games per vector step on both sides")
    args = p.parse_args()
    if not args.peer_python.is_file():
        raise SystemExit(f"error: no SB3 environment at {args.peer_python}; run `make bench-peer`")
    ours_argv = ["--num_envs", str(args.num_envs),
        "--env_id", args.env_id, "--acting_learning_step_ratio", "4", "--replay_buffer_size", "100000",
        "--batch_size", "32", "--target_dqn_update_interval", "1000", "--learning_rate", "1e-4",
        "--epsilon_start_value", str(args.epsilon), "--epsilon_end_value", str(args.epsilon),
    ]
    peer_argv = [str(args.peer_python), str(ROOT / "bench" / "_sb3_side.py"), "--env_id", args.env_id, "--steps", str(args.steps),
                 "--warmup", str(args.warmup), "--epsilon", str(args.epsilon), "--threads", str(args.threads),
                 "--num_envs", str(args.num_envs)]
    ours, peer = [], []
    for _ in range(args.rounds):
        ours.append(statistics.mean(training_loop_fps(ours_argv, args.steps, args.warmup, args.threads)))
        result = subprocess.run(peer_argv, capture_output=True, text=True, check=True)
        peer.append(json.loads(result.stdout.strip().splitlines()[-1])["steps_per_s"])
    version = subprocess.run([str(args.peer_python), "-c", "import stable_baselines3 as s; print(s.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    print(json.dumps({
        "benchmark": "peer_sb3",
        "env_id": args.env_id,
        "settings": {"num_envs": args.num_envs, "ratio": 4, "batch": 32, "buffer": 100_000, "target_interval": 1000, "epsilon": args.epsilon,
                     "warmup": args.warmup, "timed_steps": args.steps, "threads": args.threads},
        "order": "A B " * args.rounds,
        "ours_steps_per_s": [round(x, 1) for x in ours],
        "sb3_steps_per_s": [round(x, 1) for x in peer],
        "sb3_version": version,
        "ratio_of_medians": round(statistics.median(ours) / statistics.median(peer), 2),
        "machine": machine(),
    }, indent=2))


if __name__ == "__main__":
    main()

"""Where a PPO or A2C iteration's time goes: the emulators, acting (the policy's passes and sampling), the rest of
the rollout (frame stacks, bookkeeping), and the update (GAE, minibatches, gradient steps, logging). Prints JSON.

    python bench/on_policy_profile.py --algo ppo --env_id PongNoFrameskip-v4 --iterations 30 --device cuda

Runs the script's own training function in this process, as a user's run does (no evaluations or checkpoints),
with timers wrapped around the vector env's `step`, the collector's `collect` and the network's `policy` pass
(CUDA synchronised at each timer's ends when on the GPU, so the timers add a little). The first
--skip iterations (start-up, first allocations) are not counted.
"""
from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from collections import defaultdict
from typing import Any, Callable

import torch

from _common import machine
from models.definitions.ActorCritic import ActorCritic
from utils.env_wrappers import AleVectorEnvs, GymnasiumEnvs
from utils.on_policy import RolloutCollector
from utils.on_policy_run import OnPolicyRun

SECONDS: dict[str, float] = defaultdict(float)
STATE = {"counting": False, "in_collect": False}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(name: str, method: Callable[..., Any], only_in_collect: bool = False) -> Callable[..., Any]:
    """`method` with its wall time added to SECONDS[name] (while counting; within a rollout only, if asked)."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not STATE["counting"] or (only_in_collect and not STATE["in_collect"]):
            return method(*args, **kwargs)
        sync()
        start = time.perf_counter()
        result = method(*args, **kwargs)
        sync()
        SECONDS[name] += time.perf_counter() - start
        return result
    return wrapper


def install_timers(skip: int) -> None:
    collect = RolloutCollector.collect

    def collect_timed(self: RolloutCollector, *args: Any, **kwargs: Any) -> Any:
        STATE["in_collect"] = True
        try:
            return timed("rollout", collect)(self, *args, **kwargs)
        finally:
            STATE["in_collect"] = False

    RolloutCollector.collect = collect_timed
    for envs in (AleVectorEnvs, GymnasiumEnvs):
        envs.step = timed("emulators", envs.step)
    ActorCritic.policy = timed("acting passes", ActorCritic.policy, only_in_collect=True)
    end_iteration = OnPolicyRun.end_iteration

    def end_iteration_counted(self: OnPolicyRun, *args: Any, **kwargs: Any) -> None:
        end_iteration(self, *args, **kwargs)
        if self.iteration == skip:
            sync()
            STATE["counting"], SECONDS["start"] = True, time.perf_counter()

    OnPolicyRun.end_iteration = end_iteration_counted


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", choices=["ppo", "a2c"], default="ppo")
    p.add_argument("--env_id", default="PongNoFrameskip-v4")
    p.add_argument("--iterations", type=int, default=30, help="iterations timed, after --skip")
    p.add_argument("--skip", type=int, default=3, help="iterations not timed (start-up)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    args = p.parse_args()
    if args.algo == "ppo":
        import train_PPO_script as script
        train = script.train_ppo
    else:
        import train_A2C_script as script
        train = script.train_a2c
    install_timers(args.skip)
    with tempfile.TemporaryDirectory() as out:
        probe = script.parse_config(["--output_dir", out])
        batch = probe.num_envs * probe.num_steps
        config = script.parse_config([
            "--env_id", args.env_id, "--num_of_training_steps", str(batch * (args.skip + args.iterations)),
            "--eval_freq", "0", "--checkpoint_freq", "0", "--log_freq", "0", "--episode_log_freq", "0",
            "--device", args.device, "--precision", args.precision, "--output_dir", out, "--run_name", "profile",
        ])
        summary = train(config)
    sync()
    total = time.perf_counter() - SECONDS.pop("start")
    steps = batch * args.iterations
    parts = {
        "emulators": SECONDS["emulators"],
        "acting passes": SECONDS["acting passes"],
        "rest of the rollout": SECONDS["rollout"] - SECONDS["emulators"] - SECONDS["acting passes"],
        "update and bookkeeping": total - SECONDS["rollout"],
    }
    print(json.dumps({
        "benchmark": "on_policy_profile", "machine": machine(), "algo": args.algo, "env_id": args.env_id,
        "device": args.device, "precision": args.precision, "num_envs": config.num_envs, "num_steps": config.num_steps,
        "iterations_timed": args.iterations, "steps_done": summary["steps"],
        "agent_steps_per_s": round(steps / total, 1),
        "ms_per_iteration": {name: round(1000 * s / args.iterations, 2) for name, s in parts.items()},
        "share": {name: round(s / total, 3) for name, s in parts.items()},
    }, indent=1))


if __name__ == "__main__":
    main()

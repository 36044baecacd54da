"""Agent steps/s of the Nature-protocol evaluator playing K games side by side (`games_at_once`). Prints JSON.

    python bench/evaluation_speed.py --env_id PongNoFrameskip-v4 --games 10 --games_at_once 1,5,10

A fresh DQN (epsilon 0.05) and a fresh actor-critic (epsilon 0) play --games games, each capped at
--max_episode_frames, on the device training would use, as training's evaluations run them (its working
copy: a bf16 body where the CPU has native bf16) and as evaluate_DQN_script.py does (fp32 weights under
bf16 autocast there); one figure per K, network and path (the whole evaluation's agent steps over its
wall time, envs made and closed included).
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from _common import machine
from models.definitions.ActorCritic import ActorCritic
from models.definitions.DQN import DQN
from utils.evaluation import EVAL_EPSILON, evaluate
from utils.precision import on_device, pick_device_and_precision, working_copy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env_id", default="PongNoFrameskip-v4")
    p.add_argument("--games", type=int, default=10)
    p.add_argument("--games_at_once", default="1,5,10", help="comma-separated K values")
    p.add_argument("--max_episode_frames", type=int, default=4000)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = p.parse_args()
    device, compute_dtype = pick_device_and_precision(args.device, "auto")
    torch.manual_seed(0)
    results = {}
    for name, network, epsilon in (("dqn", DQN(6), EVAL_EPSILON), ("actor_critic", ActorCritic(6), 0.0)):
        master = on_device(network, device)
        for path, model, autocast_dtype in (("training", working_copy(master, compute_dtype), None), ("evaluator_script", master, compute_dtype)):
            figures = results.setdefault(f"{name}, {path}", {})
            for k in (int(x) for x in args.games_at_once.split(",")):
                start = time.perf_counter()
                result = evaluate(model, args.env_id, args.games, seed=3, epsilon=epsilon, max_episode_frames=args.max_episode_frames,
                                  autocast_dtype=autocast_dtype, games_at_once=k)
                figures[str(k)] = round(sum(result.lengths) / (time.perf_counter() - start), 1)
    print(json.dumps({
        "benchmark": "evaluation_speed", "machine": machine(), "env_id": args.env_id, "games": args.games,
        "max_episode_frames": args.max_episode_frames, "device": str(device),
        "precision": "bf16" if compute_dtype is not None else "fp32", "agent_steps_per_s_by_games_at_once": results,
    }, indent=1))


if __name__ == "__main__":
    main()

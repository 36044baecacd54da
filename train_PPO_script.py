"""PPO (Schulman et al., 2017) on Atari, top to bottom: flags, then the paper's algorithm box.

    python train_PPO_script.py --preset pong
    python train_PPO_script.py --env_id BreakoutNoFrameskip-v4

Algorithm (CleanRL's ppo_atari.py, the settings of the paper's Atari experiments): N actors play
T steps each with the current policy; advantages by GAE(gamma, lambda) bootstrapped from the
last states' values; then K epochs over the N*T samples in M shuffled minibatches, each a step of
Adam on the clipped surrogate, the clipped value loss and an entropy bonus, gradients clipped to
a global norm; the learning rate anneals linearly to 0 over the run. The pieces live in utils/:
the network (models/definitions/ActorCritic.py), rollouts, GAE and the loss (on_policy), the
env stack (env_wrappers), the run's state, logging, evaluation and checkpoints (on_policy_run).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from models.definitions.ActorCritic import ActorCritic
from utils.checkpoints import CheckpointError
from utils.cli import (
    OneLineArgumentParser,
    StopRequest,
    fail,
    parse_training_flags,
    non_negative_int,
    positive_float,
    positive_int,
    unit_float,
)
from utils.constants import ROOT_PATH
from utils.env_wrappers import VECTOR_ENVS, EnvIdError, TrainingEnvs, make_training_envs
from utils.on_policy import Rollout, RolloutCollector, advantages_and_returns, explained_variance, ppo_loss
from utils.on_policy_run import OnPolicyRun
from utils.training_state import set_random_seeds

ALGO = "ppo"  # the prefix of this script's checkpoint and model files
FIXED_ON_RESUME = {"seed", "num_envs", "num_steps"}

# Named sets of flags; flags given on the command line win. CleanRL's ppo_atari.py runs every game with
# the defaults below for 10M agent steps: Pong 20.36 +- 0.20, Breakout 414.66 +- 28.09 (training returns,
# 3 seeds; vwxyzjn/cleanrl docs/rl-algorithms/ppo.md, beside openai/baselines' PPO2: 20.51, 406.57).
PRESETS: dict[str, dict[str, Any]] = {
    "pong": {"env_id": "PongNoFrameskip-v4", "num_of_training_steps": 10_000_000},
    "breakout": {"env_id": "BreakoutNoFrameskip-v4", "num_of_training_steps": 10_000_000},
}


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=list(PRESETS), default=None, help="a named set of defaults (printed at start); flags given win")
    p.add_argument("--env_id", type=str, default="BreakoutNoFrameskip-v4", help="Atari *NoFrameskip-v4 game id")
    p.add_argument("--seed", type=int, default=1, help="random seed (python, numpy, torch, envs)")
    p.add_argument("--num_of_training_steps", type=positive_int, default=10_000_000, help="agent steps over all envs (1 step = 4 frames)")
    p.add_argument("--num_envs", type=positive_int, default=8, help="actors N playing at once")
    p.add_argument("--vector_env", choices=list(VECTOR_ENVS), default="auto", help="auto: gymnasium wrappers for 1 env, ale-py's threaded vector env for more")
    p.add_argument("--num_steps", type=positive_int, default=128, help="steps T each actor plays per rollout")
    p.add_argument("--learning_rate", type=positive_float, default=2.5e-4, help="Adam learning rate at the start")
    p.add_argument("--anneal_lr", type=int, choices=[0, 1], default=1, help="1: the learning rate falls linearly to 0 over the run")
    p.add_argument("--gamma", type=unit_float, default=0.99, help="discount factor")
    p.add_argument("--gae_lambda", type=unit_float, default=0.95, help="GAE lambda")
    p.add_argument("--num_minibatches", type=positive_int, default=4, help="minibatches M per epoch")
    p.add_argument("--update_epochs", type=positive_int, default=4, help="epochs K over each rollout")
    p.add_argument("--norm_adv", type=int, choices=[0, 1], default=1, help="1: normalise advantages per minibatch")
    p.add_argument("--clip_coef", type=positive_float, default=0.1, help="surrogate (and value) clipping epsilon")
    p.add_argument("--clip_vloss", type=int, choices=[0, 1], default=1, help="1: clip the value loss around the old values")
    p.add_argument("--ent_coef", type=float, default=0.01, help="entropy bonus coefficient")
    p.add_argument("--vf_coef", type=float, default=0.5, help="value loss coefficient")
    p.add_argument("--max_grad_norm", type=positive_float, default=0.5, help="max global gradient L2 norm")
    p.add_argument("--log_freq", type=non_negative_int, default=10_000, help="agent steps between TensorBoard scalars; 0 disables")
    p.add_argument("--episode_log_freq", type=non_negative_int, default=1, help="episodes between episode-stat logs; 0 disables")
    p.add_argument("--eval_freq", type=non_negative_int, default=250_000, help="agent steps between Nature-protocol evaluations; 0 disables")
    p.add_argument("--eval_episodes", type=positive_int, default=10, help="full games per evaluation (the policy's sampling, epsilon 0)")
    p.add_argument("--checkpoint_freq", type=non_negative_int, default=250_000, help="agent steps between checkpoints; 0 disables")
    p.add_argument("--keep_checkpoints", type=non_negative_int, default=3, help="newest checkpoints kept; 0 keeps all")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto = cuda when available")
    p.add_argument("--run_name", type=str, default=None, help="runs/<run_name>/ (default: ppo_<env_id>_<date>_<time>)")
    p.add_argument("--resume", type=str, default=None, help="checkpoint path or run name to continue")
    p.add_argument("--output_dir", type=Path, default=ROOT_PATH, help="root of models/checkpoints, models/binaries, runs")
    return p


def parse_config(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate flags; every problem ends in one line on stderr and exit code 2 (--resume: as the DQN script)."""
    argv = sys.argv[1:] if argv is None else argv
    return parse_training_flags(build_parser(), PRESETS, argv, FIXED_ON_RESUME, ALGO, check_ppo_flags, run_name_prefix=f"{ALGO}_")


def check_ppo_flags(config: argparse.Namespace) -> None:
    if (config.num_envs * config.num_steps) % config.num_minibatches:
        fail(f"--num_minibatches {config.num_minibatches} must divide --num_envs x --num_steps = {config.num_envs * config.num_steps}")


# ---------------------------------------------------------------------------------------------
# Training: the paper's algorithm box.
# ---------------------------------------------------------------------------------------------
def train_ppo(config: argparse.Namespace, env_factory: Callable[..., TrainingEnvs] = make_training_envs) -> dict[str, Any]:
    """Run (or, with config.resume, continue) a PPO training; returns a summary (steps, iterations, episodes, paths)."""
    set_random_seeds(config.seed)
    device = torch.device("cuda" if config.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    envs = env_factory(config.env_id, config.num_envs, config.vector_env, None)
    model = ActorCritic(envs.num_actions).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-5)
    run = OnPolicyRun(ALGO, config, model, optimizer, RolloutCollector(envs, seed=config.seed))
    batch_size = config.num_envs * config.num_steps
    num_iterations = config.num_of_training_steps // batch_size
    rollout = Rollout.empty(config.num_steps, config.num_envs)
    stop, start_step = StopRequest(), run.step
    try:
        while run.iteration < num_iterations and not stop.requested:
            first = run.step + 1
            if config.anneal_lr:  # linearly to 0 over the run
                optimizer.param_groups[0]["lr"] = config.learning_rate * (1.0 - run.iteration / num_iterations)
            # Play T steps in each of the N envs with the current policy.
            scores = run.collector.collect(model, rollout, device, run.generator)
            # Advantages: GAE, bootstrapped from the values of the states the rollout ends in.
            with torch.no_grad():
                _, next_values = model(torch.from_numpy(rollout.next_states).to(device))
            advantages, returns = advantages_and_returns(
                rollout.rewards, rollout.values, rollout.starts, next_values.cpu().numpy(), rollout.next_starts,
                config.gamma, config.gae_lambda,
            )
            # K epochs of M minibatches on the clipped surrogate.
            batch = {name: torch.from_numpy(array.reshape(batch_size, *array.shape[2:])).to(device) for name, array in (
                ("states", rollout.states), ("actions", rollout.actions), ("log_probs", rollout.log_probs),
                ("values", rollout.values), ("advantages", advantages), ("returns", returns))}
            for _ in range(config.update_epochs):
                for indices in np.split(run.rng.permutation(batch_size), config.num_minibatches):
                    mb = {name: tensor[indices] for name, tensor in batch.items()}
                    policy, new_values = model.policy(mb["states"])
                    mb_advantages = mb["advantages"]
                    if config.norm_adv:
                        mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
                    loss, stats = ppo_loss(
                        policy.log_prob(mb["actions"]), mb["log_probs"], mb_advantages, new_values, mb["values"],
                        mb["returns"], policy.entropy(), config.clip_coef, config.vf_coef, config.ent_coef, bool(config.clip_vloss),
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    optimizer.step()
            run.iteration += 1
            run.step += batch_size
            stats = {name: float(value) for name, value in stats.items()}
            stats["explained_variance"] = explained_variance(rollout.values.ravel(), returns.ravel())
            run.after_iteration(first, scores, stats)
        run.finish(start_step)
    finally:
        stop.restore()
        run.close()
        envs.close()
    checkpoint = run.paths.checkpoint(config.env_id, run.step, ALGO)
    if stop.requested:
        print(f"stopped at agent step {run.step}; checkpoint: {checkpoint}\nresume with: python train_PPO_script.py --resume {config.run_name}"
              + (f" --output_dir {config.output_dir}" if Path(config.output_dir) != ROOT_PATH else ""))
    return {
        "steps": run.step,
        "iterations": run.iteration,
        "stopped": stop.requested,
        "episodes": run.num_episodes,
        "mean_return": run.mean_return(),
        "best_eval_return": run.best_eval_return,
        "best_model_path": str(run.best_model_path) if run.best_model_path.exists() else None,
        "last_checkpoint": str(checkpoint),
        "run_dir": str(run.paths.tensorboard),
    }


def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv)
    if config.preset and not config.resume:
        print(f"preset {config.preset}: " + " ".join(f"--{k} {getattr(config, k)}" for k in PRESETS[config.preset]))
    try:
        summary = train_ppo(config)
    except (CheckpointError, EnvIdError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        print("aborted by a second interrupt; the last checkpoint on disk is intact", file=sys.stderr)
        sys.exit(130)
    print(f"done: {summary}")


if __name__ == "__main__":
    main()

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
from typing import Any, Callable

import numpy as np
import torch

from utils.cli import (
    OneLineArgumentParser,
    fail,
    positive_float,
    positive_int,
    unit_float,
)
from utils.env_wrappers import TrainingEnvs, make_training_envs
from utils.on_policy import Rollout, ppo_loss
from utils.on_policy_run import OnPolicyRun, add_run_flags, parse_run_flags, run_script

ALGO = "ppo"  # the prefix of this script's checkpoint and model files
# Presets (utils/on_policy_run.PRESETS): Pong and Breakout for 10M agent steps with the defaults below, as
# CleanRL's ppo_atari.py runs every game: Pong 20.36 +- 0.20, Breakout 414.66 +- 28.09 (training returns,
# 3 seeds; vwxyzjn/cleanrl docs/rl-algorithms/ppo.md, beside openai/baselines' PPO2: 20.51, 406.57).


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(description=__doc__.splitlines()[0])
    add_run_flags(p, ALGO, {"num_envs": 8, "num_steps": 128, "learning_rate": 2.5e-4, "anneal_lr": 1,
                            "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5})
    p.add_argument("--gae_lambda", type=unit_float, default=0.95, help="GAE lambda")
    p.add_argument("--num_minibatches", type=positive_int, default=4, help="minibatches M per epoch")
    p.add_argument("--update_epochs", type=positive_int, default=4, help="epochs K over each rollout")
    p.add_argument("--norm_adv", type=int, choices=[0, 1], default=1, help="1: normalise advantages per minibatch")
    p.add_argument("--clip_coef", type=positive_float, default=0.1, help="surrogate (and value) clipping epsilon")
    p.add_argument("--clip_vloss", type=int, choices=[0, 1], default=1, help="1: clip the value loss around the old values")
    return p


def parse_config(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate flags; every problem ends in one line on stderr and exit code 2 (--resume: as the DQN script)."""
    return parse_run_flags(build_parser(), ALGO, argv, check_ppo_flags)


def check_ppo_flags(config: argparse.Namespace) -> None:
    if (config.num_envs * config.num_steps) % config.num_minibatches:
        fail(f"--num_minibatches {config.num_minibatches} must divide --num_envs x --num_steps = {config.num_envs * config.num_steps}")


# ---------------------------------------------------------------------------------------------
# Training: the paper's algorithm box.
# ---------------------------------------------------------------------------------------------
def train_ppo(config: argparse.Namespace, env_factory: Callable[..., TrainingEnvs] = make_training_envs) -> dict[str, Any]:
    """Run (or, with config.resume, continue) a PPO training; returns a summary (steps, iterations, episodes, paths)."""
    run = OnPolicyRun.start(ALGO, config, env_factory, lambda params: torch.optim.Adam(params, lr=config.learning_rate, eps=1e-5))
    model, device = run.model, run.device
    batch_size = config.num_envs * config.num_steps
    rollout = Rollout.empty(config.num_steps, config.num_envs)
    with run.training():
        for first in run.iterations():  # each at its learning rate (--anneal_lr 1: linearly to 0 over the run)
            # Play T steps in each of the N envs with the current policy; GAE advantages, bootstrapped from the
            # values of the states the rollout ends in.
            scores, advantages, returns = run.play(rollout, config.gamma, config.gae_lambda)
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
                    run.gradient_step(loss, config.max_grad_norm)
            run.end_iteration(first, batch_size, scores, stats, rollout.values, returns)
    return run.summary()


if __name__ == "__main__":
    run_script(parse_config, train_ppo, None)

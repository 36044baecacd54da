"""A2C (Mnih et al., 2016, synchronous), the practical vanilla policy gradient on Atari, top to bottom.

    python train_A2C_script.py --preset pong
    python train_A2C_script.py --env_id BreakoutNoFrameskip-v4

Algorithm (the paper's advantage actor-critic, as Stable-Baselines3 and RL Zoo run it on Atari):
N actors play T = 5 steps each with the current policy; each step's n-step return is the
discounted sum of the rewards up to the rollout's end (or a terminal) plus the discounted value of
the state reached; one gradient step on all N*T samples minimises -A log pi(a|s) (A = return -
value), plus vf_coef times the squared error of the value, minus ent_coef times the policy's
entropy, with TensorFlow-style RMSProp and gradients clipped to a global norm (its learning rate
constant, as RL Zoo's, or with --anneal_lr 1 falling linearly to 0 as in OpenAI Baselines' A2C). The pieces live in
utils/: the network (models/definitions/ActorCritic.py), rollouts, n-step returns, the loss and
the optimizer (on_policy), the env stack (env_wrappers), the run's state, logging, evaluation and
checkpoints (on_policy_run).
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

import torch

from utils.cli import OneLineArgumentParser, positive_float, unit_float
from utils.env_wrappers import TrainingEnvs, make_training_envs
from utils.on_policy import Rollout, TFLikeRMSprop, a2c_loss
from utils.on_policy_run import OnPolicyRun, add_run_flags, parse_run_flags, run_script

ALGO = "a2c"  # the prefix of this script's checkpoint and model files
# Presets (utils/on_policy_run.PRESETS): Pong and Breakout for 10M agent steps with the defaults below, RL
# Zoo's Atari A2C (hyperparams/a2c.yml: 16 envs, vf_coef 0.25, ent_coef 0.01, RMSpropTFLike eps 1e-5; Stable-
# Baselines3's defaults otherwise), which scores Pong 17.29 +- 3.21 and Breakout 279.79 +- 122.18 (its benchmark.md).


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(description=__doc__.splitlines()[0])
    add_run_flags(p, ALGO, {"num_envs": 16, "num_steps": 5, "learning_rate": 7e-4, "anneal_lr": 0, "ent_coef": 0.01, "vf_coef": 0.25,
                            "max_grad_norm": 0.5})
    p.add_argument("--rms_alpha", type=unit_float, default=0.99, help="RMSProp decay")
    p.add_argument("--rms_eps", type=positive_float, default=1e-5, help="RMSProp epsilon, inside the square root")
    return p


def parse_config(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate flags; every problem ends in one line on stderr and exit code 2 (--resume: as the DQN script)."""
    return parse_run_flags(build_parser(), ALGO, argv)


# ---------------------------------------------------------------------------------------------
# Training: the paper's algorithm box.
# ---------------------------------------------------------------------------------------------
def train_a2c(config: argparse.Namespace, env_factory: Callable[..., TrainingEnvs] = make_training_envs) -> dict[str, Any]:
    """Run (or, with config.resume, continue) an A2C training; returns a summary (steps, iterations, episodes, paths)."""
    run = OnPolicyRun.start(ALGO, config, env_factory,
                            lambda params: TFLikeRMSprop(params, lr=config.learning_rate, alpha=config.rms_alpha, eps=config.rms_eps))
    model, device = run.model, run.device
    batch_size = config.num_envs * config.num_steps
    rollout = Rollout.empty(config.num_steps, config.num_envs)
    with run.training():
        for first in run.iterations():  # each at its learning rate (--anneal_lr 1: linearly to 0 over the run)
            # Play T steps in each of the N envs with the current policy; n-step returns (GAE with lambda = 1):
            # the rewards to the rollout's end or a terminal, then the value of the state reached.
            scores, advantages, returns = run.play(rollout, config.gamma, 1.0)
            # One gradient step on the N*T samples.
            policy, values = model.policy(torch.from_numpy(rollout.states.reshape(batch_size, 4, 84, 84)).to(device))
            loss, stats = a2c_loss(
                policy.log_prob(torch.from_numpy(rollout.actions.reshape(-1)).to(device)),
                torch.from_numpy(advantages.reshape(-1)).to(device), values,
                torch.from_numpy(returns.reshape(-1)).to(device), policy.entropy(), config.vf_coef, config.ent_coef,
            )
            run.gradient_step(loss, config.max_grad_norm)
            run.end_iteration(first, batch_size, scores, stats, rollout.values, returns)
    return run.summary()


if __name__ == "__main__":
    run_script(parse_config, train_a2c, None)

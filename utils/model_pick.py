"""How every training script (DQN, A2C, PPO) picks its model: by the figure that is reported.

Every --eval_freq agent steps the network plays --eval_episodes full games under the Nature protocol
(utils/evaluation.py) on seeds seed + step + i, --eval_games_at_once of them side by side. Without
--rescore_episodes the run's best model is the one with the best evaluation mean. With
--rescore_episodes R, an evaluation that beats the best one so far is played again over R games on seeds
no evaluation reaches (RESCORE_SEED_OFFSET + seed + step + i), and the best model is the one with the
best R-game mean; each such pick is one JSON line of runs/<run_name>/picks.jsonl with both figures and
how the evaluated policy acted (`actions`: greedy for a DQN and for an actor-critic with --eval_greedy 1,
else sampled).
TensorBoard: Eval/mean_return, Eval/std_return and Eval/rescore_mean_return, by agent step.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from models.definitions.ActorCritic import ActorCritic
from utils.cli import non_negative_int, positive_int
from utils.evaluation import evaluate

PICKS_NAME = "picks.jsonl"  # beside a run's TensorBoard events
RESCORE_SEED_OFFSET = 2**30  # re-scoring games use seeds the evaluations (seed + step + i) never reach


def add_pick_flags(p: argparse.ArgumentParser, how: str) -> None:
    """The flags of the pick, the same in every training script; `how` says how the evaluated policy acts."""
    p.add_argument("--eval_freq", type=non_negative_int, default=250_000, help="agent steps between Nature-protocol evaluations; 0 disables")
    p.add_argument("--eval_episodes", type=positive_int, default=10, help=f"full games per evaluation ({how}, 18,000-frame cap)")
    p.add_argument("--eval_games_at_once", type=positive_int, default=10,
                   help="games an evaluation plays side by side, one batched forward pass per step (1: one after another)")
    p.add_argument("--rescore_episodes", type=non_negative_int, default=0,
                   help="re-score each new best evaluation over this many games on other seeds and keep the best model by it; 0 = off")


@dataclass
class Pick:
    """One evaluation's outcome: the run's best figures after it, and the scores to file with the model if it is kept."""

    eval_mean_return: float
    best_eval_return: float
    best_rescore_return: float
    kept_scores: dict[str, float] | None  # None: the run's best model stays as it is


def evaluate_and_pick(network: torch.nn.Module, step: int, config: argparse.Namespace, best_eval_return: float,
                      best_rescore_return: float, writer: SummaryWriter, progress: tqdm, run_dir: Path, epsilon: float,
                      greedy: bool = False) -> Pick:
    """Evaluate `network` at agent step `step` (module docstring); config gives env_id, seed, eval_episodes, rescore_episodes.
    `greedy` makes an actor-critic play its most probable action (utils/evaluation.py)."""
    result = evaluate(network, config.env_id, config.eval_episodes, seed=config.seed + step, epsilon=epsilon,
                      games_at_once=config.eval_games_at_once, greedy=greedy)
    mean = float(np.mean(result.returns))
    writer.add_scalar("Eval/mean_return", mean, step)
    writer.add_scalar("Eval/std_return", float(np.std(result.returns)), step)
    progress.write(f"step {step}: evaluation over {config.eval_episodes} games: mean {mean:.2f}")
    if mean <= best_eval_return:
        return Pick(mean, best_eval_return, best_rescore_return, None)
    if not config.rescore_episodes:
        return Pick(mean, mean, best_rescore_return, {"eval_mean_return": mean})
    rescore = evaluate(network, config.env_id, config.rescore_episodes, seed=RESCORE_SEED_OFFSET + config.seed + step, epsilon=epsilon,
                       games_at_once=config.eval_games_at_once, greedy=greedy)
    rescore_mean = float(np.mean(rescore.returns))
    kept = rescore_mean > best_rescore_return
    writer.add_scalar("Eval/rescore_mean_return", rescore_mean, step)
    progress.write(f"step {step}: {config.rescore_episodes} more games: mean {rescore_mean:.2f}"
                   + (" (the best: model kept)" if kept else f" (best stays {best_rescore_return:.2f})"))
    line = {"step": step, "eval_episodes": config.eval_episodes, "eval_mean_return": mean,
            "rescore_episodes": config.rescore_episodes, "rescore_mean_return": rescore_mean,
            "rescore_std_return": float(np.std(rescore.returns)),
            "actions": "sampled" if isinstance(network, ActorCritic) and not greedy else "greedy", "kept": kept}
    with open(run_dir / PICKS_NAME, "a") as picks:
        picks.write(json.dumps(line) + "\n")
    if not kept:
        return Pick(mean, mean, best_rescore_return, None)
    return Pick(mean, mean, rescore_mean,
                {"eval_mean_return": mean, "rescore_mean_return": rescore_mean, "rescore_episodes": config.rescore_episodes})

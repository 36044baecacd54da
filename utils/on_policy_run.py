"""Everything an on-policy training (A2C, PPO) does besides its algorithm: its state, logging, evaluation, checkpoints.

`OnPolicyRun` holds the model, the optimizer, the rollout collector and the counters, and is called
once per iteration (one rollout and its update) with the games that ended and the update's
statistics. Its gates count agent steps (all envs): --eval_freq (Nature-protocol evaluation with
the policy's own sampling and epsilon 0, keeping the best model), --log_freq, --checkpoint_freq.
TensorBoard tags as the DQN's where the meaning is the same ("Rewards per episode",
Episode/return, Episode/return_mean100, Eval/mean_return, Eval/std_return, FPS), plus
Loss/<part> (policy_loss, value_loss, entropy, approx_kl, clip_fraction, explained_variance) and
Learning_rate.

A checkpoint (`state_dict`) holds tensors and plain values only (it loads with weights_only=True):
state_dict (the model), optimizer_state_dict, step, iteration, num_episodes, episode_returns,
best_eval_return, best_model_path, random_states (python, numpy, torch, the sampling generator),
env_state (per env, or None where the envs cannot be saved), states and starts (the collector's
stacks and start flags), and what identifies the run (algo, env_id, num_actions, args, commit_hash,
seed). Where the envs cannot be restored (ale-py's vector env), a resume starts new games.
"""
from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from models.definitions.ActorCritic import ActorCritic
from utils.bookkeeping import multiples_in
from utils.checkpoints import atomic_torch_save, git_commit, load_checkpoint, next_binary_path, prune_checkpoints
from utils.constants import RunPaths
from utils.evaluation import evaluate
from utils.on_policy import RolloutCollector
from utils.training_state import random_states, restore_random_states


class OnPolicyRun:
    """The state and the bookkeeping of one A2C or PPO run (module docstring)."""

    def __init__(self, algo: str, config: argparse.Namespace, model: ActorCritic, optimizer: torch.optim.Optimizer,
                 collector: RolloutCollector) -> None:
        self.algo, self.config, self.model, self.optimizer, self.collector = algo, config, model, optimizer, collector
        self.paths = RunPaths(config.output_dir, config.run_name)
        self.step = self.iteration = self.num_episodes = 0
        self.episode_returns: collections.deque[float] = collections.deque(maxlen=100)
        self.best_eval_return = -float("inf")
        self.best_model_path = next_binary_path(self.paths.binaries, config.env_id, algo)
        self.rng = np.random.default_rng(config.seed)  # minibatch shuffles
        self.generator = torch.Generator().manual_seed(config.seed)  # the policy's action samples
        args = {k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items()}
        self.identity = {"algo": algo, "env_id": config.env_id, "num_actions": model.num_actions, "args": args,
                         "commit_hash": git_commit(), "seed": config.seed}
        if config.resume:
            self.load_state_dict(load_checkpoint(config.resume))
        self.writer = SummaryWriter(log_dir=str(self.paths.tensorboard), purge_step=self.step + 1 if self.step else None)
        self.paths.run_info.write_text(json.dumps({"env_id": config.env_id, "seed": config.seed, "run_name": config.run_name,
                                                   "algo": algo, "args": args}, indent=1))
        self.paths.checkpoints.mkdir(parents=True, exist_ok=True)
        self.progress = tqdm(initial=self.step, total=config.num_of_training_steps, unit="step", dynamic_ncols=True, mininterval=1.0)
        self.window_start = (time.perf_counter(), self.step)
        self.last_eval_step = self.step

    # ---- once per iteration -----------------------------------------------------------------------------------------
    def after_iteration(self, first: int, scores: list[tuple[int, float, int]], stats: dict[str, float]) -> None:
        """Counters, episode scores, then the gates over agent steps first..self.step."""
        config, last = self.config, self.step

        def due(every: int) -> bool:
            return bool(every) and multiples_in(first, last, every) > 0

        for _, score, length in scores:
            self.num_episodes += 1
            self.episode_returns.append(score)
            if config.episode_log_freq and self.num_episodes % config.episode_log_freq == 0:
                self.writer.add_scalar("Rewards per episode", score, self.num_episodes)
                self.writer.add_scalar("Steps per episode", length, self.num_episodes)
                self.writer.add_scalar("Episode/return", score, last)
                self.writer.add_scalar("Episode/return_mean100", self.mean_return(), last)
        if due(config.log_freq):
            now = time.perf_counter()
            fps = (last - self.window_start[1]) / (now - self.window_start[0])
            self.window_start = (now, last)
            self.writer.add_scalar("FPS", fps, last)
            self.writer.add_scalar("Learning_rate", self.optimizer.param_groups[0]["lr"], last)
            for name, value in stats.items():
                self.writer.add_scalar(f"Loss/{name}", value, last)
            self.progress.set_postfix(fps=f"{fps:.0f}", ret100=f"{self.mean_return():.1f}", refresh=False)
        if due(config.eval_freq):
            self.evaluate_and_keep_best()
        if due(config.checkpoint_freq):
            self.save_checkpoint()
        self.progress.update(last - first + 1)

    def mean_return(self) -> float:
        return float(np.mean(self.episode_returns)) if self.episode_returns else float("nan")

    # ---- evaluation, best model, checkpoints ------------------------------------------------------------------------
    def evaluate_and_keep_best(self) -> None:
        """Nature protocol, the policy's own sampling, epsilon 0; the best model so far goes to models/binaries/."""
        result = evaluate(self.model, self.config.env_id, self.config.eval_episodes, seed=self.config.seed + self.step, epsilon=0.0)
        mean = float(np.mean(result.returns))
        self.last_eval_step = self.step
        self.writer.add_scalar("Eval/mean_return", mean, self.step)
        self.writer.add_scalar("Eval/std_return", float(np.std(result.returns)), self.step)
        self.progress.write(f"step {self.step}: evaluation over {self.config.eval_episodes} games: mean {mean:.2f}")
        if mean > self.best_eval_return:
            self.best_eval_return = mean
            atomic_torch_save(self.model_file() | {"eval_mean_return": mean}, self.best_model_path)

    def model_file(self) -> dict[str, Any]:
        return self.identity | {"state_dict": self.model.state_dict(), "step": self.step, "num_episodes": self.num_episodes,
                                "best_eval_return": self.best_eval_return}

    def state_dict(self) -> dict[str, Any]:
        return self.model_file() | {
            "optimizer_state_dict": self.optimizer.state_dict(),
            "iteration": self.iteration,
            "episode_returns": list(self.episode_returns),
            "best_model_path": str(self.best_model_path),
            "random_states": random_states(self.rng) | {"sampling": self.generator.get_state()},
            "env_state": self.collector.envs.get_state(),
            "states": torch.from_numpy(self.collector.states.copy()),
            "starts": torch.from_numpy(self.collector.starts.copy()),
        }

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """Continue where `checkpoint` left off: exactly where the envs can be restored, with new games elsewhere."""
        self.model.load_state_dict(checkpoint["state_dict"])
        self.optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
        self.step, self.iteration, self.num_episodes = checkpoint["step"], checkpoint["iteration"], checkpoint["num_episodes"]
        self.episode_returns.extend(checkpoint["episode_returns"])
        self.best_eval_return, self.best_model_path = checkpoint["best_eval_return"], Path(checkpoint["best_model_path"])
        restore_random_states(checkpoint["random_states"], self.rng)
        self.generator.set_state(checkpoint["random_states"]["sampling"])
        collector = self.collector
        if collector.envs.restorable and checkpoint["env_state"] is not None:
            collector.envs.set_state(checkpoint["env_state"])
            collector.states, collector.starts = checkpoint["states"].numpy(), checkpoint["starts"].numpy()
            collector.stacker.stacks[:] = collector.states
        else:
            collector.states = collector.stacker.reset(collector.envs.reset(seed=self.config.seed + self.step))
            collector.starts[:] = True
            print(f"resuming with {collector.envs.num_envs} new games: the vector env cannot restore the ones in progress")

    def save_checkpoint(self) -> Path:
        path = atomic_torch_save(self.state_dict(), self.paths.checkpoint(self.config.env_id, self.step, self.algo))
        prune_checkpoints(self.paths.checkpoints, self.config.env_id, self.config.keep_checkpoints, self.algo)
        return path

    def finish(self, start_step: int) -> None:
        """End of a run or a graceful stop: evaluate the final policy, make sure a best model exists, checkpoint."""
        if self.step == start_step:
            return
        if self.config.eval_freq and self.last_eval_step != self.step:
            self.evaluate_and_keep_best()
        if not self.best_model_path.exists():
            atomic_torch_save(self.model_file(), self.best_model_path)
        if not self.paths.checkpoint(self.config.env_id, self.step, self.algo).exists():
            self.save_checkpoint()

    def close(self) -> None:
        self.progress.close()
        self.writer.close()

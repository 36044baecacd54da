"""Everything an on-policy training (A2C, PPO) does besides its algorithm: its state, logging, evaluation, checkpoints.

`OnPolicyRun` holds the model, the optimizer, the rollout collector and the counters, and is called
once per iteration (one rollout and its update) with the games that ended and the update's
statistics. Precision as DQN's (utils/precision.py): `master` is the fp32 ActorCritic the optimizer
steps and files hold; `model`, the network every pass runs on (rollouts, minibatches, evaluation), is
the master itself in fp32, or under bf16 (--precision auto on CPUs with native bf16) a working copy
with a bf16 body and fp32 policy and value heads, refreshed after each optimizer step. Its gates
count agent steps (all envs): --eval_freq (Nature-protocol evaluation with the policy's own
sampling and epsilon 0, keeping the best model as utils/model_pick.py says), --log_freq, --checkpoint_freq.
TensorBoard tags as the DQN's where the meaning is the same ("Rewards per episode",
Episode/return, Episode/return_mean100, Eval/mean_return, Eval/std_return, Eval/rescore_mean_return, FPS), plus
Loss/<part> (policy_loss, value_loss, entropy, approx_kl, clip_fraction, explained_variance) and
Learning_rate.

A checkpoint (`state_dict`) holds tensors and plain values only (it loads with weights_only=True):
state_dict (the model), optimizer_state_dict, step, iteration, num_episodes, episode_returns,
best_eval_return, best_rescore_return, best_model_path, random_states (python, numpy, torch, the sampling generator),
env_state (per env, or None where the envs cannot be saved), states and starts (the collector's
stacks and start flags), and what identifies the run (algo, env_id, num_actions, args, commit_hash,
seed). Where the envs cannot be restored (ale-py's vector env), a resume starts new games. A model file
(`model_file()`: identity, state_dict, step, num_episodes, best_eval_return, best_rescore_return) resumes
too, on any machine: same weights, step and counters, a fresh optimizer, new games and generators.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from models.definitions.ActorCritic import ActorCritic
from utils.bookkeeping import multiples_in
from utils.checkpoints import CheckpointError, atomic_torch_save, git_commit, load_checkpoint, next_binary_path, prune_checkpoints
from utils.cli import StopRequest, fail, non_negative_int, parse_training_flags, positive_float, positive_int, unit_float
from utils.constants import ROOT_PATH, RunPaths
from utils.env_wrappers import VECTOR_ENVS, EnvIdError, TrainingEnvs
from utils.model_pick import add_pick_flags, evaluate_and_pick
from utils.on_policy import Rollout, RolloutCollector, advantages_and_returns, explained_variance
from utils.precision import add_device_flags, copy_weights, on_device, pick_device_and_precision, widen_gradients, working_copy
from utils.training_state import random_states, restore_random_states, set_random_seeds


# The games each on-policy script has a preset for, run as CleanRL and RL Zoo run them (10M agent steps), the model
# picked by 30-game scores as the DQN presets pick it.
PRESETS: dict[str, dict[str, Any]] = {
    "pong": {"env_id": "PongNoFrameskip-v4", "num_of_training_steps": 10_000_000, "rescore_episodes": 30},
    "breakout": {"env_id": "BreakoutNoFrameskip-v4", "num_of_training_steps": 10_000_000, "rescore_episodes": 30},
}
FIXED_ON_RESUME = {"seed", "num_envs", "num_steps"}  # the checkpoint's state: a resume cannot change them


def add_run_flags(p: argparse.ArgumentParser, algo: str, defaults: dict[str, float]) -> None:
    """The flags every on-policy script has, with the DQN script's names where the meaning is the same.

    `defaults` gives the algorithm's own: num_envs, num_steps, learning_rate, anneal_lr, ent_coef, vf_coef, max_grad_norm.
    """
    p.add_argument("--preset", choices=list(PRESETS), default=None, help="a named set of defaults (printed at start); flags given win")
    p.add_argument("--env_id", type=str, default="BreakoutNoFrameskip-v4", help="Atari *NoFrameskip-v4 game id")
    p.add_argument("--seed", type=int, default=1, help="random seed (python, numpy, torch, envs)")
    p.add_argument("--num_of_training_steps", type=positive_int, default=10_000_000, help="agent steps over all envs (1 step = 4 frames)")
    p.add_argument("--num_envs", type=positive_int, default=defaults["num_envs"], help="actors N playing at once")
    p.add_argument("--num_steps", type=positive_int, default=defaults["num_steps"], help="steps T each actor plays per rollout (one update's data)")
    p.add_argument("--learning_rate", type=positive_float, default=defaults["learning_rate"], help="the optimizer's learning rate (at the start)")
    p.add_argument("--anneal_lr", type=int, choices=[0, 1], default=defaults["anneal_lr"],
                   help="1: the learning rate falls linearly from --learning_rate to 0 over the run; 0: constant")
    p.add_argument("--gamma", type=unit_float, default=0.99, help="discount factor")
    p.add_argument("--ent_coef", type=float, default=defaults["ent_coef"], help="entropy bonus coefficient")
    p.add_argument("--vf_coef", type=float, default=defaults["vf_coef"], help="value loss coefficient")
    p.add_argument("--max_grad_norm", type=positive_float, default=defaults["max_grad_norm"], help="max global gradient L2 norm")
    p.add_argument("--vector_env", choices=list(VECTOR_ENVS), default="auto", help="auto: gymnasium wrappers for 1 env, ale-py's threaded vector env for more")
    p.add_argument("--log_freq", type=non_negative_int, default=10_000, help="agent steps between TensorBoard scalars; 0 disables")
    p.add_argument("--episode_log_freq", type=non_negative_int, default=1, help="episodes between episode-stat logs; 0 disables")
    add_pick_flags(p, how="the policy's own sampling, epsilon 0")  # --eval_freq, --eval_episodes, --rescore_episodes
    p.add_argument("--eval_greedy", type=int, choices=[0, 1], default=0,
                   help="1: evaluations and re-scores play the policy's most probable action (the evaluator's --greedy); 0: its own sampling")
    p.add_argument("--checkpoint_freq", type=non_negative_int, default=250_000, help="agent steps between checkpoints; 0 disables")
    p.add_argument("--keep_checkpoints", type=non_negative_int, default=3, help="newest checkpoints kept; 0 keeps all")
    add_device_flags(p)  # --device, --precision
    p.add_argument("--run_name", type=str, default=None, help=f"runs/<run_name>/ (default: {algo}_<env_id>_<date>_<time>)")
    p.add_argument("--resume", type=str, default=None, help="checkpoint path or run name to continue")
    p.add_argument("--output_dir", type=Path, default=ROOT_PATH, help="root of models/checkpoints, models/binaries, runs")


def parse_run_flags(parser: argparse.ArgumentParser, algo: str, argv: list[str] | None,
                    checks: Callable[[argparse.Namespace], None] = lambda config: None) -> argparse.Namespace:
    """An on-policy script's flags, validated (one line and exit code 2 for each problem); --resume as the DQN script's."""
    argv = sys.argv[1:] if argv is None else argv
    return parse_training_flags(parser, PRESETS, argv, FIXED_ON_RESUME, algo, checks, run_name_prefix=f"{algo}_")


def run_script(parse_config: Callable[[list[str] | None], argparse.Namespace],
               train: Callable[[argparse.Namespace], dict[str, Any]], argv: list[str] | None) -> None:
    """A training script's main: flags, the preset's line, the training, one line for each expected error."""
    config = parse_config(argv)
    if config.preset and not config.resume:
        print(f"preset {config.preset}: " + " ".join(f"--{k} {getattr(config, k)}" for k in PRESETS[config.preset]))
    try:
        summary = train(config)
    except (CheckpointError, EnvIdError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        print("aborted by a second interrupt; the last checkpoint on disk is intact", file=sys.stderr)
        sys.exit(130)
    print(f"done: {summary}")


class OnPolicyRun:
    """The state and the bookkeeping of one A2C or PPO run (module docstring).

    A script builds it with `start`, runs `for first in run.iterations():` inside `with run.training():`
    (which finishes the run, or checkpoints it on SIGINT/SIGTERM, and closes everything), ends each
    iteration with `end_iteration`, and returns `run.summary()`.
    """

    @classmethod
    def start(cls, algo: str, config: argparse.Namespace, env_factory: Callable[..., TrainingEnvs],
              make_optimizer: Callable[[Any], torch.optim.Optimizer]) -> OnPolicyRun:
        """Seeds, device, the N envs, a new ActorCritic and its optimizer; continues config.resume when given."""
        set_random_seeds(config.seed)
        device, compute_dtype = pick_device_and_precision(config.device, config.precision)
        envs = env_factory(config.env_id, config.num_envs, config.vector_env, None)
        master = on_device(ActorCritic(envs.num_actions), device)
        return cls(algo, config, master, make_optimizer(master.parameters()), RolloutCollector(envs, seed=config.seed), compute_dtype)

    def __init__(self, algo: str, config: argparse.Namespace, master: ActorCritic, optimizer: torch.optim.Optimizer,
                 collector: RolloutCollector, compute_dtype: torch.dtype | None = None) -> None:
        self.algo, self.config, self.master, self.optimizer, self.collector = algo, config, master, optimizer, collector
        self.model = working_copy(master, compute_dtype)
        self.paths = RunPaths(config.output_dir, config.run_name)
        self.step = self.iteration = self.num_episodes = 0
        self.episode_returns: collections.deque[float] = collections.deque(maxlen=100)
        self.best_eval_return = self.best_rescore_return = -float("inf")
        self.best_model_path = next_binary_path(self.paths.binaries, config.env_id, algo)
        self.rng = np.random.default_rng(config.seed)  # minibatch shuffles
        self.generator = torch.Generator().manual_seed(config.seed)  # the policy's action samples
        args = {k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items()}
        self.identity = {"algo": algo, "env_id": config.env_id, "num_actions": master.num_actions, "args": args,
                         "commit_hash": git_commit(), "seed": config.seed}
        if config.resume:
            checkpoint = load_checkpoint(config.resume)
            (self.load_state_dict if "random_states" in checkpoint else self.load_model_file)(checkpoint)
        self.writer = SummaryWriter(log_dir=str(self.paths.tensorboard), purge_step=self.step + 1 if self.step else None)
        self.paths.run_info.write_text(json.dumps({"env_id": config.env_id, "seed": config.seed, "run_name": config.run_name,
                                                   "algo": algo, "args": args}, indent=1))
        self.paths.checkpoints.mkdir(parents=True, exist_ok=True)
        self.progress = tqdm(initial=self.step, total=config.num_of_training_steps, unit="step", dynamic_ncols=True, mininterval=1.0)
        self.window_start = (time.perf_counter(), self.step)
        self.last_eval_step = self.step
        self.device = next(master.parameters()).device
        self.stop: StopRequest | None = None  # set by training()

    @contextlib.contextmanager
    def training(self) -> Iterator[StopRequest]:
        """The iterations' context: SIGINT/SIGTERM ask `stop.requested`; a normal end or a stop finishes the run."""
        self.stop, start_step = StopRequest(), self.step
        try:
            yield self.stop
            self.finish(start_step)
        finally:
            self.stop.restore()
            self.close()
            self.collector.envs.close()

    def iterations(self) -> Iterator[int]:
        """The run's iterations, up to --num_of_training_steps // (N * T) or a stop request (inside `training()`): sets
        each one's learning rate (--anneal_lr 1: --learning_rate * (1 - iteration / their number), linearly to 0)
        and yields the first agent step it will count (for `end_iteration`)."""
        config = self.config
        num_iterations = config.num_of_training_steps // (config.num_envs * config.num_steps)
        while self.iteration < num_iterations and not self.stop.requested:
            if config.anneal_lr:
                self.optimizer.param_groups[0]["lr"] = config.learning_rate * (1.0 - self.iteration / num_iterations)
            yield self.step + 1

    def play(self, rollout: Rollout, gamma: float, gae_lambda: float) -> tuple[list[tuple[int, float, int]], np.ndarray, np.ndarray]:
        """Fill `rollout` with T steps of the N envs under the current policy; returns the games that ended, then
        the advantages and returns (T, N) of GAE(gamma, lambda), bootstrapped from the values of the states reached."""
        scores = self.collector.collect(self.model, rollout, self.device, self.generator)
        with torch.no_grad():
            _, next_values = self.model(torch.from_numpy(rollout.next_states).to(self.device))
        advantages, returns = advantages_and_returns(
            rollout.rewards, rollout.values, rollout.starts, next_values.cpu().numpy(), rollout.next_starts, gamma, gae_lambda,
        )
        return scores, advantages, returns

    def gradient_step(self, loss: torch.Tensor, max_grad_norm: float) -> None:
        """Backward on the working copy, fp32 gradients on the master clipped to a global L2 norm, one optimizer step,
        the working copy refreshed."""
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        widen_gradients(self.master, self.model)
        torch.nn.utils.clip_grad_norm_(self.master.parameters(), max_grad_norm)
        self.optimizer.step()
        copy_weights(self.model, self.master)

    def end_iteration(self, first: int, batch_size: int, scores: list[tuple[int, float, int]], stats: dict[str, torch.Tensor],
                      values: np.ndarray, returns: np.ndarray) -> None:
        """Count the iteration's batch_size agent steps, then log and gate (after_iteration)."""
        self.iteration += 1
        self.step += batch_size
        scalars = {name: float(value) for name, value in stats.items()}
        scalars["explained_variance"] = explained_variance(values.ravel(), returns.ravel())
        self.after_iteration(first, scores, scalars)

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
        """Nature protocol, epsilon 0, the policy's own sampling (its most probable action with --eval_greedy 1); the best
        model so far, picked as utils/model_pick.py says (by the --rescore_episodes mean when given), goes to models/binaries/."""
        pick = evaluate_and_pick(self.model, self.step, self.config, self.best_eval_return, self.best_rescore_return,
                                 self.writer, self.progress, self.paths.tensorboard, epsilon=0.0, greedy=bool(self.config.eval_greedy))
        self.last_eval_step = self.step
        self.best_eval_return, self.best_rescore_return = pick.best_eval_return, pick.best_rescore_return
        if pick.kept_scores is not None:
            atomic_torch_save(self.model_file() | pick.kept_scores, self.best_model_path)

    def model_file(self) -> dict[str, Any]:
        return self.identity | {"state_dict": self.master.state_dict(), "step": self.step, "num_episodes": self.num_episodes,
                                "best_eval_return": self.best_eval_return, "best_rescore_return": self.best_rescore_return}

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
        self.master.load_state_dict(checkpoint["state_dict"])
        copy_weights(self.model, self.master)
        self.optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
        self.step, self.iteration, self.num_episodes = checkpoint["step"], checkpoint["iteration"], checkpoint["num_episodes"]
        self.episode_returns.extend(checkpoint["episode_returns"])
        self.best_eval_return, self.best_model_path = checkpoint["best_eval_return"], Path(checkpoint["best_model_path"])
        self.best_rescore_return = checkpoint.get("best_rescore_return", -float("inf"))  # absent before --rescore_episodes
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

    def load_model_file(self, model: dict[str, Any]) -> None:
        """Go on from a model file (a best model, or a checkpoint's weights only): its weights, step and counters, with a
        fresh optimizer, new games and generators; the learning-rate schedule continues from the step."""
        self.master.load_state_dict(model["state_dict"])
        copy_weights(self.model, self.master)
        self.step, self.num_episodes = model["step"], model.get("num_episodes", 0)
        self.iteration = self.step // (self.config.num_envs * self.config.num_steps)
        self.best_eval_return = model.get("best_eval_return", -float("inf"))
        self.best_rescore_return = model.get("best_rescore_return", -float("inf"))
        collector = self.collector
        collector.states = collector.stacker.reset(collector.envs.reset(seed=self.config.seed + self.step))
        collector.starts[:] = True
        print(f"resuming from a model file at step {self.step}: a fresh optimizer and {collector.envs.num_envs} new games")

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

    def summary(self) -> dict[str, Any]:
        """What a training returns; after a stop, also prints where its checkpoint is and how to resume."""
        checkpoint = self.paths.checkpoint(self.config.env_id, self.step, self.algo)
        stopped = self.stop is not None and self.stop.requested
        if stopped:
            print(f"stopped at agent step {self.step}; checkpoint: {checkpoint}\n"
                  f"resume with: python train_{self.algo.upper()}_script.py --resume {self.config.run_name}"
                  + (f" --output_dir {self.config.output_dir}" if Path(self.config.output_dir) != ROOT_PATH else ""))
        return {
            "steps": self.step,
            "iterations": self.iteration,
            "stopped": stopped,
            "episodes": self.num_episodes,
            "mean_return": self.mean_return(),
            "best_eval_return": self.best_eval_return,
            "best_rescore_return": self.best_rescore_return,
            "best_model_path": str(self.best_model_path) if self.best_model_path.exists() else None,
            "last_checkpoint": str(checkpoint),
            "run_dir": str(self.paths.tensorboard),
        }

    def close(self) -> None:
        self.progress.close()
        self.writer.close()

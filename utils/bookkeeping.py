"""Everything a training step does besides the algorithm: episode statistics, evaluation, logging, checkpoints.

`Bookkeeper.after_steps` is called once per vector step (N agent steps, first..state.step), after the
learner's updates, with the scores of the games that ended. A gate "every k steps" fires when a
multiple of k lies in first..state.step (with one env: when the step is a multiple). Its gates, in order: a finished real game (TensorBoard episode scalars, best-by-training-
mean when evaluation is off), --eval_freq (Nature-protocol evaluation that keeps the best model),
--log_freq (FPS, epsilon, loss), --grads_log_freq (raw gradient norms), --console_log_freq,
--checkpoint_freq, --debug_freq. Only logging synchronises with the device.
TensorBoard tags: "Rewards per episode" and "Steps per episode" (by episode, as the original),
Episode/return and Episode/return_mean100 (by step), Eval/mean_return and Eval/std_return, FPS,
Epsilon, "Huber loss", grad_norms/<parameter> and grad_norms/total (by update), and with
--rescore_episodes Eval/rescore_mean_return (the re-scored picks, also in runs/<run_name>/picks.jsonl).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from utils.checkpoints import atomic_torch_save, prune_checkpoints
from utils.constants import RunPaths
from utils.evaluation import evaluate
from utils.replay_buffer import StreamedReplayBuffer
from utils.training_state import TrainingState
from utils.visualization import DebugVisualizer


PICKS_NAME = "picks.jsonl"  # beside a run's TensorBoard events: each model re-scored with --rescore_episodes
RESCORE_SEED_OFFSET = 2**30  # re-scoring games use seeds the 10-game evaluations (seed + step + i) never reach


def multiples_in(first: int, last: int, every: int) -> int:
    """How many multiples of `every` lie in first..last (agent steps, both included)."""
    return max(last // every - (first - 1) // every, 0)


class Bookkeeper:
    """Writes what a run shows and keeps: TensorBoard scalars, the progress bar, evaluations, checkpoints, best model."""

    def __init__(self, config: argparse.Namespace, paths: RunPaths, state: TrainingState, buffer: StreamedReplayBuffer) -> None:
        self.config, self.paths, self.state, self.buffer = config, paths, state, buffer
        resumed = state.step > 0
        self.writer = SummaryWriter(log_dir=str(paths.tensorboard), purge_step=state.step + 1 if resumed else None)
        info = {"env_id": config.env_id, "seed": config.seed, "run_name": config.run_name, "args": state.identity["args"]}
        paths.run_info.write_text(json.dumps(info, indent=1))
        paths.checkpoints.mkdir(parents=True, exist_ok=True)
        self.debug_view = DebugVisualizer(paths.debug) if config.debug else None
        self.progress = tqdm(initial=state.step, total=config.num_of_training_steps, unit="step", dynamic_ncols=True, mininterval=1.0)
        self.window_start = (time.perf_counter(), state.step)
        self.last_eval_step = state.step

    # ---- once per vector step -----------------------------------------------------------------------------------
    def after_steps(
        self, first: int, scores: list[tuple[int, float, int]], loss: torch.Tensor | None, grad_norms: dict[str, torch.Tensor] | None
    ) -> None:
        config, state, last = self.config, self.state, self.state.step

        def due(every: int) -> bool:
            return bool(every) and multiples_in(first, last, every) > 0

        for _, score, length in scores:
            self._episode_ended(score, length)
        if due(config.eval_freq):
            self.evaluate_and_keep_best()
        if due(config.log_freq):
            self._log_scalars(loss)
        for name, norm in (grad_norms or {}).items():  # raw norms, before clipping
            self.writer.add_scalar(f"grad_norms/{name}", norm.item(), state.num_updates)
        if due(config.console_log_freq):
            self.progress.write(
                f"step {last}: episodes {state.num_episodes}, mean return (last 100) {state.mean_return():.2f}, "
                f"epsilon {state.epsilon:.3f}, updates {state.num_updates}"
            )
        if due(config.checkpoint_freq):
            self.save_checkpoint()
        if self.debug_view is not None and due(config.debug_freq):
            self.debug_view.show(self.buffer.streams[0].fetch_last_state(), state.envs.render(), last)
        self.progress.update(last - first + 1)

    def _episode_ended(self, score: float, length: int) -> None:
        """A real game ended (all lives): its unclipped score; without evaluations the training mean picks the best model."""
        state = self.state
        state.num_episodes += 1
        state.episode_returns.append(score)
        mean = state.mean_return()
        if self.config.episode_log_freq and state.num_episodes % self.config.episode_log_freq == 0:
            self.writer.add_scalar("Rewards per episode", score, state.num_episodes)
            self.writer.add_scalar("Steps per episode", length, state.num_episodes)
            self.writer.add_scalar("Episode/return", score, state.step)
            self.writer.add_scalar("Episode/return_mean100", mean, state.step)
        if mean > state.best_mean_return and state.step > self.config.num_warmup_steps:
            state.best_mean_return = mean
            if not self.config.eval_freq:
                self.save_best_model({"mean_return": mean})
        self.progress.set_postfix(ret100=f"{mean:.1f}", eps=f"{state.epsilon:.3f}", refresh=False)

    def _log_scalars(self, loss: torch.Tensor | None) -> None:
        now, step = time.perf_counter(), self.state.step
        fps = (step - self.window_start[1]) / (now - self.window_start[0])  # current rate, not a cumulative mean
        self.window_start = (now, step)
        self.writer.add_scalar("FPS", fps, step)
        self.writer.add_scalar("Epsilon", self.state.epsilon, step)
        if loss is not None:
            self.writer.add_scalar("Huber loss", loss.item(), step)
        self.progress.set_postfix(fps=f"{fps:.0f}", eps=f"{self.state.epsilon:.3f}", refresh=False)

    # ---- evaluation, best model, checkpoints --------------------------------------------------------------------
    def evaluate_and_keep_best(self) -> None:
        """A Nature-protocol evaluation of the online network; the best model so far is kept in models/binaries/.

        With --rescore_episodes R, an evaluation that beats the best one so far is played again over R games
        on other seeds, and the best model is the one with the best R-game mean (the figure that is reported);
        each such pick is appended to runs/<run_name>/picks.jsonl with both figures.
        """
        config, state = self.config, self.state
        result = evaluate(state.learner.online_work, config.env_id, config.eval_episodes, seed=config.seed + state.step)
        mean = float(np.mean(result.returns))
        self.last_eval_step = state.step
        self.writer.add_scalar("Eval/mean_return", mean, state.step)
        self.writer.add_scalar("Eval/std_return", float(np.std(result.returns)), state.step)
        self.progress.write(f"step {state.step}: evaluation over {config.eval_episodes} games: mean {mean:.2f}")
        if mean <= state.best_eval_return:
            return
        state.best_eval_return = mean
        if not config.rescore_episodes:
            self.save_best_model({"eval_mean_return": mean})
            return
        rescore = evaluate(state.learner.online_work, config.env_id, config.rescore_episodes, seed=RESCORE_SEED_OFFSET + config.seed + state.step)
        rescore_mean = float(np.mean(rescore.returns))
        kept = rescore_mean > state.best_rescore_return
        self.writer.add_scalar("Eval/rescore_mean_return", rescore_mean, state.step)
        self.progress.write(f"step {state.step}: {config.rescore_episodes} more games: mean {rescore_mean:.2f}"
                            + (" (the best: model kept)" if kept else f" (best stays {state.best_rescore_return:.2f})"))
        pick = {"step": state.step, "eval_episodes": config.eval_episodes, "eval_mean_return": mean,
                "rescore_episodes": config.rescore_episodes, "rescore_mean_return": rescore_mean,
                "rescore_std_return": float(np.std(rescore.returns)), "kept": kept}
        with open(self.paths.tensorboard / PICKS_NAME, "a") as picks:
            picks.write(json.dumps(pick) + "\n")
        if kept:
            state.best_rescore_return = rescore_mean
            self.save_best_model({"eval_mean_return": mean, "rescore_mean_return": rescore_mean, "rescore_episodes": config.rescore_episodes})

    def save_best_model(self, score: dict[str, float]) -> None:
        """The best model: weights and what identifies them, not the training state (a checkpoint holds that)."""
        atomic_torch_save(self.state.model_file() | score, self.state.best_model_path)

    def save_checkpoint(self) -> Path:
        """Checkpoint (and, with --save_replay_buffer, the buffer) of this step; older ones pruned afterwards."""
        step, env_id = self.state.step, self.config.env_id
        if self.config.save_replay_buffer:
            self.buffer.save(self.paths.replay_buffer(step))
        path = atomic_torch_save(self.state.state_dict(), self.paths.checkpoint(env_id, step))
        prune_checkpoints(self.paths.checkpoints, env_id, self.config.keep_checkpoints)
        for old in self.paths.checkpoints.glob("replay_buffer_steps_*.npz"):
            if old != self.paths.replay_buffer(step):
                old.unlink(missing_ok=True)
        return path

    def save_debug_state(self) -> Path:
        """The state at a non-finite loss, beside the good checkpoints, for debugging."""
        return atomic_torch_save(self.state.state_dict(), self.paths.checkpoints / f"nonfinite_step_{self.state.step}.pth")

    def finish(self, start_step: int) -> None:
        """End of a run (or a graceful stop): evaluate the final network, make sure a best model exists, checkpoint."""
        state, config = self.state, self.config
        if state.step == start_step:
            return
        if config.eval_freq and self.last_eval_step != state.step:
            self.evaluate_and_keep_best()
        if not state.best_model_path.exists():
            self.save_best_model({"mean_return": state.mean_return()})
        if not self.paths.checkpoint(config.env_id, state.step).exists():
            self.save_checkpoint()

    def close(self) -> None:
        self.progress.close()
        self.writer.close()
        if self.debug_view is not None:
            self.debug_view.close()

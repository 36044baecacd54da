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
--rescore_episodes Eval/rescore_mean_return (the re-scored picks, also in runs/<run_name>/picks.jsonl;
utils/model_pick.py).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from utils.checkpoints import atomic_torch_save, prune_checkpoints
from utils.constants import RunPaths
from utils.evaluation import EVAL_EPSILON
from utils.model_pick import evaluate_and_pick
from utils.replay_buffer import StreamedReplayBuffer
from utils.training_state import TrainingState
from utils.visualization import DebugVisualizer


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
        """A Nature-protocol evaluation of the online network (epsilon 0.05); the best model so far, picked as
        utils/model_pick.py says (by the --rescore_episodes mean when given), is kept in models/binaries/."""
        state = self.state
        pick = evaluate_and_pick(state.learner.online_work, state.step, self.config, state.best_eval_return,
                                 state.best_rescore_return, self.writer, self.progress, self.paths.tensorboard, EVAL_EPSILON)
        self.last_eval_step = state.step
        state.best_eval_return, state.best_rescore_return = pick.best_eval_return, pick.best_rescore_return
        if pick.kept_scores is not None:
            self.save_best_model(pick.kept_scores)

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

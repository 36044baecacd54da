"""Nature DQN (Mnih et al., 2015) on Atari, top to bottom: config, env, networks, replay buffer, loop.

    python train_DQN_script.py --env_id PongNoFrameskip-v4

Algorithm (the paper's box): act epsilon-greedily on the last 4 frames, store every frame once
in the replay memory, and every `acting_learning_step_ratio` agent steps regress
Q(s, a) towards r + gamma * max_a' Q_target(s', a') (no bootstrap after a terminal or a lost
life) on a uniform minibatch with the Huber loss; copy the online network into the target
network every `target_dqn_update_interval` agent steps. Outputs: TensorBoard scalars in
runs/<run_name>/, checkpoints in models/checkpoints/, the best model in models/binaries/.
"""
from __future__ import annotations

import argparse
import collections
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from utils.checkpoints import (
    CheckpointError,
    atomic_torch_save,
    checkpoint_name,
    git_commit,
    load_checkpoint,
    next_binary_path,
    prune_checkpoints,
)
from utils.cli import (
    OneLineArgumentParser,
    fail,
    non_negative_int,
    positive_float,
    positive_int,
    unit_float,
)
from utils.constants import ROOT_PATH
from utils.dqn_agent import (
    NonFiniteError,
    gradient_step,
    greedy_action,
    linear_epsilon,
    make_networks,
    make_optimizer,
    pick_device_and_precision,
    to_device,
    update_target,
)
from utils.env_wrappers import (
    EnvIdError,
    get_env_state,
    make_atari_env,
    set_env_state,
    validate_env_id,
)
from utils.evaluation import evaluate
from utils.replay_buffer import (
    COMPRESSIONS,
    NotEnoughMemoryError,
    ReplayBuffer,
    check_enough_memory,
    replay_buffer_bytes,
)
from utils.visualization import DebugVisualizer


# ---------------------------------------------------------------------------------------------
# Config: every hyperparameter in one place (the original's flags, same names).
# ---------------------------------------------------------------------------------------------
# Named sets of flags (still Nature DQN: same network, Huber loss, target network, uniform replay,
# epsilon-greedy). A preset only changes defaults: flags given on the command line win.
PRESETS: dict[str, dict[str, Any]] = {
    # Pong in the least wall time on a small CPU: one update per agent step on a 100k buffer,
    # a short exploration schedule and a frequent target copy (the Pong settings known to pass
    # +18 within ~1M agent steps), evaluated every 50k steps to pick the best model.
    "pong": {
        "env_id": "PongNoFrameskip-v4",
        "num_of_training_steps": 1_500_000,
        "acting_learning_step_ratio": 1,
        "replay_buffer_size": 100_000,
        "num_warmup_steps": 10_000,
        "target_dqn_update_interval": 1_000,
        "learning_rate": 1e-4,
        "epsilon_end_value": 0.01,
        "epsilon_duration": 100_000,
        "grad_clipping_value": 10.0,
        "eval_freq": 50_000,
        "checkpoint_freq": 50_000,
    },
}


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=list(PRESETS), default=None, help="a named set of defaults (printed at start); flags given win")
    p.add_argument("--env_id", type=str, default="BreakoutNoFrameskip-v4", help="Atari *NoFrameskip-v4 game id")
    p.add_argument("--seed", type=int, default=23, help="random seed (python, numpy, torch, env)")
    p.add_argument("--num_of_training_steps", type=positive_int, default=50_000_000, help="agent steps (1 step = 4 frames)")
    p.add_argument("--acting_learning_step_ratio", type=positive_int, default=4, help="agent steps per gradient update")
    p.add_argument("--learning_rate", type=positive_float, default=1e-4, help="optimizer learning rate")
    p.add_argument("--optimizer", choices=["adam", "rmsprop"], default="adam", help="adam, or the paper's RMSProp (lr 2.5e-4)")
    p.add_argument("--grad_clipping_value", type=float, default=5.0, help="max gradient L2 norm; 0 disables clipping")
    p.add_argument("--replay_buffer_size", type=positive_int, default=1_000_000, help="frames (= transitions) kept")
    p.add_argument("--dont_crash_if_no_mem", action="store_true", help="allocate the buffer even if RAM looks too small")
    p.add_argument("--num_warmup_steps", type=non_negative_int, default=50_000, help="random-action steps before learning")
    p.add_argument("--target_dqn_update_interval", type=positive_int, default=10_000, help="agent steps between target updates")
    p.add_argument("--batch_size", type=positive_int, default=32, help="minibatch size")
    p.add_argument("--gamma", type=unit_float, default=0.99, help="discount factor")
    p.add_argument("--tau", type=unit_float, default=1.0, help="target update weight: 1 = hard copy, <1 = soft update")
    p.add_argument("--epsilon_start_value", type=unit_float, default=1.0, help="epsilon at the end of warmup")
    p.add_argument("--epsilon_end_value", type=unit_float, default=0.1, help="final epsilon")
    p.add_argument("--epsilon_duration", type=positive_int, default=1_000_000, help="agent steps of linear epsilon decay after warmup")
    p.add_argument("--console_log_freq", type=non_negative_int, default=10_000, help="agent steps between console lines; 0 disables")
    p.add_argument("--log_freq", type=non_negative_int, default=10_000, help="agent steps between TensorBoard scalars; 0 disables")
    p.add_argument("--episode_log_freq", type=non_negative_int, default=1, help="episodes between episode-stat logs; 0 disables")
    p.add_argument("--checkpoint_freq", type=non_negative_int, default=100_000, help="agent steps between checkpoints; 0 disables")
    p.add_argument("--keep_checkpoints", type=non_negative_int, default=3, help="newest checkpoints kept; 0 keeps all")
    p.add_argument("--grads_log_freq", type=non_negative_int, default=2500, help="updates between gradient-norm logs; 0 disables")
    p.add_argument("--eval_freq", type=non_negative_int, default=250_000, help="agent steps between Nature-protocol evaluations; 0 disables")
    p.add_argument("--eval_episodes", type=positive_int, default=10, help="full games per evaluation (epsilon 0.05, 18,000-frame cap)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto = cuda when available")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="auto = bf16 on CUDA and on CPUs with native bf16")
    p.add_argument("--run_name", type=str, default=None, help="runs/<run_name>/ (default: <env_id>_<date>_<time>)")
    p.add_argument("--replay_compression", choices=list(COMPRESSIONS), default="none", help="lz4: each frame LZ4-compressed (~1 GB per 1M)")
    p.add_argument("--resume", type=str, default=None, help="checkpoint path or run name to continue (same curves, same run)")
    p.add_argument("--save_replay_buffer", action="store_true", help="save the replay buffer with each checkpoint (exact resume)")
    p.add_argument("--output_dir", type=Path, default=ROOT_PATH, help="root of models/checkpoints, models/binaries, runs, data")
    p.add_argument("--debug", action="store_true", help="show (or, with no display, save to data/debug/) what the agent sees")
    p.add_argument("--debug_freq", type=positive_int, default=100, help="agent steps between --debug pictures")
    return p


def parse_config(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate flags; every problem ends in one line on stderr and exit code 2.

    With --resume, the flags stored in the checkpoint are used, except those given explicitly
    (e.g. a larger --num_of_training_steps); config.resume becomes the checkpoint's path.
    """
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    config = parser.parse_args(argv)
    if config.preset:
        parser.set_defaults(**PRESETS[config.preset])
        config = parser.parse_args(argv)
    if config.resume:
        config = merge_resume_flags(config, explicit={a[2:].split("=")[0] for a in argv if a.startswith("--")})
    try:
        validate_env_id(config.env_id)
    except EnvIdError as e:
        fail(str(e))
    if config.batch_size > config.replay_buffer_size - 5:
        fail(f"--batch_size {config.batch_size} must be smaller than --replay_buffer_size {config.replay_buffer_size} - 5")
    if config.num_warmup_steps < config.batch_size:
        fail(f"--num_warmup_steps {config.num_warmup_steps} must be at least --batch_size {config.batch_size}")
    if config.grad_clipping_value < 0:
        fail("--grad_clipping_value must be >= 0 (0 disables clipping)")
    if config.device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda was given but no CUDA GPU is visible to PyTorch; use --device cpu or auto")
    if not config.dont_crash_if_no_mem:
        try:
            check_enough_memory(replay_buffer_bytes(config.replay_buffer_size, compression=config.replay_compression))
        except NotEnoughMemoryError as e:
            fail(str(e))
    check_writable(config.output_dir)
    if config.run_name is None:
        config.run_name = f"{config.env_id}_{time.strftime('%Y%m%d_%H%M%S')}"
    return config


def merge_resume_flags(config: argparse.Namespace, explicit: set[str]) -> argparse.Namespace:
    """The checkpoint's flags, overridden by the flags given on this command line."""
    path = Path(config.resume)
    if not path.is_file():  # a run name: its newest checkpoint
        run_folder = config.output_dir / "models" / "checkpoints" / config.resume
        candidates = sorted(run_folder.glob("dqn_*_ckpt_steps_*.pth"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
        if not candidates:
            fail(f"--resume '{config.resume}' is neither a checkpoint file nor a run with checkpoints in {run_folder}")
        path = candidates[-1]
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as e:
        fail(f"--resume: {e}")
    if "step" not in checkpoint or "random_states" not in checkpoint or "args" not in checkpoint:
        fail(f"--resume: '{path}' is a model file, not a training checkpoint (use models/checkpoints/<run>/...)")
    if "env_id" in explicit and config.env_id != checkpoint["env_id"]:
        fail(f"--resume: '{path}' is a checkpoint of {checkpoint['env_id']}, not of --env_id {config.env_id}")
    merged = dict(checkpoint["args"])
    merged.update({k: v for k, v in vars(config).items() if k in explicit})
    merged["output_dir"] = Path(merged["output_dir"])
    merged["resume"] = str(path)
    resumed = argparse.Namespace(**merged)
    if resumed.num_of_training_steps <= checkpoint["step"]:
        fail(f"--resume: the checkpoint is at step {checkpoint['step']}; pass a larger --num_of_training_steps to go on")
    return resumed


def check_writable(output_dir: Path) -> None:
    """Fail in one line, creating nothing, when output_dir cannot be created or written."""
    existing = Path(output_dir).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        fail(f"--output_dir '{output_dir}' cannot be created: '{existing}' is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        fail(f"--output_dir '{output_dir}' is not writable ({e.strerror}); choose another with --output_dir")


def set_random_seeds(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# Training.
# ---------------------------------------------------------------------------------------------
class StopRequest:
    """SIGINT/SIGTERM: the first asks the loop to finish its step and checkpoint; a second aborts at once."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in self.previous:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{signal.Signals(signum).name}: finishing this step and writing a checkpoint (again to abort now)", file=sys.stderr)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def random_states(rng: np.random.Generator) -> dict[str, Any]:
    """Python, numpy, torch and the loop's generator states, as plain values and tensors."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state(), "loop": rng.bit_generator.state}


def restore_random_states(states: dict[str, Any], rng: np.random.Generator) -> None:
    random.setstate(states["python"])
    numpy_state = states["numpy"]
    numpy_state["state"]["key"] = np.array(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    torch.set_rng_state(states["torch"])
    rng.bit_generator.state = states["loop"]


def train_dqn(config: argparse.Namespace, env_factory: Callable[..., gym.Env] = make_atari_env) -> dict[str, Any]:
    """Run (or, with config.resume, continue) a training; returns a summary (steps, updates, episodes, paths).

    env_factory(env_id, training=True, render_mode=...) builds the training env; its observations
    are single (84, 84) uint8 frames and a finished real episode puts info["episode"]["r"/"l"].
    """
    resume = load_checkpoint(config.resume) if config.resume else None
    set_random_seeds(config.seed)
    rng = np.random.default_rng(config.seed)
    device, autocast_dtype = pick_device_and_precision(config.device, config.precision)

    # Environment: the Nature wrapper stack (utils/env_wrappers.py); observations are (84, 84) uint8.
    env = env_factory(config.env_id, training=True, render_mode="rgb_array" if config.debug else None)
    env.action_space.seed(config.seed)
    num_actions = int(env.action_space.n)

    # Networks: online Q and a target Q that starts as its exact copy; fp32 Q-values in any precision.
    online_dqn, target_dqn = make_networks(num_actions, device)
    optimizer = make_optimizer(config.optimizer, online_dqn.parameters(), config.learning_rate)

    # Replay memory: each frame stored once, stacks rebuilt on sampling (utils/replay_buffer.py).
    run_checkpoints = config.output_dir / "models" / "checkpoints" / config.run_name
    buffer_file = run_checkpoints / f"replay_buffer_steps_{resume['step']}.npz" if resume else None
    if buffer_file is not None and buffer_file.is_file():
        buffer = ReplayBuffer.load(buffer_file, not config.dont_crash_if_no_mem, config.replay_compression)
    else:
        buffer = ReplayBuffer(
            config.replay_buffer_size, crash_if_no_mem=not config.dont_crash_if_no_mem,
            seed=config.seed, compression=config.replay_compression,
        )

    episode_returns: collections.deque[float] = collections.deque(maxlen=100)
    num_episodes, num_updates, start_step = 0, 0, 0
    best_mean_return, best_eval_return = -float("inf"), -float("inf")
    best_model_path = next_binary_path(config.output_dir / "models" / "binaries", config.env_id)
    learning_starts = config.num_warmup_steps
    obs, _ = env.reset(seed=config.seed)
    if resume is not None:  # continue exactly where the checkpoint left off
        online_dqn.load_state_dict(resume["state_dict"])
        target_dqn.load_state_dict(resume["target_state_dict"])
        optimizer.load_state_dict(resume["optimizer_state_dict"])
        start_step, num_updates, num_episodes = resume["step"], resume["num_updates"], resume["num_episodes"]
        episode_returns.extend(resume["episode_returns"])
        best_mean_return, best_eval_return = resume["best_mean_return"], resume["best_eval_return"]
        best_model_path = Path(resume["best_model_path"])
        restore_random_states(resume["random_states"], rng)
        if resume["env_state"] is not None:
            set_env_state(env, resume["env_state"])
        obs = resume["obs"].numpy()
        if buffer.get_current_size() == 0:  # no saved buffer: refill it before learning again
            learning_starts = start_step + config.num_warmup_steps
            print(f"resuming without a saved replay buffer: refilling it for {config.num_warmup_steps} steps before learning")

    run_dir = config.output_dir / "runs" / config.run_name
    writer = SummaryWriter(log_dir=str(run_dir), purge_step=start_step + 1 if resume else None)
    run_checkpoints.mkdir(parents=True, exist_ok=True)
    commit = git_commit()
    debug_view = DebugVisualizer(config.output_dir / "data" / "debug" / config.run_name) if config.debug else None
    loss = torch.zeros((), device=device)
    last_eval_step = start_step

    def epsilon_at(step: int) -> float:
        return linear_epsilon(step, config.num_warmup_steps, config.epsilon_start_value, config.epsilon_end_value, config.epsilon_duration)
    window_start_time, window_start_step = time.perf_counter(), start_step
    nonfinite_check_every = 1 if device.type == "cpu" else 100  # each check synchronises with the GPU

    def model_file(step: int) -> dict[str, Any]:
        """What identifies the online network: its weights, game, step and flags (plain values and tensors only)."""
        return {
            "state_dict": online_dqn.state_dict(),
            "env_id": config.env_id,
            "num_actions": num_actions,
            "step": step,
            "num_updates": num_updates,
            "num_episodes": num_episodes,
            "best_mean_return": best_mean_return,
            "best_eval_return": best_eval_return,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items()},
            "commit_hash": commit,
            "seed": config.seed,
        }

    def snapshot(step: int) -> dict[str, Any]:
        """Everything a checkpoint holds (weights_only-loadable): the model file plus the whole training state."""
        return model_file(step) | {
            "target_state_dict": target_dqn.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(),
            "epsilon": epsilon_at(step),
            "episode_returns": list(episode_returns),
            "best_model_path": str(best_model_path),
            "random_states": random_states(rng),
            "env_state": get_env_state(env) if hasattr(env.unwrapped, "ale") else None,
            "obs": torch.from_numpy(np.array(obs)),
        }

    def save_best_model(step: int, score: dict[str, float]) -> None:
        """The best model: weights and what identifies them, not the training state (a checkpoint holds that)."""
        atomic_torch_save(model_file(step) | score, best_model_path)

    def evaluate_and_keep_best(step: int) -> None:
        """A Nature-protocol evaluation of the online network; the best model so far is kept in models/binaries/."""
        nonlocal best_eval_return, last_eval_step
        result = evaluate(online_dqn, config.env_id, config.eval_episodes, seed=config.seed + step, autocast_dtype=autocast_dtype)
        eval_mean = float(np.mean(result.returns))
        last_eval_step = step
        writer.add_scalar("Eval/mean_return", eval_mean, step)
        writer.add_scalar("Eval/std_return", float(np.std(result.returns)), step)
        progress.write(f"step {step}: evaluation over {config.eval_episodes} games: mean {eval_mean:.2f}")
        if eval_mean > best_eval_return:
            best_eval_return = eval_mean
            save_best_model(step, {"eval_mean_return": eval_mean})

    def save_checkpoint(step: int) -> Path:
        """Checkpoint (and, with --save_replay_buffer, the buffer) of this step; older ones pruned afterwards."""
        if config.save_replay_buffer:
            buffer.save(run_checkpoints / f"replay_buffer_steps_{step}.npz")
        path = atomic_torch_save(snapshot(step), run_checkpoints / checkpoint_name(config.env_id, step))
        prune_checkpoints(run_checkpoints, config.env_id, config.keep_checkpoints)
        for old in run_checkpoints.glob("replay_buffer_steps_*.npz"):
            if old.name != f"replay_buffer_steps_{step}.npz":
                old.unlink(missing_ok=True)
        return path

    stop = StopRequest()
    progress = tqdm(initial=start_step, total=config.num_of_training_steps, unit="step", dynamic_ncols=True, mininterval=1.0)
    step = start_step
    try:
        for step in range(start_step + 1, config.num_of_training_steps + 1):
            # Act epsilon-greedily on the stack of the last 4 frames.
            index = buffer.store_frame(obs)
            epsilon = epsilon_at(step)
            if rng.random() < epsilon:
                action = int(rng.integers(num_actions))
            else:
                action = greedy_action(online_dqn, buffer.fetch_last_state(), autocast_dtype)
            obs, reward, terminated, truncated, info = env.step(action)
            buffer.store_action_reward_done(index, action, reward, terminated)  # terminated includes a lost life

            if debug_view is not None and step % config.debug_freq == 0:
                debug_view.show(buffer.fetch_last_state(), env.render(), step)

            if "episode" in info:  # a real game ended: unclipped score over all lives
                num_episodes += 1
                episode_returns.append(float(info["episode"]["r"]))
                mean_return = float(np.mean(episode_returns))
                if config.episode_log_freq and num_episodes % config.episode_log_freq == 0:
                    writer.add_scalar("Rewards per episode", episode_returns[-1], num_episodes)
                    writer.add_scalar("Steps per episode", int(info["episode"]["l"]), num_episodes)
                    writer.add_scalar("Episode/return", episode_returns[-1], step)
                    writer.add_scalar("Episode/return_mean100", mean_return, step)
                if mean_return > best_mean_return and step > config.num_warmup_steps:
                    best_mean_return = mean_return
                    if not config.eval_freq:  # without evaluations, the training score picks the best model
                        save_best_model(step, {"mean_return": mean_return})
                progress.set_postfix(ret100=f"{mean_return:.1f}", eps=f"{epsilon:.3f}", refresh=False)
            if terminated or truncated:
                if truncated and not terminated:  # time limit: s' is a real, non-terminal state
                    buffer.store_truncation(obs)
                obs, _ = env.reset()

            # Learn: one gradient step on a uniform minibatch every acting_learning_step_ratio steps.
            if step > learning_starts and step % config.acting_learning_step_ratio == 0:
                batch = to_device(buffer.fetch_random_states(config.batch_size), device)
                num_updates += 1
                log_grads = bool(config.grads_log_freq) and num_updates % config.grads_log_freq == 0
                try:
                    loss, norms = gradient_step(
                        online_dqn, target_dqn, optimizer, batch, config.gamma, config.grad_clipping_value,
                        autocast_dtype, check_finite=num_updates % nonfinite_check_every == 0, want_grad_norms=log_grads,
                    )
                except NonFiniteError:
                    bad = atomic_torch_save(snapshot(step), run_checkpoints / f"nonfinite_step_{step}.pth")
                    raise NonFiniteError(
                        f"non-finite loss at agent step {step} (update {num_updates}); the last good checkpoint is "
                        f"kept in {run_checkpoints}, this state is in {bad} for debugging"
                    ) from None
                for name, norm in (norms or {}).items():  # raw norms, before clipping
                    writer.add_scalar(f"grad_norms/{name}", norm.item(), num_updates)

            if step % config.target_dqn_update_interval == 0:
                update_target(online_dqn, target_dqn, config.tau)

            # Evaluation under the Nature protocol on its own env; with it on, it picks the best model.
            if config.eval_freq and step % config.eval_freq == 0:
                evaluate_and_keep_best(step)

            # Logging and checkpoints (the only places that synchronise with the device).
            if config.log_freq and step % config.log_freq == 0:
                now = time.perf_counter()
                fps = (step - window_start_step) / (now - window_start_time)  # current rate, not a cumulative mean
                window_start_time, window_start_step = now, step
                writer.add_scalar("FPS", fps, step)
                writer.add_scalar("Epsilon", epsilon, step)
                if num_updates:
                    writer.add_scalar("Huber loss", loss.item(), step)
                progress.set_postfix(fps=f"{fps:.0f}", eps=f"{epsilon:.3f}", refresh=False)
            if config.console_log_freq and step % config.console_log_freq == 0:
                mean = f"{np.mean(episode_returns):.2f}" if episode_returns else "n/a"
                progress.write(f"step {step}: episodes {num_episodes}, mean return (last 100) {mean}, epsilon {epsilon:.3f}, updates {num_updates}")
            if config.checkpoint_freq and step % config.checkpoint_freq == 0:
                save_checkpoint(step)
            progress.update(1)
            if stop.requested:
                break
        if step != start_step:  # a run always ends with its model evaluated and a best model on disk
            if config.eval_freq and last_eval_step != step:
                evaluate_and_keep_best(step)
            if not best_model_path.exists():
                save_best_model(step, {"mean_return": float(np.mean(episode_returns)) if episode_returns else float("nan")})
        if step != start_step and not (config.checkpoint_freq and step % config.checkpoint_freq == 0):
            save_checkpoint(step)  # the final (or interrupted) state is always saved
    finally:
        stop.restore()
        progress.close()
        writer.close()
        env.close()
        if debug_view is not None:
            debug_view.close()
    last_checkpoint = run_checkpoints / checkpoint_name(config.env_id, step)
    if stop.requested:
        print(f"stopped at agent step {step}; checkpoint: {last_checkpoint}\nresume with: python train_DQN_script.py --resume {config.run_name}"
              + (f" --output_dir {config.output_dir}" if config.output_dir != ROOT_PATH else ""))
    return {
        "steps": step,
        "stopped": stop.requested,
        "updates": num_updates,
        "episodes": num_episodes,
        "best_mean_return": best_mean_return,
        "best_eval_return": best_eval_return,
        "best_model_path": str(best_model_path) if best_model_path.exists() else None,
        "last_checkpoint": str(last_checkpoint),
        "run_dir": str(run_dir),
    }


def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv)
    if config.preset and not config.resume:
        flags = " ".join(f"--{k} {getattr(config, k)}" for k in PRESETS[config.preset])
        print(f"preset {config.preset}: {flags}")
    try:
        summary = train_dqn(config)
    except (NotEnoughMemoryError, CheckpointError, EnvIdError) as e:
        fail(str(e))
    except NonFiniteError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("aborted by a second interrupt; the last checkpoint on disk is intact", file=sys.stderr)
        sys.exit(130)
    print(f"done: {summary}")


if __name__ == "__main__":
    main()

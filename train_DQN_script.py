"""Nature DQN (Mnih et al., 2015) on Atari, top to bottom: flags, then the paper's algorithm box.

    python train_DQN_script.py --env_id PongNoFrameskip-v4
    python train_DQN_script.py --preset pong --num_envs 4

Algorithm: act epsilon-greedily on the last 4 frames of each of --num_envs games (one batched
forward pass for all of them), store every frame once in the replay memory, and every `acting_learning_step_ratio` agent steps regress Q(s, a) towards
r + gamma * max_a' Q_target(s', a') (no bootstrap after a terminal or a lost life) on a uniform
minibatch with the Huber loss; copy the online network into the target network every
`target_dqn_update_interval` agent steps. The pieces live in utils/: the learner (dqn_agent),
the replay memory (replay_buffer), the env stack (env_wrappers), the run's state and checkpoints
(training_state, checkpoints), evaluation, logging and checkpoint cadence (bookkeeping).
Outputs (utils/constants.RunPaths): TensorBoard scalars in runs/<run_name>/, checkpoints in
models/checkpoints/<run_name>/, the best model in models/binaries/.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from utils.bookkeeping import Bookkeeper, multiples_in
from utils.checkpoints import CheckpointError, git_commit, load_checkpoint, next_binary_path
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
from utils.constants import ROOT_PATH, RunPaths
from utils.dqn_agent import Learner, NonFiniteError, linear_epsilon, to_device
from utils.env_wrappers import VECTOR_ENVS, EnvIdError, TrainingEnvs, make_training_envs
from utils.model_pick import add_pick_flags
from utils.precision import add_device_flags, pick_device_and_precision
from utils.replay_buffer import (
    COMPRESSIONS,
    NotEnoughMemoryError,
    StreamedReplayBuffer,
    check_enough_memory,
    replay_buffer_bytes,
)
from utils.training_state import TrainingState, set_random_seeds


# ---------------------------------------------------------------------------------------------
# Config: every hyperparameter in one place (the original's flags, same names).
# ---------------------------------------------------------------------------------------------
# Named sets of flags (still Nature DQN: same network, Huber loss, target network, uniform replay,
# epsilon-greedy). A preset only changes defaults: flags given on the command line win.
PRESETS: dict[str, dict[str, Any]] = {
    # Pong in the least wall time on a small CPU: one update per 2 agent steps on a 100k buffer,
    # a short exploration schedule and a frequent target copy, evaluated every 50k steps to pick
    # the best model. On a CPU the update dominates an agent step, so an update costs about the
    # same wall time at ratio 1 or 2, and ratio 2 gives each update twice the fresh games. The
    # 3M-step end is a ceiling (CleanRL's Pong passes 18 at ~3.1M): stop once an evaluation is there.
    "pong": {
        "env_id": "PongNoFrameskip-v4",
        "num_of_training_steps": 3_000_000,
        "acting_learning_step_ratio": 2,
        "replay_buffer_size": 100_000,
        "num_warmup_steps": 10_000,
        "target_dqn_update_interval": 1_000,
        "learning_rate": 1e-4,
        "epsilon_end_value": 0.01,
        "epsilon_duration": 150_000,
        "grad_clipping_value": 10.0,
        "eval_freq": 50_000,
        "checkpoint_freq": 50_000,
    },
    # Breakout as CleanRL's dqn_atari.py runs it (366.9 +- 39.9 at 10M agent steps over 3 seeds):
    # one update per 4 steps on a 1M buffer (LZ4-compressed, ~0.5 GB), epsilon 1 -> 0.01 over the
    # first 1M steps, a target copy every 1000 steps, Adam 1e-4; evaluated every 250k steps.
    "breakout": {
        "env_id": "BreakoutNoFrameskip-v4",
        "num_of_training_steps": 10_000_000,
        "acting_learning_step_ratio": 4,
        "replay_buffer_size": 1_000_000,
        "replay_compression": "lz4",
        "num_warmup_steps": 80_000,
        "target_dqn_update_interval": 1_000,
        "learning_rate": 1e-4,
        "epsilon_end_value": 0.01,
        "epsilon_duration": 1_000_000,
        "grad_clipping_value": 10.0,
        "eval_freq": 250_000,
        "checkpoint_freq": 250_000,
    },
    # Breakout as the Nature paper trained it (401.2 at 50M agent steps, the published figure): its
    # centered RMSProp at lr 2.5e-4, a target copy every 10k agent steps, epsilon 1 -> 0.1 over 1M
    # steps after 50k random ones, a 1M-frame memory (LZ4), one update per 4 agent steps, no
    # gradient-norm clipping (the Huber loss is the paper's error clipping). Four games at once on
    # ale-py's vector env; evaluated every 250k steps, each new best re-scored over 30 other games.
    "breakout_nature": {
        "env_id": "BreakoutNoFrameskip-v4",
        "num_of_training_steps": 50_000_000,
        "num_envs": 4,
        "acting_learning_step_ratio": 4,
        "optimizer": "rmsprop",
        "learning_rate": 2.5e-4,
        "replay_buffer_size": 1_000_000,
        "replay_compression": "lz4",
        "num_warmup_steps": 50_000,
        "target_dqn_update_interval": 10_000,
        "epsilon_end_value": 0.1,
        "epsilon_duration": 1_000_000,
        "grad_clipping_value": 0.0,
        "eval_freq": 250_000,
        "rescore_episodes": 30,
        "checkpoint_freq": 250_000,
    },
}


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=list(PRESETS), default=None, help="a named set of defaults (printed at start); flags given win")
    p.add_argument("--env_id", type=str, default="BreakoutNoFrameskip-v4", help="Atari *NoFrameskip-v4 game id")
    p.add_argument("--seed", type=int, default=23, help="random seed (python, numpy, torch, env)")
    p.add_argument("--num_envs", type=positive_int, default=1, help="games played at once, one batched greedy forward pass per vector step; agent steps count all games")
    p.add_argument("--vector_env", choices=list(VECTOR_ENVS), default="auto", help="auto: gymnasium wrappers for 1 env (bit-exact resume), ale-py's threaded vector env for more")
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
    add_pick_flags(p, how="epsilon 0.05")  # --eval_freq, --eval_episodes, --rescore_episodes
    add_device_flags(p)  # --device, --precision
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
    return parse_training_flags(build_parser(), PRESETS, argv, FIXED_ON_RESUME, ALGO, check_dqn_flags)


def check_dqn_flags(config: argparse.Namespace) -> None:
    """The DQN flags that only make sense together; one line and exit code 2 for each problem."""
    if config.replay_buffer_size // config.num_envs < config.batch_size + 5:
        fail(f"--replay_buffer_size {config.replay_buffer_size} is too small for --num_envs {config.num_envs}: each env's share must exceed --batch_size + 5")
    if config.batch_size > config.replay_buffer_size - 5:
        fail(f"--batch_size {config.batch_size} must be smaller than --replay_buffer_size {config.replay_buffer_size} - 5")
    if config.num_warmup_steps < config.batch_size:
        fail(f"--num_warmup_steps {config.num_warmup_steps} must be at least --batch_size {config.batch_size}")
    if config.grad_clipping_value < 0:
        fail("--grad_clipping_value must be >= 0 (0 disables clipping)")
    if not config.dont_crash_if_no_mem:
        try:
            check_enough_memory(replay_buffer_bytes(config.replay_buffer_size, compression=config.replay_compression))
        except NotEnoughMemoryError as e:
            fail(str(e))


# What a checkpoint carries over as state: its random states, its optimizer's moments, its replay memory.
FIXED_ON_RESUME = {"seed", "optimizer", "replay_buffer_size", "num_envs"}
ALGO = "dqn"  # the prefix of this script's checkpoint and model files


# ---------------------------------------------------------------------------------------------
# Training: the paper's algorithm box.
# ---------------------------------------------------------------------------------------------
def epsilon_greedy_actions(learner: Learner, buffer: StreamedReplayBuffer, rng: np.random.Generator, epsilon: float, num_actions: int) -> np.ndarray:
    """(N,) actions: each env explores with probability epsilon, the others share one batched greedy forward pass.

    Draws per env in turn (a uniform, then an action if it explores): one env draws as the single-env loop did.
    """
    actions = np.zeros(buffer.num_streams, dtype=np.int64)
    greedy = np.zeros(buffer.num_streams, dtype=bool)
    for i in range(buffer.num_streams):
        if rng.random() < epsilon:
            actions[i] = rng.integers(num_actions)
        else:
            greedy[i] = True
    if greedy.any():
        actions[greedy] = learner.act(buffer.fetch_last_states()[greedy])
    return actions


def run_identity(config: argparse.Namespace, num_actions: int) -> dict[str, Any]:
    """What identifies a run's models: game, actions, flags (plain values), commit, seed."""
    args = {k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items()}
    return {"env_id": config.env_id, "num_actions": num_actions, "args": args, "commit_hash": git_commit(), "seed": config.seed}


def train_dqn(config: argparse.Namespace, env_factory: Callable[..., TrainingEnvs] = make_training_envs) -> dict[str, Any]:
    """Run (or, with config.resume, continue) a training; returns a summary (steps, updates, episodes, paths).

    env_factory(env_id, num_envs, backend, render_mode) builds the N training games (utils/env_wrappers.TrainingEnvs).
    """
    paths = RunPaths(config.output_dir, config.run_name)
    set_random_seeds(config.seed)
    device, compute_dtype = pick_device_and_precision(config.device, config.precision)
    envs = env_factory(config.env_id, config.num_envs, config.vector_env, "rgb_array" if config.debug else None)
    num_actions = envs.num_actions
    learner = Learner(
        num_actions, device, compute_dtype, config.optimizer, config.learning_rate, config.gamma, config.grad_clipping_value, config.batch_size
    )
    state = TrainingState(
        learner, envs, rng=np.random.default_rng(config.seed), obs=envs.reset(seed=config.seed),
        identity=run_identity(config, num_actions), best_model_path=next_binary_path(paths.binaries, config.env_id),
    )
    buffer, learning_starts = resume_or_start(config, paths, state)
    schedule = (config.num_warmup_steps, config.epsilon_start_value, config.epsilon_end_value, config.epsilon_duration)
    finite_check_every = 1 if device.type == "cpu" else 100  # each check synchronises with a GPU
    book = Bookkeeper(config, paths, state, buffer)
    stop, start_step, loss = StopRequest(), state.step, None
    try:
        while state.step < config.num_of_training_steps:
            # One vector step is N agent steps, numbered first..last; every rule below counts agent steps.
            first, last = state.step + 1, state.step + envs.num_envs
            grad_norms = None
            # Act epsilon-greedily on each env's last 4 frames (stored once each in the replay memory).
            slots = buffer.store_frames(state.obs)
            state.epsilon = linear_epsilon(first, *schedule)
            actions = epsilon_greedy_actions(learner, buffer, state.rng, state.epsilon, num_actions)
            result = envs.step(actions)
            # Store the transitions; a lost life is terminal (no bootstrap), a time limit is not.
            buffer.store_actions_rewards_dones(slots, actions, result.rewards, result.terminal)
            for i in np.flatnonzero(result.truncated):
                buffer.store_truncation(int(i), result.final_obs[i])
            state.obs, state.step = result.obs, last
            # Learn: one gradient step on a uniform minibatch every acting_learning_step_ratio agent steps.
            for _ in range(multiples_in(max(first, learning_starts + 1), last, config.acting_learning_step_ratio)):
                state.num_updates += 1
                loss, grad_norms = learner.update(
                    to_device(buffer.fetch_random_states(config.batch_size), device),
                    check_finite=state.num_updates % finite_check_every == 0,
                    want_grad_norms=bool(config.grads_log_freq) and state.num_updates % config.grads_log_freq == 0,
                )
            # Sync the target network every target_dqn_update_interval agent steps.
            if multiples_in(first, last, config.target_dqn_update_interval):
                learner.sync_target(config.tau)
            book.after_steps(first, result.scores, loss, grad_norms)
            if stop.requested:
                break
        book.finish(start_step)
    except NonFiniteError:
        raise NonFiniteError(
            f"non-finite loss at agent step {state.step} (update {state.num_updates}); the last good checkpoint is "
            f"kept in {paths.checkpoints}, this state is in {book.save_debug_state()} for debugging"
        ) from None
    finally:
        stop.restore()
        book.close()
        envs.close()
    if stop.requested:
        print(f"stopped at agent step {state.step}; checkpoint: {paths.checkpoint(config.env_id, state.step)}\n"
              f"resume with: python train_DQN_script.py --resume {config.run_name}"
              + (f" --output_dir {config.output_dir}" if Path(config.output_dir) != ROOT_PATH else ""))
    return {
        "steps": state.step,
        "stopped": stop.requested,
        "updates": state.num_updates,
        "episodes": state.num_episodes,
        "best_mean_return": state.best_mean_return,
        "best_eval_return": state.best_eval_return,
        "best_rescore_return": state.best_rescore_return,
        "best_model_path": str(state.best_model_path) if state.best_model_path.exists() else None,
        "last_checkpoint": str(paths.checkpoint(config.env_id, state.step)),
        "run_dir": str(paths.tensorboard),
    }


def resume_or_start(config: argparse.Namespace, paths: RunPaths, state: TrainingState) -> tuple[StreamedReplayBuffer, int]:
    """The replay memory and the step after which learning starts; with --resume, `state` continues the checkpoint.

    A checkpoint saved with its replay buffer continues exactly, games included where the envs can be
    restored (GymnasiumEnvs). ale-py's vector env cannot be: its games restart, and each env's last
    frame of the checkpoint is stored as the end of a truncated game, so that no stack joins the old
    game to the new one. Without the buffer (or from a weights-only model file, which also starts a fresh
    optimizer) the memory is refilled with --num_warmup_steps steps of the current policy's epsilon
    before learning goes on.
    """
    checkpoint = load_checkpoint(config.resume) if config.resume else None
    if checkpoint is not None and "random_states" in checkpoint:
        state.load_state_dict(checkpoint)
    elif checkpoint is not None:
        state.load_model_file(checkpoint)
    buffer_file = paths.replay_buffer(state.step)
    if checkpoint is not None and buffer_file.is_file():
        buffer = StreamedReplayBuffer.load(buffer_file, not config.dont_crash_if_no_mem, config.replay_compression)
        learning_starts = config.num_warmup_steps
    else:
        buffer = StreamedReplayBuffer(config.replay_buffer_size, config.num_envs, crash_if_no_mem=not config.dont_crash_if_no_mem,
                                      seed=config.seed, compression=config.replay_compression)
        learning_starts = config.num_warmup_steps if checkpoint is None else state.step + config.num_warmup_steps
        if checkpoint is not None:
            print(f"resuming without a saved replay buffer: refilling it for {config.num_warmup_steps} steps before learning")
    if checkpoint is not None and "random_states" in checkpoint and not state.envs_restored:
        for i, frame in enumerate(state.obs):
            buffer.store_truncation(i, frame)
        state.obs = state.envs.reset(seed=config.seed + state.step)
        print(f"resuming with {config.num_envs} new games: the vector env cannot restore the ones in progress")
    return buffer, learning_starts


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

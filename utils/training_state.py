"""The whole state of a training run as one object; checkpoints, resume and best models are built from it here.

A checkpoint is `TrainingState.state_dict()`: tensors and plain values only (it loads with
`weights_only=True`), with these keys, stable across versions so that older checkpoints resume:
  state_dict, target_state_dict, optimizer_state_dict   the networks and the optimizer
  step, num_updates, num_episodes                       agent steps taken, gradient updates, real games ended
  episode_returns                                       the last 100 unclipped game scores
  best_mean_return, best_eval_return, best_model_path   what picked the best model, and where it is
  best_rescore_return                                   the best model's --rescore_episodes mean (-inf: none; absent
                                                        in older checkpoints)
  epsilon                                               at `step` (for reading; the schedule recomputes it)
  random_states                                         python, numpy, torch and the loop's generator
  env_state, obs                                        per env: the emulator with its RNG and wrapper counters (a
                                                        list, or None where the envs cannot be saved); each env's
                                                        last frame, (N, 84, 84) uint8 (older checkpoints: one env's
                                                        state dict and one (84, 84) frame)
  env_id, num_actions, args, commit_hash, seed          what identifies the run (`identity`)
On resume the optimizer keeps its moment estimates but takes the learning rate the run is given.
A best-model file is `model_file()`: the weights and what identifies them, no training state
(MODEL_FILE_KEYS); `weights_only(checkpoint)` makes one of a checkpoint, and
`python -m utils.training_state CHECKPOINT OUT` writes it (6.7 MB for the Nature CNN: small enough to
commit a long run's latest weights, so that a lost machine costs at most the steps since).
A run can go on from one (`load_model_file`): same weights, step and counters, but a fresh
optimizer, a target network copied from the weights, a new env and generator, and an empty replay
memory; the optimizer's moment estimates and the buffer's contents are what that loses.
"""
from __future__ import annotations

import argparse
import collections
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utils.checkpoints import CheckpointError, atomic_torch_save, load_checkpoint
from utils.dqn_agent import Learner
from utils.env_wrappers import TrainingEnvs

# What model_file() holds (tests/test_reliability.py checks that the two agree); A2C's and PPO's add "algo".
MODEL_FILE_KEYS = ("env_id", "num_actions", "args", "commit_hash", "seed", "state_dict", "step", "num_updates", "num_episodes",
                   "best_mean_return", "best_eval_return", "best_rescore_return")


def set_random_seeds(seed: int) -> None:
    """Seed python, numpy and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


@dataclass
class TrainingState:
    """Learner, envs, generator and counters of one run. `obs` is each env's latest frame, (N, 84, 84) uint8, not yet stored.

    `envs_restored` is False when a checkpoint was loaded into envs that cannot restore its games.
    """

    learner: Learner
    envs: TrainingEnvs
    rng: np.random.Generator
    obs: np.ndarray
    identity: dict[str, Any]  # env_id, num_actions, args (flags as plain values), commit_hash, seed
    best_model_path: Path
    step: int = 0
    num_updates: int = 0
    num_episodes: int = 0
    epsilon: float = 1.0
    episode_returns: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=100))
    best_mean_return: float = -float("inf")
    best_eval_return: float = -float("inf")
    best_rescore_return: float = -float("inf")
    envs_restored: bool = True

    def mean_return(self) -> float:
        """Mean unclipped score of the last 100 games (nan before the first game ends)."""
        return float(np.mean(self.episode_returns)) if self.episode_returns else float("nan")

    def model_file(self) -> dict[str, Any]:
        """The online network's weights and what identifies them (a best-model file)."""
        return self.identity | {
            "state_dict": self.learner.online.state_dict(),
            "step": self.step,
            "num_updates": self.num_updates,
            "num_episodes": self.num_episodes,
            "best_mean_return": self.best_mean_return,
            "best_eval_return": self.best_eval_return,
            "best_rescore_return": self.best_rescore_return,
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds (module docstring)."""
        return self.model_file() | {
            "target_state_dict": self.learner.target.state_dict(),
            "optimizer_state_dict": self.learner.optimizer.state_dict(),
            "epsilon": self.epsilon,
            "episode_returns": list(self.episode_returns),
            "best_model_path": str(self.best_model_path),
            "random_states": random_states(self.rng),
            "env_state": self.envs.get_state(),
            "obs": torch.from_numpy(np.array(self.obs)),
        }

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """Continue exactly where `checkpoint` (written by state_dict, now or by an earlier version) left off."""
        self.learner.load_networks(checkpoint["state_dict"], checkpoint["target_state_dict"])
        configured_lrs = [group["lr"] for group in self.learner.optimizer.param_groups]
        self.learner.optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
        for group, lr in zip(self.learner.optimizer.param_groups, configured_lrs):
            group["lr"] = lr  # the run's --learning_rate, which a resume may change, wins over the checkpoint's
        self.step, self.num_updates, self.num_episodes = checkpoint["step"], checkpoint["num_updates"], checkpoint["num_episodes"]
        self.episode_returns.clear()
        self.episode_returns.extend(checkpoint["episode_returns"])
        self.best_mean_return, self.best_eval_return = checkpoint["best_mean_return"], checkpoint["best_eval_return"]
        self.best_rescore_return = checkpoint.get("best_rescore_return", -float("inf"))
        self.best_model_path = Path(checkpoint["best_model_path"])
        restore_random_states(checkpoint["random_states"], self.rng)
        env_state, obs = checkpoint["env_state"], checkpoint["obs"].numpy()
        if isinstance(env_state, dict):  # a single-env checkpoint of an earlier version
            env_state, obs = [env_state], obs[None]
        if len(obs) != self.envs.num_envs:
            raise ValueError(f"the checkpoint has {len(obs)} envs, this run {self.envs.num_envs}")
        self.envs_restored = self.envs.restorable
        if self.envs_restored and env_state is not None:  # None: an env without emulator state (tests' tiny tasks)
            self.envs.set_state(env_state)
        self.obs = obs

    def load_model_file(self, model: dict[str, Any]) -> None:
        """Go on from a best-model file: its weights (online and target), step and counters; the rest starts fresh."""
        self.learner.load_networks(model["state_dict"], model["state_dict"])
        self.step, self.num_updates, self.num_episodes = model["step"], model.get("num_updates", 0), model.get("num_episodes", 0)
        self.best_mean_return = model.get("best_mean_return", -float("inf"))
        self.best_eval_return = model.get("best_eval_return", -float("inf"))
        self.best_rescore_return = model.get("best_rescore_return", -float("inf"))


def weights_only(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The model file of a training checkpoint (DQN's, or A2C's and PPO's with their "algo"): its MODEL_FILE_KEYS,
    without target, optimizer, games or generators."""
    if "random_states" not in checkpoint or "optimizer_state_dict" not in checkpoint:
        raise CheckpointError("not a training checkpoint (no random_states/optimizer_state_dict): nothing to strip")
    return {key: checkpoint[key] for key in ("algo", *MODEL_FILE_KEYS) if key in checkpoint}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a checkpoint's weights-only model file (the training script's --resume goes on from it).")
    parser.add_argument("checkpoint", help="a ..._ckpt_steps_N.pth of train_DQN_script.py, train_A2C_script.py or train_PPO_script.py")
    parser.add_argument("out", help="the model file to write (atomically)")
    args = parser.parse_args(argv)
    try:
        model = weights_only(load_checkpoint(args.checkpoint))
    except CheckpointError as e:
        parser.exit(2, f"error: {e}\n")
    atomic_torch_save(model, args.out)
    script = f"train_{model.get('algo', 'dqn').upper()}_script.py"
    print(f"{args.out}: weights and counters of step {model['step']} ({model['env_id']}); resume with: "
          f"python {script} --resume {args.out} --output_dir DIR")


if __name__ == "__main__":
    main()

"""Stable-Baselines3 DQN with rl-baselines3-zoo's Atari settings: agent steps/s after learning starts, as JSON.

Run by bench/peer_sb3.py with the Python of its own virtual environment (.venv-sb3), not the project's.
Zoo settings (hyperparams/dqn.yml, atari): AtariWrapper, 4-frame stack, CnnPolicy, buffer 100k, lr 1e-4,
batch 32, target_update_interval 1000, train_freq 4, gradient_steps 1; learning_starts and a constant
epsilon are set by the caller so both loops time the same phase.
"""
import argparse
import json
import time

import ale_py
import gymnasium as gym
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack


class StartClock(BaseCallback):
    """Notes the time when the agent step `start` is reached."""

    def __init__(self, start: int) -> None:
        super().__init__()
        self.start, self.started_at = start, None

    def _on_step(self) -> bool:
        if self.started_at is None and self.num_timesteps >= self.start:
            self.started_at = time.perf_counter()
        return True


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--env_id", default="BreakoutNoFrameskip-v4")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--warmup", type=int, default=2000)
    p.add_argument("--ratio", type=int, default=4)
    p.add_argument("--epsilon", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--num_envs", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gym.register_envs(ale_py)
    env = VecFrameStack(make_atari_env(args.env_id, n_envs=args.num_envs, seed=0), n_stack=4)
    model = DQN(
        "CnnPolicy", env, buffer_size=100_000, learning_rate=1e-4, batch_size=32, learning_starts=args.warmup,
        target_update_interval=1000, train_freq=args.ratio // args.num_envs, gradient_steps=1, exploration_initial_eps=args.epsilon,
        exploration_final_eps=args.epsilon, optimize_memory_usage=False, device="cpu", seed=0, verbose=0,
    )
    clock = StartClock(args.warmup)
    model.learn(total_timesteps=args.warmup + args.steps, callback=clock)
    elapsed = time.perf_counter() - clock.started_at
    print(json.dumps({"steps_per_s": args.steps / elapsed, "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()

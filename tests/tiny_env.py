"""A tiny pixel task with a known answer, for tests that must show learning (not a mock of Atari).

Each step shows one white 20x20 square on the left or right half of an 84x84 uint8 frame. Action 0
means "left", 1 "right": +1 when it names the square's side, -1 otherwise; 10 steps per episode.
A random policy scores 0 on average, the optimal policy 10.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import RecordEpisodeStatistics

from utils.env_wrappers import GymnasiumEnvs

EPISODE_LENGTH = 10


class SideTask(gym.Env):
    observation_space = gym.spaces.Box(0, 255, (84, 84), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.side, self.t = 0, 0

    def _obs(self) -> np.ndarray:
        self.side = int(self.np_random.integers(2))
        frame = np.zeros((84, 84), np.uint8)
        x = 10 if self.side == 0 else 54
        frame[32:52, x : x + 20] = 255
        return frame

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = 1.0 if int(action) == self.side else -1.0
        self.t += 1
        return self._obs(), reward, self.t >= EPISODE_LENGTH, False, {}

    def render(self) -> None:
        return None


def make_side_task(env_id: str = "SideTask", training: bool = True, render_mode: str | None = None) -> gym.Env:
    """Same signature as make_atari_env, so train_dqn can run on it unchanged."""
    return RecordEpisodeStatistics(SideTask())


def make_side_task_envs(env_id: str, num_envs: int, backend: str = "auto", render_mode: str | None = None) -> GymnasiumEnvs:
    """Same signature as make_training_envs: N side tasks behind the training loop's env interface."""
    return GymnasiumEnvs(env_id, num_envs, render_mode, make_env=make_side_task)

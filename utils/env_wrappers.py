"""The DeepMind/Nature Atari environment stack, built from gymnasium's and ale-py's own pieces.

make_atari_env composes, in this order, on a `*NoFrameskip-v4` id (frameskip 1, no sticky actions):
  AtariPreprocessing    up to 30 random no-ops on reset, action repeat 4 with a max-pool over the
                        last 2 frames, 84x84 grayscale uint8 (gymnasium)
  RecordEpisodeStatistics  the real game's unclipped score and length in info["episode"] (gymnasium)
  EpisodicLifeEnv       training only: a lost life is terminal for bootstrapping (written here)
  TransformReward(sign) training only: rewards clipped to {-1, 0, 1} (gymnasium)
  TimeLimit             evaluation only: episodes capped at max_episode_frames / 4 agent steps
Observations are single (84, 84) uint8 frames; the 4-frame stack is built by the replay buffer
(training) or FrameStackObservation (evaluation).

No FIRE is ever pressed for the agent, as in the Nature paper and Dopamine: in games that wait
for FIRE (Breakout) the agent learns to serve, at the start of a game and after each lost life,
and training and evaluation give it exactly the same mechanics.
"""
from __future__ import annotations

from typing import Any

import ale_py
import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import (
    AtariPreprocessing,
    RecordEpisodeStatistics,
    TimeLimit,
    TransformReward,
)

gym.register_envs(ale_py)

FRAME_SKIP = 4


class EnvIdError(ValueError):
    """An --env_id that is not a registered Atari NoFrameskip-v4 game."""


def validate_env_id(env_id: str) -> str:
    """Return env_id if it names a registered ALE `*NoFrameskip-v4` game, else raise EnvIdError (one line)."""
    hint = "list valid ids with: python -c \"import gymnasium as g, ale_py; g.register_envs(ale_py); print([i for i in g.registry if i.endswith('NoFrameskip-v4')])\""
    if env_id not in gym.registry:
        raise EnvIdError(f"unknown --env_id '{env_id}' (expected e.g. PongNoFrameskip-v4); {hint}")
    spec = gym.registry[env_id]
    if not env_id.endswith("NoFrameskip-v4") or "ale_py" not in str(spec.entry_point):
        raise EnvIdError(f"--env_id '{env_id}' is not an Atari NoFrameskip-v4 id (frame skipping is done here); {hint}")
    return env_id


class EpisodicLifeEnv(gym.Wrapper):
    """Make a lost life terminal (for bootstrapping) without ending the real game.

    After a life-loss "terminal", reset() does not reset the emulator; it takes one no-op step
    so the game continues. info["life_loss"] is True on the step that lost the life.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        info["life_loss"] = 0 < lives < self.lives
        if info["life_loss"]:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


def make_atari_env(
    env_id: str,
    training: bool = True,
    noop_max: int = 30,
    max_episode_frames: int | None = None,
    render_mode: str | None = None,
) -> gym.Env:
    """The Nature DQN stack (module docstring); training=False keeps full games and raw rewards."""
    env = gym.make(validate_env_id(env_id), render_mode=render_mode)
    env = AtariPreprocessing(env, noop_max=noop_max, frame_skip=FRAME_SKIP, screen_size=84, grayscale_obs=True)
    env = RecordEpisodeStatistics(env)
    if training:
        env = EpisodicLifeEnv(env)
    if training:
        env = TransformReward(env, lambda r: float(np.sign(r)))
    if max_episode_frames is not None:
        env = TimeLimit(env, max_episode_steps=max_episode_frames // FRAME_SKIP)
    return env


# Per wrapper, the attributes that make up its state between two steps (for exact resume).
_WRAPPER_STATE = {
    AtariPreprocessing: ("obs_buffer", "lives", "game_over"),
    RecordEpisodeStatistics: ("episode_returns", "episode_lengths"),
    EpisodicLifeEnv: ("lives", "game_over"),
}


def _chain(env: gym.Env) -> list[gym.Env]:
    chain = [env]
    while hasattr(chain[-1], "env"):
        chain.append(chain[-1].env)
    return chain


def get_env_state(env: gym.Env) -> dict[str, Any]:
    """The emulator (with its RNG), the env's no-op RNG and the wrappers' counters, as tensors and plain values."""
    state: dict[str, Any] = {
        "ale": torch.frombuffer(bytearray(env.unwrapped.ale.cloneState(include_rng=True).__getstate__()), dtype=torch.uint8),
        "np_random": env.unwrapped.np_random.bit_generator.state,
        "wrappers": [],
    }
    for wrapper in _chain(env):
        attrs = _WRAPPER_STATE.get(type(wrapper), ())
        values = {a: getattr(wrapper, a) for a in attrs}
        values = {a: torch.from_numpy(np.array(v)) if isinstance(v, (np.ndarray, list)) else _plain(v) for a, v in values.items()}
        state["wrappers"].append(values)
    return state


def set_env_state(env: gym.Env, state: dict[str, Any]) -> None:
    """Restore what get_env_state captured into an env built by make_atari_env with the same arguments."""
    ale_state = ale_py.ALEState.__new__(ale_py.ALEState)
    ale_state.__setstate__(state["ale"].numpy().tobytes())
    env.unwrapped.ale.restoreState(ale_state)
    env.unwrapped.np_random.bit_generator.state = state["np_random"]
    stateful = [w for w in _chain(env) if _WRAPPER_STATE.get(type(w))]
    for wrapper, values in zip(stateful, [v for v in state["wrappers"] if v], strict=True):
        for attr, value in values.items():
            if isinstance(value, torch.Tensor):  # arrays, or lists of arrays (AtariPreprocessing.obs_buffer)
                value = list(value.numpy().copy()) if isinstance(getattr(wrapper, attr), list) else value.numpy().copy()
            setattr(wrapper, attr, value)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (weights_only checkpoints hold plain types only)."""
    return value.item() if isinstance(value, np.generic) else value

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

Training acts on N games at once through `make_training_envs`, one of two backends with the same
step contract (`VecStep`: same-step autoreset, clipped rewards, the unclipped score of each game
that ended):
  GymnasiumEnvs  N copies of the stack above, stepped in turn. N = 1 is the single-env loop of
                 earlier versions exactly, and its state (emulators, RNGs, wrappers) is saved in
                 checkpoints, so a resume is bit-exact.
  AleVectorEnvs  ale-py's own vector env (C++ threads, its own preprocessing) with the Nature
                 options: frameskip 4 with a 2-frame max-pool, 84x84 grayscale, raw rewards,
                 terminal at each lost life without a reset (`life_loss_info`), no FIRE press,
                 no sticky actions, 108,000-frame games, one frame per observation. On the same
                 actions it gives the same frames, rewards and terminals as the stack above
                 (tests/test_env_wrappers.py), except in two places: after a lost life the stack
                 takes one NOOP step of its own (the vector env goes straight on), and the reset's
                 random no-ops are 0-30 emulator frames there, 1-30 NOOP actions here. Its
                 emulators cannot be saved: a resume restarts the games that were in progress.

No FIRE is ever pressed for the agent, as in the Nature paper and Dopamine: in games that wait
for FIRE (Breakout) the agent learns to serve, at the start of a game and after each lost life,
and training and evaluation give it exactly the same mechanics.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol

import ale_py
import gymnasium as gym
import numpy as np
import torch
from ale_py.vector_env import AtariVectorEnv
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


# ---------------------------------------------------------------------------------------------
# N training games at once.
# ---------------------------------------------------------------------------------------------
class VecStep(NamedTuple):
    """What one step of N training games returns (arrays over the N envs).

    obs        (N, 84, 84) uint8: each env's next frame to act on (a new game's first frame where one ended)
    rewards    (N,) float32, clipped to {-1, 0, 1}
    terminal   (N,) bool: the transition ends bootstrapping (a lost life, or the end of the game)
    truncated  (N,) bool: the game was cut by its time limit and is not terminal
    final_obs  (N, 84, 84) uint8: where truncated, the game's last frame (the transition's next state)
    scores     (env index, unclipped score, agent steps) of each real game (all lives) that ended
    """

    obs: np.ndarray
    rewards: np.ndarray
    terminal: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray
    scores: list[tuple[int, float, int]]


class TrainingEnvs(Protocol):
    """N training games stepped together with same-step autoreset; `restorable` says whether get_state captures them."""

    num_envs: int
    num_actions: int
    restorable: bool

    def reset(self, seed: int) -> np.ndarray: ...
    def step(self, actions: np.ndarray) -> VecStep: ...
    def get_state(self) -> list[dict[str, Any]] | None: ...
    def set_state(self, state: list[dict[str, Any]]) -> None: ...
    def render(self) -> np.ndarray | None: ...
    def close(self) -> None: ...


class GymnasiumEnvs:
    """N make_atari_env(training=True) stacks stepped in turn; env i is reset with seed + i."""

    restorable = True

    def __init__(self, env_id: str, num_envs: int, render_mode: str | None = None, make_env: Callable[..., gym.Env] | None = None) -> None:
        make_env = make_env or make_atari_env
        self.envs = [make_env(env_id, training=True, render_mode=render_mode if i == 0 else None) for i in range(num_envs)]
        self.num_envs, self.num_actions = num_envs, int(self.envs[0].action_space.n)

    def reset(self, seed: int) -> np.ndarray:
        return np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(self.envs)])

    def step(self, actions: np.ndarray) -> VecStep:
        n = self.num_envs
        obs, final_obs = np.empty((n, 84, 84), np.uint8), np.zeros((n, 84, 84), np.uint8)
        rewards, terminal, truncated = np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, bool)
        scores = []
        for i, env in enumerate(self.envs):
            obs[i], rewards[i], terminal[i], truncated[i], info = env.step(int(actions[i]))
            truncated[i] &= not terminal[i]
            if "episode" in info:
                scores.append((i, float(info["episode"]["r"]), int(info["episode"]["l"])))
            if terminal[i] or truncated[i]:
                final_obs[i] = obs[i]
                obs[i] = env.reset()[0]
        return VecStep(obs, rewards, terminal, truncated, final_obs, scores)

    def get_state(self) -> list[dict[str, Any]] | None:
        if not hasattr(self.envs[0].unwrapped, "ale"):  # not an Atari env (tests' tiny tasks)
            return None
        return [get_env_state(env) for env in self.envs]

    def set_state(self, state: list[dict[str, Any]]) -> None:
        for env, env_state in zip(self.envs, state, strict=True):
            set_env_state(env, env_state)

    def render(self) -> np.ndarray | None:
        return self.envs[0].render()

    def close(self) -> None:
        for env in self.envs:
            env.close()


class AleVectorEnvs:
    """ale-py's AtariVectorEnv with the Nature options (module docstring); env i is reset with seed + i."""

    restorable = False

    def __init__(self, env_id: str, num_envs: int, num_threads: int = 0, noop_max: int = 30) -> None:
        spec = gym.registry[validate_env_id(env_id)]
        self.env = AtariVectorEnv(
            spec.kwargs["game"], num_envs, num_threads=num_threads, autoreset_mode="SameStep",
            max_num_frames_per_episode=spec.kwargs["max_num_frames_per_episode"], repeat_action_probability=0.0,
            img_height=84, img_width=84, grayscale=True, stack_num=1, frameskip=FRAME_SKIP, maxpool=True, noop_max=noop_max,
            episodic_life=False, life_loss_info=True, reward_clipping=False, use_fire_reset=False,
        )
        self.num_envs, self.num_actions = num_envs, int(self.env.single_action_space.n)
        self.scores, self.lengths = np.zeros(num_envs), np.zeros(num_envs, np.int64)
        self.lives = np.zeros(num_envs, np.int64)

    def reset(self, seed: int) -> np.ndarray:
        obs, info = self.env.reset(seed=seed)
        self.scores[:], self.lengths[:], self.lives[:] = 0, 0, info["lives"]
        return obs[:, 0]

    def step(self, actions: np.ndarray) -> VecStep:
        obs, rewards, terminated, truncated, info = self.env.step(np.asarray(actions, dtype=np.int64))
        self.scores += rewards
        self.lengths += 1
        # After a game ends the env is reset at once, so `lives` is the new game's: a lost life is a drop in lives.
        life_lost = (0 < info["lives"]) & (info["lives"] < self.lives)
        game_over = (terminated & ~life_lost) | truncated
        scores = [(i, float(self.scores[i]), int(self.lengths[i])) for i in np.flatnonzero(game_over)]
        self.scores[game_over], self.lengths[game_over] = 0, 0
        self.lives = info["lives"].astype(np.int64)
        final_obs = info["final_obs"][:, 0] if "final_obs" in info else np.zeros_like(obs[:, 0])
        return VecStep(obs[:, 0], np.sign(rewards).astype(np.float32), terminated, truncated & ~terminated, final_obs, scores)

    def get_state(self) -> None:
        return None

    def set_state(self, state: list[dict[str, Any]]) -> None:
        raise NotImplementedError("ale-py's vector env cannot restore its emulators")

    def render(self) -> None:
        return None

    def close(self) -> None:
        self.env.close()


VECTOR_ENVS = ("auto", "gymnasium", "ale")


def make_training_envs(env_id: str, num_envs: int, backend: str = "auto", render_mode: str | None = None) -> TrainingEnvs:
    """N training games: `auto` is GymnasiumEnvs for one env (bit-exact resume) and ale-py's vector env for more."""
    if backend == "gymnasium" or (backend == "auto" and num_envs == 1):
        return GymnasiumEnvs(env_id, num_envs, render_mode)
    return AleVectorEnvs(env_id, num_envs)

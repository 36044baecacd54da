"""The Nature paper's evaluation protocol, shared by evaluate_DQN_script.py and training (--eval_freq).

Protocol (Mnih et al., 2015, Methods): epsilon-greedy with epsilon 0.05, up to 30 random no-op
starts, full games (all lives; no episodic life), the unclipped game score, each episode capped at
18,000 frames (5 minutes of play at 60 Hz = 4,500 agent steps). As in training, no FIRE is pressed
for the agent. A DQN's greedy actions come from the learner's `greedy_action` at the precision
training uses, so the policy that is scored is the policy that training picked; an actor-critic
(A2C, PPO) plays actions sampled from its own policy, at the same precision, and its runs evaluate
it with epsilon 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium.wrappers import FrameStackObservation

from models.definitions.ActorCritic import ActorCritic
from models.definitions.DQN import DQN, precision_context
from utils.dqn_agent import greedy_action
from utils.env_wrappers import make_atari_env

# Nature paper, Extended Data Table 2: random play, professional human tester, DQN (mean scores).
NATURE_SCORES: dict[str, dict[str, float]] = {
    "Asteroids": {"random": 719.1, "human": 13157.0, "dqn": 1629.0},
    "BeamRider": {"random": 363.9, "human": 5775.0, "dqn": 6846.0},
    "Boxing": {"random": 0.1, "human": 4.3, "dqn": 71.8},
    "Breakout": {"random": 1.7, "human": 31.8, "dqn": 401.2},
    "Enduro": {"random": 0.0, "human": 309.6, "dqn": 301.8},
    "Freeway": {"random": 0.0, "human": 29.6, "dqn": 30.3},
    "MsPacman": {"random": 307.3, "human": 15693.0, "dqn": 2311.0},
    "Pong": {"random": -20.7, "human": 9.3, "dqn": 18.9},
    "Qbert": {"random": 163.9, "human": 13455.0, "dqn": 10596.0},
    "Seaquest": {"random": 68.4, "human": 20182.0, "dqn": 5286.0},
    "SpaceInvaders": {"random": 148.0, "human": 1652.0, "dqn": 1976.0},
}
EVAL_EPSILON = 0.05
EVAL_NOOP_MAX = 30
EVAL_MAX_EPISODE_FRAMES = 18_000


def game_name(env_id: str) -> str:
    """'PongNoFrameskip-v4' -> 'Pong'."""
    return env_id.split("NoFrameskip")[0]


def human_normalized_score(env_id: str, score: float) -> float | None:
    """100 * (agent - random) / (human - random), or None for a game not in NATURE_SCORES."""
    ref = NATURE_SCORES.get(game_name(env_id))
    if ref is None:
        return None
    return 100.0 * (score - ref["random"]) / (ref["human"] - ref["random"])


@dataclass
class EvalResult:
    """Per-episode unclipped scores and lengths (agent steps), plus frames of the first episode if recorded."""

    returns: list[float]
    lengths: list[int]
    noops: list[int]  # no-op actions taken at the start of each game
    game_over: list[bool]  # False where the 18,000-frame cap ended the game
    random_actions: int = 0  # epsilon draws over all games, out of sum(lengths)
    frames: list[np.ndarray] = field(default_factory=list)

    def summary(self, env_id: str) -> dict[str, Any]:
        r = np.asarray(self.returns, dtype=np.float64)
        mean = float(r.mean())
        return {
            "env_id": env_id,
            "num_episodes": len(self.returns),
            "mean": mean,
            "std": float(r.std()),
            "median": float(np.median(r)),
            "min": float(r.min()),
            "max": float(r.max()),
            "human_normalized_score": human_normalized_score(env_id, mean),
            "nature": NATURE_SCORES.get(game_name(env_id)),
            "returns": [float(x) for x in self.returns],
            "lengths_agent_steps": self.lengths,
            "noop_starts": self.noops,
            "game_over": self.game_over,
            "random_action_fraction": self.random_actions / max(sum(self.lengths), 1),
        }


def evaluation_action(model: DQN | ActorCritic, state: np.ndarray, rng: np.random.Generator, autocast_dtype: torch.dtype | None) -> int:
    """A DQN's greedy action, or an action an actor-critic's policy samples (drawn with the evaluation's generator)."""
    if not isinstance(model, ActorCritic):
        return greedy_action(model, state, autocast_dtype)
    device = next(model.parameters()).device
    with torch.no_grad(), precision_context(device.type, autocast_dtype):
        logits, _ = model(torch.from_numpy(np.asarray(state))[None].to(device))
    probs = torch.softmax(logits[0].double(), dim=0).cpu().numpy()
    return int(rng.choice(len(probs), p=probs / probs.sum()))


def evaluate(
    dqn: DQN | ActorCritic,
    env_id: str,
    num_episodes: int,
    seed: int,
    epsilon: float = EVAL_EPSILON,
    max_episode_frames: int = EVAL_MAX_EPISODE_FRAMES,
    record_first: bool = False,
    autocast_dtype: torch.dtype | None = None,
) -> EvalResult:
    """Play num_episodes full games with `dqn` (or an actor-critic), epsilon-greedy, under the Nature protocol on a fresh env."""
    env = make_atari_env(
        env_id, training=False, noop_max=EVAL_NOOP_MAX, max_episode_frames=max_episode_frames,
        render_mode="rgb_array" if record_first else None,
    )
    env = FrameStackObservation(env, stack_size=4, padding_type="zero")
    rng = np.random.default_rng(seed)
    result = EvalResult(returns=[], lengths=[], noops=[], game_over=[])
    was_training = dqn.training
    dqn.eval()
    for episode in range(num_episodes):
        obs, info = env.reset(seed=seed + episode)
        result.noops.append(int(info["episode_frame_number"]))
        recording = record_first and episode == 0
        if recording:
            result.frames.append(env.render())
        total, length, done = 0.0, 0, False
        while not done:
            if rng.random() < epsilon:
                action = int(rng.integers(env.action_space.n))
                result.random_actions += 1
            else:
                action = evaluation_action(dqn, obs, rng, autocast_dtype)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            length += 1
            done = terminated or truncated
            if recording:
                result.frames.append(env.render())
        result.returns.append(total)
        result.lengths.append(length)
        result.game_over.append(bool(terminated))
    dqn.train(was_training)
    env.close()
    return result

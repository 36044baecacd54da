"""The Nature paper's evaluation protocol, shared by evaluate_DQN_script.py and training (--eval_freq).

Protocol (Mnih et al., 2015, Methods): epsilon-greedy with epsilon 0.05, up to 30 random no-op
starts, full games (all lives; no episodic life), the unclipped game score, each episode capped at
18,000 frames (5 minutes of play at 60 Hz = 4,500 agent steps). As in training, no FIRE is pressed
for the agent. A DQN's greedy actions come from the learner's `greedy_actions` at the precision
training uses, so the policy that is scored is the policy that training picked; an actor-critic
(A2C, PPO) plays actions sampled from its own policy, at the same precision, and its runs evaluate
it with epsilon 0; with `greedy` it plays its most probable action instead (SB3's
`deterministic=True`). Several games can be played side by side with one batched forward pass per step
(`games_at_once`: training's evaluations play 10, 1.3-1.7x faster on 2 CPU cores); the scores then come
from other random draws than one game after another, with the same distribution. Each game also records
its score at each lost life (ALE's life counter), which shows where in a game an agent fails.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from gymnasium.wrappers import FrameStackObservation

from models.definitions.ActorCritic import ActorCritic
from models.definitions.DQN import DQN, precision_context
from utils.dqn_agent import greedy_actions
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
    life_losses: list[list[float]] = field(default_factory=list)  # per game, its score when each life was lost (empty: no lives)
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
            "score_at_each_life_loss": self.life_losses,
            "random_action_fraction": self.random_actions / max(sum(self.lengths), 1),
        }


def evaluation_actions(model: DQN | ActorCritic, states: np.ndarray, num_actions: int, rng: np.random.Generator, epsilon: float,
                       autocast_dtype: torch.dtype | None, greedy: bool = False) -> tuple[np.ndarray, int]:
    """The actions of K games for their (K, 4, 84, 84) uint8 states, with one forward pass, and how many were random.

    Game by game, in order, `rng` draws whether the action is random (probability epsilon) and then a random
    action, or (an actor-critic, unless `greedy`) an action from the policy's probabilities; a DQN's is its
    greedy one, a greedy actor-critic's its most probable one (the first of equal logits).
    """
    sampled = isinstance(model, ActorCritic) and not greedy
    if isinstance(model, ActorCritic):
        device = next(model.parameters()).device
        with torch.no_grad(), precision_context(device.type, autocast_dtype):
            logits, _ = model(torch.from_numpy(states).to(device))
        if sampled:
            probs = torch.softmax(logits.double(), dim=1).cpu().numpy()
        else:
            best = logits.argmax(dim=1).cpu().numpy()
    else:
        best = greedy_actions(model, states, autocast_dtype)
    actions, random_actions = np.zeros(len(states), np.int64), 0
    for k in range(len(states)):
        if rng.random() < epsilon:
            actions[k] = rng.integers(num_actions)
            random_actions += 1
        elif sampled:
            actions[k] = rng.choice(num_actions, p=probs[k] / probs[k].sum())
        else:
            actions[k] = best[k]
    return actions, random_actions


@dataclass
class Game:
    """One game in progress: its index (it was reset with seed + index), its stacked observation, score, length and lives."""

    index: int
    obs: np.ndarray
    lives: int
    score: float = 0.0
    length: int = 0
    life_losses: list[float] = field(default_factory=list)


def evaluate(
    model: DQN | ActorCritic,
    env_id: str,
    num_episodes: int,
    seed: int,
    epsilon: float = EVAL_EPSILON,
    max_episode_frames: int = EVAL_MAX_EPISODE_FRAMES,
    record_first: bool = False,
    autocast_dtype: torch.dtype | None = None,
    games_at_once: int = 1,
    greedy: bool = False,
    on_game_end: Callable[[int, float], None] | None = None,
) -> EvalResult:
    """Play num_episodes full games under the Nature protocol, game i on an env reset with seed + i.

    `games_at_once` envs play side by side, one batched forward pass per step, each taking the next game
    when its own ends. One generator, seeded with `seed`, draws every random choice (evaluation_actions), so
    the scores are a function of (model, seed, games_at_once, greedy); with 1 the games are played one after
    another. `greedy` makes an actor-critic play its most probable action instead of a sampled one.
    `on_game_end(index, score)` is called as each game ends (in the order they end), e.g. to show progress.
    """
    envs = [
        FrameStackObservation(make_atari_env(env_id, training=False, noop_max=EVAL_NOOP_MAX, max_episode_frames=max_episode_frames,
                                             render_mode="rgb_array" if record_first and k == 0 else None), stack_size=4, padding_type="zero")
        for k in range(min(games_at_once, num_episodes))
    ]
    rng = np.random.default_rng(seed)
    result = EvalResult(returns=[0.0] * num_episodes, lengths=[0] * num_episodes, noops=[0] * num_episodes, game_over=[False] * num_episodes,
                        life_losses=[[] for _ in range(num_episodes)])
    was_training = model.training
    model.eval()

    def start(k: int, index: int) -> Game:
        obs, info = envs[k].reset(seed=seed + index)
        result.noops[index] = int(info["episode_frame_number"])
        if record_first and index == 0:
            result.frames.append(envs[k].render())
        return Game(index, obs, int(info["lives"]))

    games = {k: start(k, k) for k in range(len(envs))}  # env k -> the game it plays
    next_index = len(envs)
    while games:
        playing = list(games)
        actions, random_actions = evaluation_actions(
            model, np.stack([np.asarray(games[k].obs) for k in playing]), int(envs[0].action_space.n), rng, epsilon, autocast_dtype, greedy,
        )
        result.random_actions += random_actions
        for k, action in zip(playing, actions):
            game = games[k]
            game.obs, reward, terminated, truncated, info = envs[k].step(int(action))
            game.score += float(reward)
            game.length += 1
            if info["lives"] < game.lives:
                game.life_losses.append(game.score)
            game.lives = int(info["lives"])
            if record_first and game.index == 0:
                result.frames.append(envs[k].render())
            if terminated or truncated:
                result.returns[game.index], result.lengths[game.index] = game.score, game.length
                result.game_over[game.index] = bool(terminated)
                result.life_losses[game.index] = game.life_losses
                if on_game_end is not None:
                    on_game_end(game.index, game.score)
                if next_index < num_episodes:
                    games[k], next_index = start(k, next_index), next_index + 1
                else:
                    del games[k]
    model.train(was_training)
    for env in envs:
        env.close()
    return result

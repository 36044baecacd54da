"""The Nature wrapper stack on the real emulator (ale-py's bundled Breakout and Pong ROMs)."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from utils.env_wrappers import AleVectorEnvs, EnvIdError, GymnasiumEnvs, make_atari_env, make_training_envs, validate_env_id


@pytest.mark.parametrize("env_id", ["BreakoutNoFrameskip-v4", "PongNoFrameskip-v4"])
def test_observations_are_single_84x84_uint8_frames(env_id: str) -> None:
    env = make_atari_env(env_id, training=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (84, 84) and obs.dtype == np.uint8
    obs, reward, *_ = env.step(0)
    assert obs.shape == (84, 84) and obs.dtype == np.uint8 and obs.max() > 0
    env.close()


def test_noop_starts_are_random_and_within_30() -> None:
    """AtariPreprocessing takes 1..30 no-ops on reset and nothing else: no FIRE is pressed for the agent."""
    env = make_atari_env("PongNoFrameskip-v4", training=False)
    frames = set()
    env.reset(seed=0)
    for _ in range(40):
        _, info = env.reset()
        frames.add(info["episode_frame_number"])
    assert all(1 <= f <= 30 for f in frames)
    assert len(frames) > 10  # random, not a fixed count
    env.close()


def lives_lost_by(env, actions: list[int]) -> int:
    """Play `actions` through env (continuing past life-loss terminals as training does); lives lost on the way."""
    lost = 0
    for action in actions:
        lives = env.unwrapped.ale.lives()
        _, _, terminated, truncated, _ = env.step(action)
        lost += int(env.unwrapped.ale.lives() < lives)
        if terminated or truncated:
            env.reset()
    return lost


@pytest.mark.parametrize("training", [True, False])
def test_breakout_waits_for_the_agent_to_serve_after_a_lost_life(training: bool) -> None:
    """Training and evaluation stacks give the same mechanics: nothing serves for the agent, ever.

    FIRE serves, 400 NOOPs miss the ball (a life is lost), 400 more NOOPs lose nothing (the ball
    waits, in both stacks), and one FIRE then serves again so the next NOOPs lose a life.
    """
    env = make_atari_env("BreakoutNoFrameskip-v4", training=training)
    env.reset(seed=0)
    assert lives_lost_by(env, [0] * 400) == 0  # no serve at the start of the game either
    assert lives_lost_by(env, [1] + [0] * 400) == 1
    assert lives_lost_by(env, [0] * 400) == 0
    assert lives_lost_by(env, [1] + [0] * 400) == 1
    env.close()


def test_life_loss_is_terminal_for_bootstrapping_but_not_for_episode_stats() -> None:
    env = make_atari_env("BreakoutNoFrameskip-v4", training=True)
    env.reset(seed=0)
    life_losses, episode = 0, None
    for _ in range(5000):
        _, _, terminated, truncated, info = env.step(1)  # FIRE: serves, never moves, so the ball is missed
        if info["life_loss"]:
            assert terminated
            assert "episode" not in info
            life_losses += 1
        if "episode" in info:
            episode = info["episode"]
            break
        if terminated or truncated:
            env.reset()
    assert life_losses == 4  # five lives: four life losses, then game over
    assert episode is not None and episode["l"] > 0
    env.close()


def test_training_rewards_clipped_raw_score_in_episode_stats() -> None:
    """Space Invaders' aliens are worth 5-30 points: training rewards are their sign, episode stats the raw score."""
    env = make_atari_env("SpaceInvadersNoFrameskip-v4", training=True)
    raw_env = make_atari_env("SpaceInvadersNoFrameskip-v4", training=False)
    env.reset(seed=3)
    raw_env.reset(seed=3)
    rng = np.random.default_rng(0)
    clipped, total_clipped, episode_score = set(), 0.0, None
    for _ in range(20000):
        _, r, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        clipped.add(r)
        total_clipped += r
        if "episode" in info:
            episode_score = info["episode"]["r"]
            break
        if terminated or truncated:
            env.reset()
    raw = set()
    for _ in range(2000):
        _, r, terminated, truncated, _ = raw_env.step(int(rng.integers(raw_env.action_space.n)))
        raw.add(r)
        if terminated or truncated:
            raw_env.reset()
    assert clipped <= {-1.0, 0.0, 1.0} and 1.0 in clipped
    assert max(raw) >= 5.0  # the evaluation env keeps the game's score
    assert episode_score is not None and episode_score >= 5 * total_clipped  # stats use the game's score
    env.close()
    raw_env.close()


@pytest.mark.parametrize("bad_id", ["NotAGame-v0", "CartPole-v1", "ALE/Pong-v5", "Pong-v4"])
def test_bad_env_ids_fail_with_one_line(bad_id: str) -> None:
    with pytest.raises(EnvIdError) as error:
        validate_env_id(bad_id)
    assert "\n" not in str(error.value) and "NoFrameskip" in str(error.value)


@pytest.mark.parametrize("env_id", ["BreakoutNoFrameskip-v4", "PongNoFrameskip-v4"])
def test_ale_vector_env_gives_the_wrapper_stacks_frames_rewards_terminals_and_scores(env_id: str) -> None:
    """Same actions, no random no-ops: identical frames, clipped rewards, terminals and game scores, except where
    the docstring says they differ: after a lost life the stack takes a NOOP step of its own, which the vector
    env is given here as an extra action (its reward must be 0 and its frame the stack's)."""
    stack = GymnasiumEnvs(env_id, 1, make_env=functools.partial(make_atari_env, noop_max=0))
    vector = AleVectorEnvs(env_id, 1, noop_max=0)
    np.testing.assert_array_equal(vector.reset(seed=0), stack.reset(seed=0))
    rng = np.random.default_rng(0)
    counts = {"steps": 0, "lives lost": 0, "games": 0}
    while counts["steps"] < 6000 or counts["games"] < 2:
        action = rng.integers(stack.num_actions, size=1)
        a, b = stack.step(action), vector.step(action)
        life_lost = bool(a.terminal[0]) and not a.scores
        if life_lost:  # the stack took a NOOP inside its reset: the vector env takes it now
            assert b.terminal[0] and not b.scores
            b = vector.step(np.zeros(1, np.int64))
            assert b.rewards[0] == 0 and not b.terminal[0] and not b.scores
            counts["lives lost"] += 1
        else:
            np.testing.assert_array_equal(b.terminal, a.terminal)
            np.testing.assert_array_equal(b.rewards, a.rewards)
            assert [s[:2] for s in b.scores] == [s[:2] for s in a.scores]  # (env, score); lengths count the NOOPs
            counts["games"] += len(a.scores)
        np.testing.assert_array_equal(b.obs, a.obs, err_msg=f"step {counts['steps']}")
        counts["steps"] += 1
    assert counts["games"] >= 2 and (counts["lives lost"] > 0 or env_id.startswith("Pong"))
    stack.close()
    vector.close()


def test_vector_env_steps_n_games_with_same_step_resets_and_scores_per_game() -> None:
    envs = make_training_envs("BreakoutNoFrameskip-v4", 4)
    assert isinstance(envs, AleVectorEnvs) and not envs.restorable
    obs = envs.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    rng = np.random.default_rng(0)
    scores, terminals = [], 0
    for _ in range(3000):
        result = envs.step(rng.integers(envs.num_actions, size=4))
        assert result.obs.shape == (4, 84, 84) and set(np.unique(result.rewards)) <= {0.0, 1.0}
        terminals += int(result.terminal.sum())
        scores += result.scores
    assert {i for i, _, _ in scores} == {0, 1, 2, 3}  # every env finished games ...
    assert terminals >= 5 * len(scores)  # ... of 5 lives, each lost life terminal
    assert all(length > 0 and score >= 0 for _, score, length in scores)
    envs.close()

"""The frame-once replay buffer against a naive reference that stores full (4, 84, 84) stacks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.replay_buffer import (
    NotEnoughMemoryError,
    ReplayBuffer,
    StreamedReplayBuffer,
    check_enough_memory,
    replay_buffer_bytes,
)

SHAPE = (3, 2)  # tiny frames keep the property test fast; the logic does not depend on the shape
K = 4


class NaiveReplay:
    """Stores, per slot index, the full (state, action, reward, next_state, done) built from the true history."""

    def __init__(self) -> None:
        self.transitions: dict[int, tuple] = {}
        self.pending: dict[int, tuple] = {}  # slot -> (state, action, reward, done) awaiting its next state
        self.segment: list[np.ndarray] = []  # frames of the current episode segment

    def stack(self) -> np.ndarray:
        frames = [np.zeros(SHAPE, np.uint8)] * K + self.segment
        return np.stack(frames[-K:])

    def observe(self, slot: int, frame: np.ndarray, new_segment: bool) -> None:
        """A frame stored at `slot`; it is the next state of the previous pending transition (if any)."""
        self.transitions.pop(slot, None)  # the slot is overwritten
        self.pending.pop(slot, None)
        if new_segment:
            self.segment = []
        self.segment.append(frame)
        next_state = self.stack()
        for prev, (state, action, reward, done) in list(self.pending.items()):
            self.transitions[prev] = (state, action, reward, next_state, done)
            del self.pending[prev]

    def act(self, slot: int, action: int, reward: float, done: bool) -> None:
        self.pending[slot] = (self.stack(), action, reward, done)


# An episode segment: its length (frames acted on) and how it ends: terminal or time-limit truncation.
segments = st.lists(st.tuples(st.integers(1, 12), st.sampled_from(["terminal", "truncated"])), min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(capacity=st.integers(K + 2, 40), episodes=segments, seed=st.integers(0, 2**16), compression=st.sampled_from(["none", "lz4"]))
def test_fast_buffer_matches_naive_reference(capacity: int, episodes: list[tuple[int, str]], seed: int, compression: str) -> None:
    rng = np.random.default_rng(seed)
    fast = ReplayBuffer(capacity, frame_shape=SHAPE, seed=seed, compression=compression)
    naive = NaiveReplay()
    stored_slots: list[int] = []  # every slot ever written, in order
    new_segment = True

    def check() -> None:
        # Every slot the naive reference knows a complete transition for, and that is still fully stored, must match.
        oldest = len(stored_slots) - fast.get_current_size()
        live = stored_slots[oldest:]
        for pos, slot in enumerate(live):
            if slot not in naive.transitions:
                continue
            state, action, reward, next_state, done = naive.transitions[slot]
            if pos < K - 1 and fast.get_current_size() == capacity:
                continue  # the 3 oldest slots of a full buffer are never sampled (their stacks are gone)
            s, a, r, s2, d = fast.fetch_transitions(np.array([slot]))
            np.testing.assert_array_equal(s[0], state)
            assert (a[0], r[0], d[0]) == (action, np.float32(reward), done)
            if not done:  # after a terminal the next state is masked out of the target anyway
                np.testing.assert_array_equal(s2[0], next_state)
        # Sampled slots are always ones with a complete, still-stored transition.
        if fast.num_sampleable() > 0:
            for slot in fast.sample_indices(64):
                assert int(slot) in naive.transitions, f"sampled slot {slot} has no complete transition"
                pos = live.index(int(slot))
                assert not (pos < K - 1 and fast.get_current_size() == capacity)
        # The acting state is the stack of the newest frame.
        np.testing.assert_array_equal(fast.fetch_last_state(), naive.stack())

    for length, ending in episodes:
        for t in range(length):
            frame = rng.integers(1, 256, size=SHAPE, dtype=np.uint8)  # non-zero, so padding is visible
            slot = fast.store_frame(frame)
            stored_slots.append(slot)
            naive.observe(slot, frame, new_segment)
            new_segment = False
            check()
            action, reward = int(rng.integers(0, 18)), float(rng.integers(-1, 2))
            done = ending == "terminal" and t == length - 1
            fast.store_action_reward_done(slot, action, reward, done)
            naive.act(slot, action, reward, done)
        if ending == "truncated":  # the final observation is stored, then a new episode starts
            frame = rng.integers(1, 256, size=SHAPE, dtype=np.uint8)
            slot = fast.store_truncation(frame)
            stored_slots.append(slot)
            naive.observe(slot, frame, new_segment=False)
            naive.pending.clear()
        new_segment = True
        check()


@settings(max_examples=60, deadline=None)
@given(num_envs=st.integers(1, 3), capacity=st.integers(K + 2, 30), plans=st.lists(segments, min_size=3, max_size=3),
       seed=st.integers(0, 2**16), compression=st.sampled_from(["none", "lz4"]))
def test_streamed_buffer_keeps_each_env_apart_and_matches_naive_references(
    num_envs: int, capacity: int, plans: list[list[tuple[int, str]]], seed: int, compression: str
) -> None:
    """N envs step together as the training loop drives them; each stream must match its env's naive reference."""
    rng = np.random.default_rng(seed)
    fast = StreamedReplayBuffer(capacity * num_envs, num_envs, seed=seed, compression=compression, frame_shape=SHAPE)
    naive = [NaiveReplay() for _ in range(num_envs)]
    # Each env's script: per agent step (terminal?, truncated?) from its own list of episode segments.
    scripts = [[(t == n - 1 and end == "terminal", t == n - 1 and end == "truncated") for n, end in plan for t in range(n)]
               for plan in plans[:num_envs]]
    new_segment = [True] * num_envs
    for step in range(max(len(script) for script in scripts)):
        frames = rng.integers(1, 256, size=(num_envs, *SHAPE), dtype=np.uint8)
        slots = fast.store_frames(frames)
        for i in range(num_envs):
            naive[i].observe(int(slots[i]), frames[i], new_segment[i])
        np.testing.assert_array_equal(fast.fetch_last_states(), np.stack([n.stack() for n in naive]))
        actions, rewards = rng.integers(0, 18, num_envs), rng.integers(-1, 2, num_envs).astype(np.float32)
        ends = [script[step % len(script)] for script in scripts]
        dones = np.array([terminal for terminal, _ in ends])
        fast.store_actions_rewards_dones(slots, actions, rewards, dones)
        for i, (terminal, truncated) in enumerate(ends):
            naive[i].act(int(slots[i]), int(actions[i]), float(rewards[i]), bool(terminal))
            if truncated:
                frame = rng.integers(1, 256, size=SHAPE, dtype=np.uint8)
                naive[i].observe(fast.store_truncation(i, frame), frame, new_segment=False)
                naive[i].pending.clear()
            new_segment[i] = terminal or truncated
        if fast.num_sampleable() == 0:
            continue
        # Every sampled transition is a complete one of its own env, stacks and all.
        per_stream = fast.sample_slots(64)
        assert sum(len(s) for s in per_stream) == 64
        for i, slots_i in enumerate(per_stream):
            s, a, r, s2, d = fast.streams[i].fetch_transitions(slots_i)
            for row, slot in enumerate(slots_i):
                state, action, reward, next_state, done = naive[i].transitions[int(slot)]
                np.testing.assert_array_equal(s[row], state)
                assert (a[row], r[row], d[row]) == (action, np.float32(reward), done)
                if not done:
                    np.testing.assert_array_equal(s2[row], next_state)
        assert fast.fetch_random_states(16)[0].shape == (16, K, *SHAPE)


def test_streams_are_drawn_in_proportion_to_their_transitions() -> None:
    fast = StreamedReplayBuffer(3000, 3, seed=0, frame_shape=SHAPE)
    for count, stream in zip((100, 400, 900), fast.streams):
        for i in range(count):
            slot = stream.store_frame(np.full(SHAPE, 1, np.uint8))
            stream.store_action_reward_done(slot, 0, 0.0, False)
    draws = np.array([len(s) for s in fast.sample_slots(140_000)])
    expected = 140_000 * np.array([99, 399, 899]) / 1397  # the newest slot of each stream has no next frame yet
    assert np.all(np.abs(draws - expected) < 5 * np.sqrt(expected)), (draws, expected)


def test_streamed_buffer_saves_and_loads_every_stream_and_its_draws(tmp_path) -> None:
    fast = StreamedReplayBuffer(200, 2, seed=5, compression="lz4", frame_shape=SHAPE)
    rng = np.random.default_rng(0)
    for t in range(150):
        slots = fast.store_frames(rng.integers(0, 256, (2, *SHAPE), dtype=np.uint8))
        fast.store_actions_rewards_dones(slots, np.array([1, 2]), np.array([0.0, 1.0]), np.array([t % 17 == 0, t % 23 == 0]))
    fast.save(tmp_path / "b.npz")
    loaded = StreamedReplayBuffer.load(tmp_path / "b.npz", compression="lz4")
    assert loaded.num_streams == 2
    for a, b in zip(fast.fetch_random_states(32), loaded.fetch_random_states(32)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fast.fetch_last_states(), loaded.fetch_last_states())


def test_one_stream_is_the_single_buffer_draws_included() -> None:
    single, streamed = ReplayBuffer(50, frame_shape=SHAPE, seed=3), StreamedReplayBuffer(50, 1, seed=3, frame_shape=SHAPE)
    for t in range(80):
        frame = np.full(SHAPE, t, np.uint8)
        slot = single.store_frame(frame)
        single.store_action_reward_done(slot, t % 3, 1.0, t % 9 == 0)
        slots = streamed.store_frames(frame[None])
        streamed.store_actions_rewards_dones(slots, np.array([t % 3]), np.array([1.0]), np.array([t % 9 == 0]))
    for a, b in zip(single.fetch_random_states(32), streamed.fetch_random_states(32)):
        np.testing.assert_array_equal(a, b)


def test_batch_shapes_and_dtypes() -> None:
    buffer = ReplayBuffer(100, seed=0)
    for i in range(50):
        slot = buffer.store_frame(np.full((84, 84), i, np.uint8))
        buffer.store_action_reward_done(slot, i % 4, 1.0, i % 10 == 9)
    states, actions, rewards, next_states, dones = buffer.fetch_random_states(32)
    assert states.shape == next_states.shape == (32, 4, 84, 84)
    assert states.dtype == next_states.dtype == np.uint8
    assert actions.dtype == np.uint8 and rewards.dtype == np.float32 and dones.dtype == bool
    assert buffer.get_current_size() == 50
    assert buffer.fetch_last_state().shape == (4, 84, 84)


def test_wraparound_at_size_not_multiple_of_ratio_builds_small_stacks() -> None:
    """Near the wrap, a stack is 4 frames taken modulo N (never a slice of ~N frames)."""
    buffer = ReplayBuffer(1003, seed=0)
    for i in range(2 * 1003 + 2):
        slot = buffer.store_frame(np.full((84, 84), i % 251, np.uint8))
        buffer.store_action_reward_done(slot, 0, 0.0, False)
    states, *_ = buffer.fetch_transitions(np.array([0, 1, 2, 1002]))
    assert states.shape == (4, 4, 84, 84)


def test_newest_slot_never_sampled_when_full() -> None:
    """The newest slot has no next frame yet, so it is never sampled, even when the buffer is full."""
    buffer = ReplayBuffer(10, seed=0)
    for i in range(25):
        slot = buffer.store_frame(np.full((84, 84), i, np.uint8))
        buffer.store_action_reward_done(slot, 0, 0.0, False)
    newest = (buffer.next_index - 1) % 10
    sampled = set(buffer.sample_indices(2000).tolist())
    assert newest not in sampled
    assert len(sampled) == 10 - 1 - 3


def test_ram_check_refuses_too_large_buffer_in_one_line() -> None:
    with pytest.raises(NotEnoughMemoryError) as error:
        check_enough_memory(10 * 2**50)
    message = str(error.value)
    assert "\n" not in message and "--replay_buffer_size" in message and "--dont_crash_if_no_mem" in message
    check_enough_memory(10 * 2**50, crash_if_no_mem=False)  # the flag lets the user go on


def test_ram_estimate_for_one_million_frames() -> None:
    assert replay_buffer_bytes(1_000_000) == 1_000_000 * (84 * 84 + 8)  # ~7.06 GB, not 28 GB of full stacks
    assert replay_buffer_bytes(1_000_000, compression="lz4") < 1e9  # the compressed mode is checked at its own size


def fill_with_breakout(buffer: ReplayBuffer, steps: int) -> None:
    from utils.env_wrappers import make_atari_env

    env = make_atari_env("BreakoutNoFrameskip-v4", training=True)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        slot = buffer.store_frame(obs)
        action = int(rng.integers(4))
        obs, reward, terminated, truncated, _ = env.step(action)
        buffer.store_action_reward_done(slot, action, reward, terminated)
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()


def test_lz4_mode_gives_identical_samples_to_raw_mode_on_real_frames() -> None:
    raw, packed = ReplayBuffer(1500, seed=0), ReplayBuffer(1500, seed=0, compression="lz4")
    fill_with_breakout(raw, 2000)
    fill_with_breakout(packed, 2000)
    for _ in range(5):
        for a, b in zip(raw.fetch_random_states(32), packed.fetch_random_states(32)):
            np.testing.assert_array_equal(a, b)
    assert sum(len(b) for b in packed.blocks) < raw.frames.nbytes / 8  # real Atari frames compress well


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_save_and_load_continue_exactly(tmp_path, compression: str) -> None:
    buffer = ReplayBuffer(700, seed=3, compression=compression)
    fill_with_breakout(buffer, 900)
    path = buffer.save(tmp_path / "buffer.npz")
    loaded = ReplayBuffer.load(path, compression=compression)
    assert (loaded.next_index, loaded.get_current_size()) == (buffer.next_index, buffer.get_current_size())
    np.testing.assert_array_equal(loaded.fetch_last_state(), buffer.fetch_last_state())
    for a, b in zip(buffer.fetch_random_states(32), loaded.fetch_random_states(32)):
        np.testing.assert_array_equal(a, b)  # same contents and the same sampling RNG stream

"""Replay memory that stores each 84x84 frame once and rebuilds 4-frame stacks when sampling.

Storage invariants (read these before the code):
- The buffer is circular with capacity N. Slot i holds frame o_i (uint8, 84x84) and, once the
  agent has acted on it, the action a_i, the clipped reward r_i and `dones[i]`, which is True
  when the transition i -> i+1 is terminal for bootstrapping (game over or a lost life).
- A stack "ending at i" is frames i-3..i (indices mod N). A frame is replaced by zeros (black)
  when it belongs to an earlier episode segment, i.e. when there is an episode end in slots
  k..i-1, or when it is older than the oldest frame still stored. A stack never mixes segments.
- `ends[i]` marks the last frame of an episode segment: a terminal transition (dones[i]) or the
  final observation of an episode cut by a time limit (stored with `store_truncation`). Such a
  final observation has no action: `has_action[i]` is False and i is never sampled, but it is
  the correct, non-terminal next state of the transition before it.
- A transition i is sampled with state = stack ending at i and next state = stack ending at
  i+1. Slot i is valid to sample when it has an action and i+1 is already written, so the newest
  slot is never sampled (defect 7 of the original). Once the buffer has wrapped, the 3 oldest
  slots are not sampled either, since their stacks would need frames already overwritten.
- All index arithmetic is modulo N, whatever N is (defect 8 of the original).

Step order (the original's API): idx = store_frame(obs); state = fetch_last_state(); act;
step; store_action_reward_done(idx, action, reward, done).
"""
from __future__ import annotations

import numpy as np
import psutil


class NotEnoughMemoryError(RuntimeError):
    """Raised when the replay buffer would not fit in the RAM that is available."""


def replay_buffer_bytes(max_buffer_size: int, frame_shape: tuple[int, int] = (84, 84)) -> int:
    """Bytes the raw buffer allocates: frames + actions (uint8) + rewards (float32) + 3 bool flags."""
    return max_buffer_size * (int(np.prod(frame_shape)) + 1 + 4 + 3)


def check_enough_memory(needed_bytes: int, crash_if_no_mem: bool = True) -> None:
    """Raise NotEnoughMemoryError with one clear line if `needed_bytes` exceeds available RAM."""
    available = psutil.virtual_memory().available
    if needed_bytes > available and crash_if_no_mem:
        raise NotEnoughMemoryError(
            f"the replay buffer needs {needed_bytes / 2**30:.2f} GiB but only {available / 2**30:.2f} GiB "
            f"of RAM is available: lower --replay_buffer_size or pass --dont_crash_if_no_mem"
        )


class ReplayBuffer:
    """Circular replay memory of single frames; see the module docstring for the invariants."""

    def __init__(
        self,
        max_buffer_size: int,
        num_last_frames_to_fetch: int = 4,
        frame_shape: tuple[int, int] = (84, 84),
        crash_if_no_mem: bool = True,
        seed: int | None = None,
    ) -> None:
        if max_buffer_size < num_last_frames_to_fetch + 2:
            raise ValueError(f"replay buffer size must be at least {num_last_frames_to_fetch + 2}")
        check_enough_memory(replay_buffer_bytes(max_buffer_size, frame_shape), crash_if_no_mem)
        self.max_buffer_size = max_buffer_size
        self.num_last_frames_to_fetch = num_last_frames_to_fetch
        self.frame_shape = tuple(frame_shape)
        self.frames = np.zeros((max_buffer_size, *self.frame_shape), dtype=np.uint8)
        self.actions = np.zeros(max_buffer_size, dtype=np.uint8)
        self.rewards = np.zeros(max_buffer_size, dtype=np.float32)
        self.dones = np.zeros(max_buffer_size, dtype=bool)
        self.ends = np.zeros(max_buffer_size, dtype=bool)
        self.has_action = np.zeros(max_buffer_size, dtype=bool)
        self.next_index = 0  # the slot the next frame goes to (the write head)
        self.num_in_buffer = 0
        self.rng = np.random.default_rng(seed)

    # ---- storing -------------------------------------------------------------------------
    def store_frame(self, frame: np.ndarray) -> int:
        """Store one (84, 84) uint8 frame at the write head and return its slot index."""
        index = self.next_index
        self.frames[index] = frame.reshape(self.frame_shape)
        self.dones[index] = False
        self.ends[index] = False
        self.has_action[index] = False
        self.next_index = (index + 1) % self.max_buffer_size
        self.num_in_buffer = min(self.num_in_buffer + 1, self.max_buffer_size)
        return index

    def store_action_reward_done(self, index: int, action: int, reward: float, done: bool) -> None:
        """Record what happened after acting on the frame at `index`; done = terminal for bootstrapping."""
        self.actions[index] = action
        self.rewards[index] = reward
        self.dones[index] = done
        self.ends[index] = done
        self.has_action[index] = True

    def store_truncation(self, final_frame: np.ndarray) -> int:
        """Store the last observation of an episode cut by a time limit (it is the next state, not a state)."""
        index = self.store_frame(final_frame)
        self.ends[index] = True
        return index

    # ---- fetching ------------------------------------------------------------------------
    def get_current_size(self) -> int:
        """Number of frames stored (at most max_buffer_size)."""
        return self.num_in_buffer

    def num_sampleable(self) -> int:
        """Number of slots that `sample_indices` may return (approximately: truncation frames are rejected)."""
        lost_at_wrap = self.num_last_frames_to_fetch - 1 if self.num_in_buffer == self.max_buffer_size else 0
        return max(self.num_in_buffer - 1 - lost_at_wrap, 0)

    def _oldest_index(self) -> int:
        return (self.next_index - self.num_in_buffer) % self.max_buffer_size

    def _masked_stacks(self, last_indices: np.ndarray) -> np.ndarray:
        """Stacks ending at each slot of last_indices: (B, 4, 84, 84) uint8, earlier segments zeroed."""
        n, k = self.max_buffer_size, self.num_last_frames_to_fetch
        slots = (last_indices[:, None] + np.arange(-(k - 1), 1)[None, :]) % n  # (B, k), oldest first
        stacks = self.frames[slots]
        # Column c survives when no episode ends in columns c..k-2 (a reverse cumulative OR) ...
        ends = self.ends[slots[:, :-1]]
        cut = np.flip(np.logical_or.accumulate(np.flip(ends, axis=1), axis=1), axis=1)
        # ... and when it is not older than the oldest stored frame.
        stored_before = (last_indices - self._oldest_index()) % n
        too_old = np.arange(k - 1, 0, -1)[None, :] > stored_before[:, None]
        stacks[:, : k - 1][cut | too_old] = 0
        return stacks

    def sample_indices(self, batch_size: int) -> np.ndarray:
        """Uniformly sample `batch_size` valid transition slots (with replacement), as int64."""
        count = self.num_sampleable()
        if count <= 0:
            raise ValueError("the replay buffer has no complete transition to sample yet")
        start = (self._oldest_index() + (self.num_in_buffer - 1 - count)) % self.max_buffer_size
        indices = (start + self.rng.integers(0, count, size=batch_size)) % self.max_buffer_size
        for _ in range(100):  # truncation frames have no action (rare): draw those slots again
            invalid = ~self.has_action[indices]
            if not invalid.any():
                return indices
            indices[invalid] = (start + self.rng.integers(0, count, size=int(invalid.sum()))) % self.max_buffer_size
        raise ValueError("the replay buffer holds too few complete transitions to sample")

    def fetch_transitions(
        self, indices: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(states, actions, rewards, next_states, dones) for the given slots; stacks are (B, 4, 84, 84) uint8."""
        states = self._masked_stacks(indices)
        next_states = self._masked_stacks((indices + 1) % self.max_buffer_size)
        return states, self.actions[indices], self.rewards[indices], next_states, self.dones[indices]

    def fetch_random_states(
        self, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A uniformly sampled minibatch: states and next states (B, 4, 84, 84) uint8, actions uint8, rewards float32, dones bool."""
        return self.fetch_transitions(self.sample_indices(batch_size))

    def fetch_last_state(self) -> np.ndarray:
        """The stack ending at the newest frame, (4, 84, 84) uint8: the state the agent acts on."""
        newest = np.array([(self.next_index - 1) % self.max_buffer_size])
        return self._masked_stacks(newest)[0]

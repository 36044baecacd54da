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
  slot is never sampled (its next frame does not exist yet). Once the buffer has wrapped, the 3 oldest
  slots are not sampled either, since their stacks would need frames already overwritten.
- All index arithmetic is modulo N, whatever N is: stacks near the wrap take 4 frames, never ~N.

Compression (`compression="lz4"`): each frame is kept as its own LZ4 block (Atari frames compress
about 17x on Breakout), decompressed once per distinct slot when a minibatch is sampled; samples
are identical to the raw mode's.

Step order (the public API, the same as the original repository's): idx = store_frame(obs); state = fetch_last_state(); act;
step; store_action_reward_done(idx, action, reward, done).

N envs (`StreamedReplayBuffer`): one ReplayBuffer ("stream") per env, each of capacity
max_buffer_size // N, so that a stack never mixes envs; a minibatch is drawn uniformly over the
valid transitions of all streams together. With N = 1 it is the single ReplayBuffer, draws included.
"""
from __future__ import annotations

import ctypes
import functools
import json
import sys
from pathlib import Path
from typing import Any

import lz4.block
import numpy as np
import psutil

from utils.checkpoints import atomic_write

COMPRESSIONS = ("none", "lz4")
# Bytes a frame takes in lz4 mode, for the RAM check: the block (~400 B on Breakout, ~270 B on
# Pong; bench/replay_memory.py) plus the Python bytes object and list slot, with margin.
LZ4_BYTES_PER_FRAME_ESTIMATE = 700


class NotEnoughMemoryError(RuntimeError):
    """Raised when the replay buffer would not fit in the RAM that is available."""


def replay_buffer_bytes(max_buffer_size: int, frame_shape: tuple[int, int] = (84, 84), compression: str = "none") -> int:
    """Bytes the buffer needs when full: frames + actions (uint8) + rewards (float32) + 3 bool flags."""
    frame_bytes = int(np.prod(frame_shape)) if compression == "none" else LZ4_BYTES_PER_FRAME_ESTIMATE
    return max_buffer_size * (frame_bytes + 1 + 4 + 3)


def check_enough_memory(needed_bytes: int, crash_if_no_mem: bool = True) -> None:
    """Raise NotEnoughMemoryError with one clear line if `needed_bytes` exceeds available RAM."""
    available = psutil.virtual_memory().available
    if needed_bytes > available and crash_if_no_mem:
        raise NotEnoughMemoryError(
            f"the replay buffer needs {needed_bytes / 2**30:.2f} GiB but only {available / 2**30:.2f} GiB "
            f"of RAM is available: lower --replay_buffer_size or pass --dont_crash_if_no_mem"
        )


@functools.cache
def keep_freed_memory_for_reuse() -> bool:
    """Stop glibc from handing the ~2 MB of each freed minibatch back to the OS (Linux only; idempotent).

    By default glibc trims the heap top after every sample is freed, so the next sample page-faults
    its 1.8 MB back in: that made a batch of 32 cost ~1 ms instead of ~0.15 ms on this project's CPU
    (bench/replay_memory.py). Raising the trim and mmap thresholds keeps those pages for reuse.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 64 << 20) and libc.mallopt(m_trim_threshold, 256 << 20))


class ReplayBuffer:
    """Circular replay memory of single frames; see the module docstring for the invariants."""

    def __init__(
        self,
        max_buffer_size: int,
        num_last_frames_to_fetch: int = 4,
        frame_shape: tuple[int, int] = (84, 84),
        crash_if_no_mem: bool = True,
        seed: int | None = None,
        compression: str = "none",
    ) -> None:
        if max_buffer_size < num_last_frames_to_fetch + 2:
            raise ValueError(f"replay buffer size must be at least {num_last_frames_to_fetch + 2}")
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}")
        check_enough_memory(replay_buffer_bytes(max_buffer_size, frame_shape, compression), crash_if_no_mem)
        keep_freed_memory_for_reuse()
        self.max_buffer_size = max_buffer_size
        self.num_last_frames_to_fetch = num_last_frames_to_fetch
        self.frame_shape = tuple(frame_shape)
        self.compression = compression
        self.frame_size = int(np.prod(self.frame_shape))
        if compression == "none":
            self.frames = np.zeros((max_buffer_size, *self.frame_shape), dtype=np.uint8)
        else:
            self.blocks: list[bytes] = [b""] * max_buffer_size  # b"" = never written (decodes to zeros)
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
        if self.compression == "none":
            self.frames[index] = frame.reshape(self.frame_shape)
        else:
            self.blocks[index] = lz4.block.compress(np.ascontiguousarray(frame, dtype=np.uint8).tobytes(), store_size=False)
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

    def _gather(self, *slot_arrays: np.ndarray) -> list[np.ndarray]:
        """Frames at each int array of slots, shape slots.shape + frame_shape, uint8.

        Raw mode: one vectorised fancy index per array. LZ4 mode: each distinct slot of all arrays
        is decompressed once.
        """
        if self.compression == "none":
            return [self.frames[slots] for slots in slot_arrays]
        unique, inverse = np.unique(np.concatenate([s.ravel() for s in slot_arrays]), return_inverse=True)
        decoded = np.zeros((len(unique), *self.frame_shape), dtype=np.uint8)
        flat = decoded.reshape(len(unique), self.frame_size)
        for row, slot in enumerate(unique.tolist()):
            if self.blocks[slot]:  # b"" = never written: stays zeros
                flat[row] = np.frombuffer(lz4.block.decompress(self.blocks[slot], uncompressed_size=self.frame_size), np.uint8)
        out, start = [], 0
        for slots in slot_arrays:
            out.append(decoded[inverse[start : start + slots.size].reshape(slots.shape)])
            start += slots.size
        return out

    def _stack_slots(self, last_indices: np.ndarray) -> np.ndarray:
        """Slots of the stacks ending at last_indices: (B, 4), oldest first."""
        k = self.num_last_frames_to_fetch
        return (last_indices[:, None] + np.arange(-(k - 1), 1)[None, :]) % self.max_buffer_size

    def _zero_earlier_segments(self, stacks: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Zero, in place, the frames of (B, 4, 84, 84) stacks that precede an episode end or the oldest frame."""
        k = self.num_last_frames_to_fetch
        # Column c survives when no episode ends in columns c..k-2 (a reverse cumulative OR) ...
        ends = self.ends[slots[:, :-1]]
        cut = np.flip(np.logical_or.accumulate(np.flip(ends, axis=1), axis=1), axis=1)
        # ... and when it is not older than the oldest stored frame.
        stored_before = (slots[:, -1] - self._oldest_index()) % self.max_buffer_size
        too_old = np.arange(k - 1, 0, -1)[None, :] > stored_before[:, None]
        stacks[:, : k - 1][cut | too_old] = 0
        return stacks

    def sampleable_start(self) -> int:
        """The slot of the oldest sampleable transition: those are the num_sampleable() slots from here on (mod N)."""
        return (self._oldest_index() + (self.num_in_buffer - 1 - self.num_sampleable())) % self.max_buffer_size

    def sample_indices(self, batch_size: int) -> np.ndarray:
        """Uniformly sample `batch_size` valid transition slots (with replacement), as int64."""
        count = self.num_sampleable()
        if count <= 0:
            raise ValueError("the replay buffer has no complete transition to sample yet")
        start = self.sampleable_start()
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
        state_slots = self._stack_slots(indices)
        next_slots = self._stack_slots((indices + 1) % self.max_buffer_size)
        states, next_states = self._gather(state_slots, next_slots)
        self._zero_earlier_segments(states, state_slots)
        self._zero_earlier_segments(next_states, next_slots)
        return states, self.actions[indices], self.rewards[indices], next_states, self.dones[indices]

    def fetch_random_states(
        self, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A uniformly sampled minibatch: states and next states (B, 4, 84, 84) uint8, actions uint8, rewards float32, dones bool."""
        return self.fetch_transitions(self.sample_indices(batch_size))

    def fetch_last_state(self) -> np.ndarray:
        """The stack ending at the newest frame, (4, 84, 84) uint8: the state the agent acts on."""
        newest = np.array([(self.next_index - 1) % self.max_buffer_size])
        slots = self._stack_slots(newest)
        return self._zero_earlier_segments(self._gather(slots)[0], slots)[0]

    # ---- saving and loading (for --save_replay_buffer) ---------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The whole buffer as arrays, frames LZ4-compressed (what save() writes)."""
        if self.compression == "none":
            blocks = [lz4.block.compress(f.tobytes(), store_size=False) for f in self.frames[: self.num_in_buffer]]
        else:
            blocks = self.blocks[: self.num_in_buffer]
        offsets = np.cumsum([0] + [len(b) for b in blocks], dtype=np.int64)
        arrays = {
            "blocks": np.frombuffer(b"".join(blocks), dtype=np.uint8),
            "offsets": offsets,
            "meta": np.array([self.max_buffer_size, self.num_last_frames_to_fetch, self.next_index, self.num_in_buffer, *self.frame_shape]),
            "rng_state": rng_state_array(self.rng),
        }
        for name in ("actions", "rewards", "dones", "ends", "has_action"):
            arrays[name] = getattr(self, name)[: self.num_in_buffer]
        return arrays

    @classmethod
    def from_arrays(cls, data: Any, crash_if_no_mem: bool = True, compression: str = "none") -> ReplayBuffer:
        """The buffer to_arrays() described (`data` maps its names to arrays); contents, write head and RNG continue exactly."""
        size, k, next_index, count, *shape = (int(x) for x in data["meta"])
        buffer = cls(size, k, tuple(shape), crash_if_no_mem, compression=compression)
        blocks, offsets = data["blocks"].tobytes(), data["offsets"]
        for i in range(count):
            block = blocks[offsets[i] : offsets[i + 1]]
            if compression == "none":
                frame = lz4.block.decompress(block, uncompressed_size=buffer.frame_size) if block else bytes(buffer.frame_size)
                buffer.frames[i] = np.frombuffer(frame, dtype=np.uint8).reshape(buffer.frame_shape)
            else:
                buffer.blocks[i] = block
        for name in ("actions", "rewards", "dones", "ends", "has_action"):
            getattr(buffer, name)[:count] = data[name]
        buffer.next_index, buffer.num_in_buffer = next_index, count
        set_rng_state(buffer.rng, data["rng_state"])
        return buffer

    def save(self, path: Path) -> Path:
        """Write the whole buffer to one .npz, frames LZ4-compressed, atomically."""
        arrays = self.to_arrays()
        return atomic_write(Path(path), lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: Path, crash_if_no_mem: bool = True, compression: str = "none") -> ReplayBuffer:
        """Read a buffer written by save(); its contents, write head and sampling RNG continue exactly."""
        with np.load(Path(path), allow_pickle=False) as data:
            return cls.from_arrays(data, crash_if_no_mem, compression)


def rng_state_array(rng: np.random.Generator) -> np.ndarray:
    return np.frombuffer(json.dumps(rng.bit_generator.state).encode(), dtype=np.uint8)


def set_rng_state(rng: np.random.Generator, array: np.ndarray) -> None:
    rng.bit_generator.state = json.loads(array.tobytes().decode())


class StreamedReplayBuffer:
    """One frame-once ReplayBuffer per env ("stream"), sampled as one memory (module docstring).

    Stream i holds env i's frames only, in capacity max_buffer_size // num_streams. Every method
    takes or returns arrays over the streams in env order: frames (N, 84, 84), slots (N,), states
    (N, 4, 84, 84). Minibatches are in the single ReplayBuffer's format. With one stream every call
    is the stream's own (its sampling RNG included), so N = 1 keeps the single-env behaviour exactly.
    """

    def __init__(
        self,
        max_buffer_size: int,
        num_streams: int = 1,
        crash_if_no_mem: bool = True,
        seed: int | None = None,
        compression: str = "none",
        streams: list[ReplayBuffer] | None = None,
        frame_shape: tuple[int, int] = (84, 84),
    ) -> None:
        if streams is None:
            check_enough_memory(replay_buffer_bytes(max_buffer_size, frame_shape, compression), crash_if_no_mem)
            streams = [ReplayBuffer(max_buffer_size // num_streams, frame_shape=frame_shape, crash_if_no_mem=False, seed=seed,
                                    compression=compression) for _ in range(num_streams)]
        self.rng = np.random.default_rng(seed)  # the draw over streams (N > 1); one stream draws with its own
        self.streams = streams
        self.num_streams, self.compression = len(self.streams), compression
        self.max_buffer_size = sum(s.max_buffer_size for s in self.streams)

    def store_frames(self, frames: np.ndarray) -> np.ndarray:
        return np.array([stream.store_frame(frame) for stream, frame in zip(self.streams, frames)])

    def store_actions_rewards_dones(self, slots: np.ndarray, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray) -> None:
        for i, stream in enumerate(self.streams):
            stream.store_action_reward_done(int(slots[i]), int(actions[i]), float(rewards[i]), bool(dones[i]))

    def store_truncation(self, stream: int, final_frame: np.ndarray) -> int:
        return self.streams[stream].store_truncation(final_frame)

    def fetch_last_states(self) -> np.ndarray:
        """Each env's current state, (N, 4, 84, 84) uint8."""
        return np.stack([stream.fetch_last_state() for stream in self.streams])

    def get_current_size(self) -> int:
        return sum(stream.get_current_size() for stream in self.streams)

    def num_sampleable(self) -> int:
        return sum(stream.num_sampleable() for stream in self.streams)

    def sample_slots(self, batch_size: int) -> list[np.ndarray]:
        """Per stream, the slots of a uniform draw (with replacement) of batch_size transitions over all streams."""
        if self.num_streams == 1:
            return [self.streams[0].sample_indices(batch_size)]
        counts = np.array([stream.num_sampleable() for stream in self.streams])
        if counts.sum() <= 0:
            raise ValueError("the replay buffer has no complete transition to sample yet")
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        starts = np.array([stream.sampleable_start() for stream in self.streams])
        sizes = np.array([stream.max_buffer_size for stream in self.streams])
        owner = np.zeros(batch_size, np.int64)
        slots = np.zeros(batch_size, np.int64)
        redraw = np.ones(batch_size, bool)
        for _ in range(100):  # truncation frames have no action (rare): draw those again
            positions = self.rng.integers(0, counts.sum(), size=int(redraw.sum()))
            owner[redraw] = np.searchsorted(first, positions, side="right") - 1
            slots[redraw] = (starts[owner[redraw]] + positions - first[owner[redraw]]) % sizes[owner[redraw]]
            redraw = np.array([not self.streams[o].has_action[i] for o, i in zip(owner, slots)])
            if not redraw.any():
                return [slots[owner == s] for s in range(self.num_streams)]
        raise ValueError("the replay buffer holds too few complete transitions to sample")

    def fetch_random_states(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A uniformly sampled minibatch over all streams, in ReplayBuffer.fetch_random_states' format."""
        parts = [stream.fetch_transitions(slots) for stream, slots in zip(self.streams, self.sample_slots(batch_size)) if len(slots)]
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate(column) for column in zip(*parts))

    def save(self, path: Path) -> Path:
        """One .npz: a single stream in ReplayBuffer.save's format, several with keys '<i>/<name>' and the draw RNG."""
        if self.num_streams == 1:
            return self.streams[0].save(path)
        arrays = {"num_streams": np.array(self.num_streams), "rng_state": rng_state_array(self.rng)}
        for i, stream in enumerate(self.streams):
            arrays.update({f"{i}/{name}": array for name, array in stream.to_arrays().items()})
        return atomic_write(Path(path), lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: Path, crash_if_no_mem: bool = True, compression: str = "none") -> StreamedReplayBuffer:
        """Read a file written by save() (or by ReplayBuffer.save); everything continues exactly."""
        with np.load(Path(path), allow_pickle=False) as data:
            if "num_streams" not in data:
                streams = [ReplayBuffer.from_arrays(data, crash_if_no_mem, compression)]
                return cls(streams[0].max_buffer_size, compression=compression, streams=streams)
            num_streams, streams = int(data["num_streams"]), []
            total = sum(int(data[f"{i}/meta"][0]) for i in range(num_streams))
            check_enough_memory(replay_buffer_bytes(total, compression=compression), crash_if_no_mem)
            for i in range(num_streams):
                prefix = f"{i}/"
                streams.append(ReplayBuffer.from_arrays({k[len(prefix):]: data[k] for k in data.files if k.startswith(prefix)}, False, compression))
            buffer = cls(total, compression=compression, streams=streams)
            set_rng_state(buffer.rng, data["rng_state"])
        return buffer

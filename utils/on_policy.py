"""What the on-policy algorithms (A2C, PPO) share: frame stacks over N envs, rollouts, advantages, their losses.

Invariants:
- A rollout holds T vector steps of N envs (`Rollout`): states (T, N, 4, 84, 84) uint8, actions
  (T, N) int64, log_probs (T, N) and values (T, N) float32 from the policy that acted, rewards
  (T, N) float32 clipped to {-1, 0, 1}, and starts (T, N) bool: True where states[t] is the first
  state after a terminal (a lost life, the end of a game, or a time limit, which on-policy
  training treats as terminal, as CleanRL and Stable-Baselines3 do). No return flows back across
  a start. After the T steps, `next_states` (N, 4, 84, 84), `next_starts` (N,) and the values of
  next_states bootstrap the last step.
- A stack is the last 4 frames of an env's current game, newest last; a new game starts from
  zeros (as ale-py's own stacks and the evaluation's), a lost life does not reset it.
- Advantages are GAE (Schulman et al., 2016): with lambda = 1 they are the n-step returns minus
  the values, A2C's estimator (Mnih et al., 2016); returns = advantages + values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.definitions.ActorCritic import ActorCritic
from utils.env_wrappers import TrainingEnvs


class FrameStacker:
    """The (N, 4, 84, 84) uint8 stacks of N envs, pushed one frame per env per step."""

    def __init__(self, num_envs: int, num_frames: int = 4) -> None:
        self.stacks = np.zeros((num_envs, num_frames, 84, 84), dtype=np.uint8)

    def reset(self, frames: np.ndarray) -> np.ndarray:
        """Every env starts a game: zeros, then its first frame."""
        self.stacks[:] = 0
        self.stacks[:, -1] = frames
        return self.stacks.copy()

    def push(self, frames: np.ndarray, new_game: np.ndarray) -> np.ndarray:
        """Append each env's frame; envs where new_game is True start from zeros. Returns a copy of the stacks."""
        self.stacks[:, :-1] = self.stacks[:, 1:]
        self.stacks[new_game, :-1] = 0
        self.stacks[:, -1] = frames
        return self.stacks.copy()


@dataclass
class Rollout:
    """T vector steps of N envs (module docstring)."""

    states: np.ndarray
    actions: np.ndarray
    log_probs: np.ndarray
    values: np.ndarray
    rewards: np.ndarray
    starts: np.ndarray
    next_states: np.ndarray = field(default_factory=lambda: np.zeros(0))
    next_starts: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def empty(cls, num_steps: int, num_envs: int) -> Rollout:
        shape = (num_steps, num_envs)
        return cls(np.zeros((*shape, 4, 84, 84), np.uint8), np.zeros(shape, np.int64), np.zeros(shape, np.float32),
                   np.zeros(shape, np.float32), np.zeros(shape, np.float32), np.zeros(shape, bool))


class RolloutCollector:
    """Plays N envs with the current policy, T steps at a time, and keeps what the next rollout continues from.

    `states` and `starts` are each env's current stack and whether it is the first after a terminal.
    """

    def __init__(self, envs: TrainingEnvs, seed: int) -> None:
        self.envs = envs
        self.stacker = FrameStacker(envs.num_envs)
        self.states = self.stacker.reset(envs.reset(seed=seed))
        self.starts = np.ones(envs.num_envs, dtype=bool)

    def collect(self, model: ActorCritic, rollout: Rollout, device: torch.device, generator: torch.Generator) -> list[tuple[int, float, int]]:
        """Fill `rollout` with len(rollout.states) steps sampled from the policy; returns the scores of games that ended."""
        scores = []
        for t in range(len(rollout.states)):
            rollout.states[t], rollout.starts[t] = self.states, self.starts
            with torch.no_grad():
                policy, values = model.policy(torch.from_numpy(self.states).to(device))
                actions = torch.multinomial(policy.probs.cpu(), 1, generator=generator).squeeze(1)
                rollout.log_probs[t] = policy.log_prob(actions.to(device)).cpu().numpy()
                rollout.values[t] = values.cpu().numpy()
            rollout.actions[t] = actions.numpy()
            result = self.envs.step(rollout.actions[t])
            rollout.rewards[t] = result.rewards
            new_game = np.zeros(self.envs.num_envs, dtype=bool)
            new_game[[i for i, _, _ in result.scores]] = True
            new_game |= result.truncated
            self.states = self.stacker.push(result.obs, new_game)
            self.starts = result.terminal | result.truncated
            scores += result.scores
        rollout.next_states, rollout.next_starts = self.states, self.starts
        return scores


def advantages_and_returns(
    rewards: np.ndarray, values: np.ndarray, starts: np.ndarray, next_values: np.ndarray, next_starts: np.ndarray,
    gamma: float, gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """GAE advantages and returns (advantages + values), (T, N) each; gae_lambda = 1 gives n-step returns."""
    advantages = np.zeros_like(rewards)
    running = np.zeros_like(next_values)
    for t in reversed(range(len(rewards))):
        if t == len(rewards) - 1:
            continues, following_values = 1.0 - next_starts, next_values
        else:
            continues, following_values = 1.0 - starts[t + 1], values[t + 1]
        delta = rewards[t] + gamma * following_values * continues - values[t]
        running = delta + gamma * gae_lambda * continues * running
        advantages[t] = running
    return advantages, advantages + values


def ppo_loss(
    new_log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor, new_values: torch.Tensor,
    old_values: torch.Tensor, returns: torch.Tensor, entropy: torch.Tensor, clip_coef: float, vf_coef: float,
    ent_coef: float, clip_value: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate, value loss (clipped around the old values as in the paper's code) and entropy bonus.

    loss = -mean(min(r A, clip(r, 1 - c, 1 + c) A)) + vf_coef * 0.5 * mean(max((V - R)^2, (V_clip - R)^2))
           - ent_coef * mean(H), with r = exp(new - old log-prob) and V_clip = V_old + clip(V - V_old, -c, c).
    Advantages are used as given (normalise them before). Returns the loss and its parts (detached).
    """
    log_ratio = new_log_probs - old_log_probs
    ratio = log_ratio.exp()
    policy_loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
    value_error = (new_values - returns) ** 2
    if clip_value:
        clipped_values = old_values + (new_values - old_values).clamp(-clip_coef, clip_coef)
        value_error = torch.max(value_error, (clipped_values - returns) ** 2)
    value_loss = 0.5 * value_error.mean()
    entropy_bonus = entropy.mean()
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy_bonus
    with torch.no_grad():
        stats = {"policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(), "entropy": entropy_bonus.detach(),
                 "approx_kl": ((ratio - 1) - log_ratio).mean(), "clip_fraction": ((ratio - 1).abs() > clip_coef).float().mean()}
    return loss, stats


def a2c_loss(
    log_probs: torch.Tensor, advantages: torch.Tensor, values: torch.Tensor, returns: torch.Tensor, entropy: torch.Tensor,
    vf_coef: float, ent_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A2C (Mnih et al., 2016, as Stable-Baselines3 writes it): -mean(A log pi(a|s)) + vf_coef * mean((R - V)^2) - ent_coef * mean(H).

    `advantages` carry no gradient (they are R - V computed before the update).
    """
    policy_loss = -(advantages.detach() * log_probs).mean()
    value_loss = F.mse_loss(values, returns)
    entropy_bonus = entropy.mean()
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy_bonus
    return loss, {"policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(), "entropy": entropy_bonus.detach()}


class TFLikeRMSprop(torch.optim.Optimizer):
    """RMSProp as TensorFlow (and Stable-Baselines3's RMSpropTFLike, which RL Zoo's Atari A2C uses) computes it.

        square_avg <- alpha * square_avg + (1 - alpha) * grad^2      (square_avg starts at 1, not 0)
        param      <- param - lr * grad / sqrt(square_avg + eps)      (eps inside the square root)

    torch.optim.RMSprop starts square_avg at 0 and adds eps outside the root: much larger first steps.
    """

    def __init__(self, params: Any, lr: float = 7e-4, alpha: float = 0.99, eps: float = 1e-5) -> None:
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)
                square_avg = state["square_avg"]
                square_avg.mul_(group["alpha"]).addcmul_(p.grad, p.grad, value=1 - group["alpha"])
                p.addcdiv_(p.grad, square_avg.add(group["eps"]).sqrt_(), value=-group["lr"])


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """1 - Var(target - predicted) / Var(target): 1 is a perfect value function, 0 no better than a constant."""
    variance = np.var(target)
    return float("nan") if variance == 0 else float(1 - np.var(target - predicted) / variance)

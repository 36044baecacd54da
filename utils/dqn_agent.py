"""The DQN learner: device and precision, greedy action, the loss, one gradient update, target sync, epsilon.

Invariants:
- A state is a (4, 84, 84) uint8 stack; a minibatch (`Batch`) holds states and next_states
  (B, 4, 84, 84) uint8, actions (B,) int, rewards (B,) float32 (already clipped) and dones (B,)
  bool, True where the transition ended the game or lost a life (no bootstrap from s').
- Q-values are always fp32: under bf16 autocast the network's trunk runs in bf16 but its last
  layer runs in fp32 (models/definitions/DQN.py), so every Q-value that is compared, gathered,
  maximised or regressed here has fp32 resolution; the TD target and the Huber loss are fp32.
- Training and evaluation pick greedy actions with the same function and the same precision.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from models.definitions.DQN import DQN, precision_context


class Batch(NamedTuple):
    """A uniform minibatch of transitions (s, a, r, s', done); see the module docstring for shapes."""

    states: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_states: torch.Tensor
    dones: torch.Tensor


class NonFiniteError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the debug checkpoint."""


def cpu_has_native_bf16() -> bool:
    """True on CPUs with native bf16 arithmetic (avx512_bf16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_device_and_precision(device: str = "auto", precision: str = "auto") -> tuple[torch.device, torch.dtype | None]:
    """(device, autocast dtype or None for fp32): cuda when asked or available; `auto` is bf16 only on native-bf16 CPUs.

    On CUDA this network is too small for bf16 to pay: its launches, not its arithmetic, bound an update, and
    autocast's casts add launches (H200: fp32 gave 10-30% more agent steps/s, bench/results/throughput_cuda.json).
    """
    chosen = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    if precision == "bf16" or (precision == "auto" and chosen.type == "cpu" and cpu_has_native_bf16()):
        return chosen, torch.bfloat16
    return chosen, None


def make_networks(num_actions: int, device: torch.device) -> tuple[DQN, DQN]:
    """The online network and a target network that starts as its exact copy and never takes gradients."""
    online = DQN(num_actions).to(device)
    if device.type == "cpu":  # oneDNN's convolutions are fastest on NHWC tensors
        online = online.to(memory_format=torch.channels_last)
    target = DQN(num_actions).to(device)
    target.load_state_dict(online.state_dict())
    target.requires_grad_(False)
    return online, target


def linear_epsilon(step: int, warmup_steps: int, start: float, end: float, duration: int) -> float:
    """1 during the warmup steps, then linear from `start` to `end` over `duration` steps, then `end`."""
    if step <= warmup_steps:
        return 1.0
    fraction = min((step - warmup_steps) / duration, 1.0)
    return start + fraction * (end - start)


def greedy_action(dqn: DQN, state: np.ndarray, autocast_dtype: torch.dtype | None) -> int:
    """argmax_a Q(state, a) for one (4, 84, 84) uint8 state, on the network's device (the only host sync per step)."""
    device = next(dqn.parameters()).device
    with torch.no_grad(), precision_context(device.type, autocast_dtype):
        q_values = dqn(torch.from_numpy(np.asarray(state)).unsqueeze(0).to(device))
    return int(q_values.argmax(dim=1).item())


def to_device(batch: tuple[np.ndarray, ...], device: torch.device) -> Batch:
    """numpy minibatch (the replay buffer's order) -> Batch on device (pinned, non-blocking copies on CUDA)."""
    tensors = [torch.from_numpy(x) for x in batch]
    if device.type == "cuda":
        tensors = [t.pin_memory().to(device, non_blocking=True) for t in tensors]
    return Batch(*tensors)


def dqn_loss(online: DQN, target: DQN, batch: Batch, gamma: float, autocast_dtype: torch.dtype | None) -> torch.Tensor:
    """Huber loss between Q(s, a) and r + gamma * (1 - done) * max_a' Q_target(s', a'); all Q-values fp32."""
    states, actions, rewards, next_states, dones = batch
    with precision_context(states.device.type, autocast_dtype):
        q_taken = online(states).gather(1, actions.long().unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            next_q = target(next_states).max(dim=1).values
    td_target = rewards.float() + gamma * (1.0 - dones.float()) * next_q
    return F.smooth_l1_loss(q_taken, td_target)


def clip_gradients(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale gradients so their global L2 norm is at most max_norm; returns the norm before clipping.

    On the CPU the norm is read back (free there) and the scaling skipped when it is not needed;
    on a GPU the scaling always runs so that no host sync is added.
    """
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads, foreach=True)
    if grads[0].device.type != "cpu" or norm.item() > max_norm:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm, foreach=True)
    return norm


def gradient_norms(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """L2 norm of each parameter's gradient (e.g. 'cnn.0.weight') and of the whole gradient ('total'), on the device."""
    norms = {name: p.grad.detach().norm(2) for name, p in model.named_parameters() if p.grad is not None}
    norms["total"] = torch.linalg.vector_norm(torch.stack(list(norms.values())), 2)
    return norms


def gradient_step(
    online: DQN,
    target: DQN,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    gamma: float,
    max_grad_norm: float,
    autocast_dtype: torch.dtype | None,
    check_finite: bool = True,
    want_grad_norms: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
    """One update: loss, backward, non-finite check, gradient norms, clipping (0 = off), optimizer step.

    Returns the loss (0-d, not synchronised) and, if asked, the raw gradient norms before clipping.
    Raises NonFiniteError (before any weight changes) when check_finite and the loss is NaN or inf.
    """
    loss = dqn_loss(online, target, batch, gamma, autocast_dtype)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if check_finite and not torch.isfinite(loss):
        raise NonFiniteError(f"non-finite loss ({loss.item()})")
    norms = gradient_norms(online) if want_grad_norms else None
    if max_grad_norm > 0:
        clip_gradients(list(online.parameters()), max_grad_norm)
    optimizer.step()
    return loss, norms


def update_target(online: DQN, target: DQN, tau: float) -> None:
    """Hard copy (tau = 1) or soft update target <- tau * online + (1 - tau) * target."""
    with torch.no_grad():
        for t, o in zip(target.parameters(), online.parameters()):
            t.lerp_(o, tau)


class DeepMindRMSprop(torch.optim.Optimizer):
    """The Nature paper's centered RMSProp (DeepMind's dqn/NeuralQLearner.lua), eps inside the square root.

        g_avg  <- decay * g_avg  + (1 - decay) * grad
        g2_avg <- decay * g2_avg + (1 - decay) * grad^2
        param  <- param - lr * grad / sqrt(g2_avg - g_avg^2 + eps)

    torch.optim.RMSprop(centered=True) adds eps outside the root instead, a different update.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 2.5e-4, decay: float = 0.95, eps: float = 0.01) -> None:
        super().__init__(params, {"lr": lr, "decay": decay, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            lr, decay, eps = group["lr"], group["decay"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["g_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["g2_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                g_avg, g2_avg = state["g_avg"], state["g2_avg"]
                g_avg.lerp_(p.grad, 1 - decay)
                g2_avg.mul_(decay).addcmul_(p.grad, p.grad, value=1 - decay)
                denominator = (g2_avg - g_avg * g_avg).add_(eps).sqrt_()
                p.addcdiv_(p.grad, denominator, value=-lr)


def make_optimizer(name: str, params: Iterable[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """'adam' (eps 1.5e-4, as Dopamine and CleanRL; fused kernels) or 'rmsprop' (the paper's DeepMindRMSprop)."""
    if name == "rmsprop":
        return DeepMindRMSprop(params, lr=lr, decay=0.95, eps=0.01)
    return torch.optim.Adam(params, lr=lr, eps=1.5e-4, fused=True)


class Learner:
    """The online and target networks, the optimizer and the update rule's constants: act, update, sync."""

    def __init__(
        self,
        num_actions: int,
        device: torch.device,
        autocast_dtype: torch.dtype | None,
        optimizer: str = "adam",
        learning_rate: float = 1e-4,
        gamma: float = 0.99,
        max_grad_norm: float = 10.0,
    ) -> None:
        self.device, self.autocast_dtype = device, autocast_dtype
        self.gamma, self.max_grad_norm = gamma, max_grad_norm
        self.online, self.target = make_networks(num_actions, device)
        self.optimizer = make_optimizer(optimizer, self.online.parameters(), learning_rate)

    def act(self, state: np.ndarray) -> int:
        """The greedy action for one (4, 84, 84) uint8 state."""
        return greedy_action(self.online, state, self.autocast_dtype)

    def update(self, batch: Batch, check_finite: bool = True, want_grad_norms: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """One gradient step on a minibatch (see gradient_step); returns the loss and, if asked, raw gradient norms."""
        return gradient_step(
            self.online, self.target, self.optimizer, batch, self.gamma, self.max_grad_norm, self.autocast_dtype,
            check_finite=check_finite, want_grad_norms=want_grad_norms,
        )

    def sync_target(self, tau: float = 1.0) -> None:
        update_target(self.online, self.target, tau)

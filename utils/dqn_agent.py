"""The DQN learner: greedy actions, the loss, one gradient update, target sync, epsilon.

Invariants:
- A state is a (4, 84, 84) uint8 stack; a minibatch (`Batch`) holds states and next_states
  (B, 4, 84, 84) uint8, actions (B,) int, rewards (B,) float32 (already clipped) and dones (B,)
  bool, True where the transition ended the game or lost a life (no bootstrap from s').
- Precision (`compute_dtype`, bf16 on CPUs with native bf16, else None = fp32): the online and
  target networks' weights, their gradients as the optimizer sees them, the optimizer's state, the
  gradient clipping and the target update are always fp32 (the "master" networks, what checkpoints
  hold). Under bf16 the forward and backward passes run on "working copies" whose trunk (the three
  convolutions and the hidden layer) holds bf16 weights and whose Q head stays fp32; each
  optimizer step is followed by one copy master -> working copy (round to nearest), each target
  sync by the same for the target. Gradients flow back in bf16 through the trunk and are widened
  to fp32 once per update. So an update costs what pure bf16 costs, while Adam's small steps
  accumulate in fp32 weights. In fp32 the working copies are the master networks themselves.
  The device and the precision are picked, and the working copies made, by utils/precision.py.
- Q-values are always fp32: the Q head runs in fp32 on fp32 features (models/definitions/DQN.py),
  so every Q-value that is compared, gathered, maximised or regressed here has fp32 resolution;
  the TD target and the Huber loss are fp32.
- Acting picks greedy actions for a batch of N states with one forward pass, on the online working
  copy, the network that evaluation during training plays too.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from models.definitions.DQN import DQN, precision_context
from utils.precision import copy_weights, on_device, widen_gradients, working_copy


class Batch(NamedTuple):
    """A uniform minibatch of transitions (s, a, r, s', done); see the module docstring for shapes."""

    states: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_states: torch.Tensor
    dones: torch.Tensor


class NonFiniteError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the debug checkpoint."""


def make_networks(num_actions: int, device: torch.device) -> tuple[DQN, DQN]:
    """The online network and a target network that starts as its exact copy and never takes gradients (fp32)."""
    online = on_device(DQN(num_actions), device)
    target = copy.deepcopy(online).requires_grad_(False)
    return online, target


def linear_epsilon(step: int, warmup_steps: int, start: float, end: float, duration: int) -> float:
    """1 during the warmup steps, then linear from `start` to `end` over `duration` steps, then `end`."""
    if step <= warmup_steps:
        return 1.0
    fraction = min((step - warmup_steps) / duration, 1.0)
    return start + fraction * (end - start)


def greedy_actions(dqn: DQN, states: np.ndarray, autocast_dtype: torch.dtype | None = None) -> np.ndarray:
    """argmax_a Q(s, a) for (N, 4, 84, 84) uint8 states with one forward pass: (N,) int64 (one host sync)."""
    device = next(dqn.parameters()).device
    with torch.no_grad(), precision_context(device.type, autocast_dtype):
        q_values = dqn(torch.from_numpy(np.asarray(states)).to(device))
    return q_values.argmax(dim=1).cpu().numpy()


def greedy_action(dqn: DQN, state: np.ndarray, autocast_dtype: torch.dtype | None = None) -> int:
    """argmax_a Q(state, a) for one (4, 84, 84) uint8 state."""
    return int(greedy_actions(dqn, np.asarray(state)[None], autocast_dtype)[0])


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
    online_work: DQN | None = None,
    target_work: DQN | None = None,
    check_finite: bool = True,
    want_grad_norms: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
    """One update: loss and backward on the working copies, fp32 gradients, non-finite check, gradient norms,
    clipping (0 = off), the optimizer's step on the fp32 `online`, and the online working copy refreshed.

    Working copies default to the master networks (fp32). Returns the loss (0-d, not synchronised) and, if
    asked, the raw gradient norms before clipping. Raises NonFiniteError (before any weight changes) when
    check_finite and the loss is NaN or inf.
    """
    online_work = online if online_work is None else online_work
    target_work = target if target_work is None else target_work
    loss = dqn_loss(online_work, target_work, batch, gamma, None)
    online_work.zero_grad(set_to_none=True)
    loss.backward()
    if check_finite and not torch.isfinite(loss):
        raise NonFiniteError(f"non-finite loss ({loss.item()})")
    widen_gradients(online, online_work)
    norms = gradient_norms(online) if want_grad_norms else None
    if max_grad_norm > 0:
        clip_gradients(list(online.parameters()), max_grad_norm)
    optimizer.step()
    copy_weights(online_work, online)
    return loss, norms


def update_target(online: DQN, target: DQN, tau: float) -> None:
    """Hard copy (tau = 1) or soft update target <- tau * online + (1 - tau) * target."""
    with torch.no_grad():
        for t, o in zip(target.parameters(), online.parameters()):
            t.lerp_(o, tau)


def rmsprop_update(
    params: list[torch.Tensor], grads: list[torch.Tensor], g_avgs: list[torch.Tensor], g2_avgs: list[torch.Tensor],
    lr: float, decay: float, eps: float,
) -> None:
    """DeepMindRMSprop's update of every parameter, in place (the formula is in the class docstring)."""
    for param, grad, g_avg, g2_avg in zip(params, grads, g_avgs, g2_avgs):
        g_avg.lerp_(grad, 1 - decay)
        g2_avg.mul_(decay).addcmul_(grad, grad, value=1 - decay)
        param.addcdiv_(grad, (g2_avg - g_avg * g_avg).add_(eps).sqrt_(), value=-lr)


class DeepMindRMSprop(torch.optim.Optimizer):
    """The Nature paper's centered RMSProp (DeepMind's dqn/NeuralQLearner.lua), eps inside the square root.

        g_avg  <- decay * g_avg  + (1 - decay) * grad
        g2_avg <- decay * g2_avg + (1 - decay) * grad^2
        param  <- param - lr * grad / sqrt(g2_avg - g_avg^2 + eps)

    torch.optim.RMSprop(centered=True) adds eps outside the root instead, a different update.
    DeepMind's `grad` is the minibatch's SUM of per-sample gradients; this project's loss is the mean,
    1/B of it, so the paper's eps = 0.01 becomes 0.01 / B**2 here (make_optimizer; DQN Zoo does the
    same), which makes every step the paper's exactly. With eps = 0.01 on a mean gradient the root is
    ~sqrt(eps) (gradient variances are ~1e-8) and each step would be B = 32 times too small.
    Eagerly that is 8 passes over each tensor (fc1's 1.6M weights make it memory-bound: ~14% of a
    Breakout run's time on 2 CPU cores); with compiled=True, torch.compile fuses it into one loop per
    tensor (~5x faster on CPU, equal to the eager step within float rounding). Compiling needs a C++
    compiler; without one the first step says so in one line and the eager update is kept.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 2.5e-4, decay: float = 0.95, eps: float = 0.01, compiled: bool = False) -> None:
        super().__init__(params, {"lr": lr, "decay": decay, "eps": eps})
        self.update_fn = torch.compile(rmsprop_update, fullgraph=True, dynamic=False) if compiled else rmsprop_update

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if not self.state[p]:
                    self.state[p]["g_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    self.state[p]["g2_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            args = (params, [p.grad for p in params], [self.state[p]["g_avg"] for p in params],
                    [self.state[p]["g2_avg"] for p in params], group["lr"], group["decay"], group["eps"])
            try:
                self.update_fn(*args)
            except Exception as error:  # a compiler failure (no C++ compiler, say) must not end a run: go on eagerly
                if self.update_fn is rmsprop_update:
                    raise
                print(f"RMSProp: torch.compile failed ({type(error).__name__}); using the eager update", flush=True)
                self.update_fn = rmsprop_update
                self.update_fn(*args)


def make_optimizer(name: str, params: Iterable[torch.Tensor], lr: float, batch_size: int = 32) -> torch.optim.Optimizer:
    """'adam' (eps 1.5e-4, as Dopamine and CleanRL; fused kernels) or 'rmsprop' (the paper's DeepMindRMSprop on
    this project's mean-over-the-minibatch gradient: eps 0.01 / batch_size**2; its step compiled on CPU)."""
    params = list(params)
    if name == "rmsprop":
        return DeepMindRMSprop(params, lr=lr, decay=0.95, eps=0.01 / batch_size**2, compiled=params[0].device.type == "cpu")
    return torch.optim.Adam(params, lr=lr, eps=1.5e-4, fused=True)


class Learner:
    """The fp32 online and target networks, their working copies, the optimizer and the update's constants.

    `compute_dtype` is bf16 or None (fp32); see the module docstring for what runs in which precision.
    """

    def __init__(
        self,
        num_actions: int,
        device: torch.device,
        compute_dtype: torch.dtype | None,
        optimizer: str = "adam",
        learning_rate: float = 1e-4,
        gamma: float = 0.99,
        max_grad_norm: float = 10.0,
        batch_size: int = 32,
    ) -> None:
        self.device, self.compute_dtype = device, compute_dtype
        self.gamma, self.max_grad_norm = gamma, max_grad_norm
        self.online, self.target = make_networks(num_actions, device)
        self.online_work, self.target_work = working_copy(self.online, compute_dtype), working_copy(self.target, compute_dtype)
        self.optimizer = make_optimizer(optimizer, self.online.parameters(), learning_rate, batch_size)

    def act(self, states: np.ndarray) -> np.ndarray:
        """Greedy actions (N,) for (N, 4, 84, 84) uint8 states, one forward pass."""
        return greedy_actions(self.online_work, states)

    def update(self, batch: Batch, check_finite: bool = True, want_grad_norms: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """One gradient step on a minibatch (see gradient_step); returns the loss and, if asked, raw gradient norms."""
        return gradient_step(
            self.online, self.target, self.optimizer, batch, self.gamma, self.max_grad_norm, self.online_work, self.target_work,
            check_finite=check_finite, want_grad_norms=want_grad_norms,
        )

    def sync_target(self, tau: float = 1.0) -> None:
        update_target(self.online, self.target, tau)
        copy_weights(self.target_work, self.target)

    def load_networks(self, online_state: dict[str, torch.Tensor], target_state: dict[str, torch.Tensor]) -> None:
        """Load fp32 weights into the online and target networks and refresh their working copies."""
        self.online.load_state_dict(online_state)
        self.target.load_state_dict(target_state)
        copy_weights(self.online_work, self.online)
        copy_weights(self.target_work, self.target)

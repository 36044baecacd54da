"""The learner's rules against hand-computed numbers and an fp32 reference: loss, epsilon, target sync,
the paper's RMSProp, and Q-values that bf16 never rounds into ties."""
from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest
import torch
from gymnasium.wrappers import FrameStackObservation

from models.definitions.DQN import DQN
from utils.checkpoints import load_checkpoint
from utils.constants import PRETRAINED_PATH
import utils.dqn_agent
import utils.precision
from utils.dqn_agent import (
    Batch,
    DeepMindRMSprop,
    Learner,
    dqn_loss,
    greedy_action,
    linear_epsilon,
    make_optimizer,
    update_target,
)
from utils.env_wrappers import make_atari_env
from utils.precision import pick_device_and_precision


class FixedQ(torch.nn.Module):
    """A 'network' that returns given Q-values whatever the states (for hand-computed losses)."""

    def __init__(self, q: list[list[float]]) -> None:
        super().__init__()
        self.q = torch.nn.Parameter(torch.tensor(q))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.q


def test_loss_on_a_two_sample_batch_matches_hand_computation() -> None:
    online = FixedQ([[1.0, 2.0], [0.5, -1.0]])
    target = FixedQ([[3.0, 4.0], [10.0, 20.0]])
    states = torch.zeros(2, 4, 84, 84, dtype=torch.uint8)
    batch = Batch(states, torch.tensor([1, 0]), torch.tensor([1.0, -1.0]), states, torch.tensor([False, True]))
    # Sample 0: target 1 + 0.9 * max(3, 4) = 4.6, Q(s, a=1) = 2 -> |error| 2.6 > 1: Huber 2.6 - 0.5 = 2.1.
    # Sample 1 is terminal: target is r alone = -1, Q(s, a=0) = 0.5 -> |error| 1.5: Huber 1.0.
    loss = dqn_loss(online, target, batch, gamma=0.9, autocast_dtype=None)
    assert loss.item() == pytest.approx((2.1 + 1.0) / 2)
    loss.backward()
    # d(mean Huber)/dQ for |error| > 1 is sign(error) / 2: only the taken actions get a gradient.
    torch.testing.assert_close(online.q.grad, torch.tensor([[0.0, -0.5], [0.5, 0.0]]))
    assert target.q.grad is None


def test_epsilon_during_warmup_mid_decay_and_after() -> None:
    schedule = dict(warmup_steps=1000, start=1.0, end=0.1, duration=500)
    assert linear_epsilon(1, **schedule) == 1.0
    assert linear_epsilon(1000, **schedule) == 1.0
    assert linear_epsilon(1250, **schedule) == pytest.approx(0.55)
    assert linear_epsilon(1500, **schedule) == pytest.approx(0.1)
    assert linear_epsilon(10_000, **schedule) == pytest.approx(0.1)


@pytest.mark.parametrize("tau, expected", [(1.0, 3.0), (0.5, 2.0)])
def test_target_update_copies_or_moves_halfway(tau: float, expected: float) -> None:
    online, target = DQN(3), DQN(3)
    with torch.no_grad():
        for p in online.parameters():
            p.fill_(3.0)
        for p in target.parameters():
            p.fill_(1.0)
    update_target(online, target, tau)
    for p in target.parameters():
        assert torch.all(p == expected)


def test_rmsprop_is_the_papers_update_with_eps_inside_the_root() -> None:
    """Three steps by hand: g_avg, g2_avg as decayed means, step = lr * g / sqrt(g2_avg - g_avg^2 + eps)."""
    w = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = DeepMindRMSprop([w], lr=2.5e-4, decay=0.95, eps=0.01)
    expected, g_avg, g2_avg = 1.0, 0.0, 0.0
    for grad in (2.0, -1.0, 0.5):
        w.grad = torch.tensor([grad])
        optimizer.step()
        g_avg = 0.95 * g_avg + 0.05 * grad
        g2_avg = 0.95 * g2_avg + 0.05 * grad**2
        expected -= 2.5e-4 * grad / math.sqrt(g2_avg - g_avg**2 + 0.01)
        assert w.item() == pytest.approx(expected, rel=1e-6)
    # First step, written out: g_avg 0.1, g2_avg 0.2 -> 1 - 2.5e-4 * 2 / sqrt(0.2 - 0.01 + 0.01) = 0.998882...
    torch_centered = torch.optim.RMSprop([torch.nn.Parameter(torch.tensor([1.0]))], lr=2.5e-4, alpha=0.95, eps=0.01, centered=True)
    p = torch_centered.param_groups[0]["params"][0]
    p.grad = torch.tensor([2.0])
    torch_centered.step()
    assert 1.0 - 2.5e-4 * 2 / math.sqrt(0.2) == pytest.approx(0.998882, abs=1e-6)
    assert p.item() != pytest.approx(0.998882, abs=1e-6)  # torch's eps sits outside the root: not the paper's


def test_rmsprop_on_the_mean_loss_takes_the_papers_steps_on_the_summed_one() -> None:
    """DeepMind's RMSProp sees the minibatch's summed gradient (eps 0.01); the project's loss is the mean, and
    make_optimizer's eps 0.01 / B**2 makes each step the same. With eps 0.01 on the mean, the steps are ~B times smaller."""
    batch_size, rng = 32, np.random.default_rng(0)
    ours = torch.nn.Parameter(torch.tensor([0.5, -0.2]))
    papers = torch.nn.Parameter(ours.detach().clone())
    unscaled = torch.nn.Parameter(ours.detach().clone())
    optimizer = make_optimizer("rmsprop", [ours], 2.5e-4, batch_size)
    paper_optimizer = DeepMindRMSprop([papers], lr=2.5e-4, decay=0.95, eps=0.01)
    unscaled_optimizer = DeepMindRMSprop([unscaled], lr=2.5e-4, decay=0.95, eps=0.01)
    for _ in range(5):
        per_sample = torch.tensor(rng.normal(0.0, 1e-3, size=(batch_size, 2)), dtype=torch.float32)
        ours.grad, unscaled.grad, papers.grad = per_sample.mean(0), per_sample.mean(0), per_sample.sum(0)
        for opt in (optimizer, paper_optimizer, unscaled_optimizer):
            opt.step()
    start = torch.tensor([0.5, -0.2])
    torch.testing.assert_close(ours.detach(), papers.detach(), rtol=0, atol=1e-7)
    assert ((papers.detach() - start).abs() > 20 * (unscaled.detach() - start).abs()).all()
    learner = Learner(4, torch.device("cpu"), None, "rmsprop", 2.5e-4, 0.99, 0.0, batch_size=batch_size)
    assert learner.optimizer.param_groups[0]["eps"] == pytest.approx(0.01 / batch_size**2)


@pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None, reason="torch.compile needs a C++ compiler on CPU")
def test_the_compiled_rmsprop_step_is_the_eager_one_on_the_nature_cnn() -> None:
    """The fused (torch.compile) step and the eager per-parameter step give the same weights and running averages
    over three steps of random gradients on every parameter of the Nature CNN."""
    torch.manual_seed(0)
    eager_net, compiled_net = DQN(4), DQN(4)
    compiled_net.load_state_dict(eager_net.state_dict())
    eager = DeepMindRMSprop(eager_net.parameters(), lr=2.5e-4, decay=0.95, eps=0.01)
    compiled = DeepMindRMSprop(compiled_net.parameters(), lr=2.5e-4, decay=0.95, eps=0.01, compiled=True)
    for _ in range(3):
        for a, b in zip(eager_net.parameters(), compiled_net.parameters()):
            a.grad = torch.randn_like(a) * 0.01
            b.grad = a.grad.clone()
        eager.step()
        compiled.step()
    assert compiled.update_fn is not utils.dqn_agent.rmsprop_update  # it did not fall back
    for a, b in zip(eager_net.parameters(), compiled_net.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
        for key in ("g_avg", "g2_avg"):
            torch.testing.assert_close(compiled.state[b][key], eager.state[a][key], rtol=1e-6, atol=1e-9)


def test_rmsprop_goes_on_eagerly_with_one_line_when_compiling_fails(capsys: pytest.CaptureFixture[str]) -> None:
    w = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = DeepMindRMSprop([w], lr=2.5e-4, decay=0.95, eps=0.01)

    def no_compiler(*args: object) -> None:
        raise RuntimeError("no C++ compiler")

    optimizer.update_fn = no_compiler
    w.grad = torch.tensor([2.0])
    optimizer.step()
    assert w.item() == pytest.approx(1.0 - 2.5e-4 * 2 / math.sqrt(0.2), rel=1e-6)  # the step was taken, eagerly
    assert optimizer.update_fn is utils.dqn_agent.rmsprop_update
    assert capsys.readouterr().out == "RMSProp: torch.compile failed (RuntimeError); using the eager update\n"


@pytest.fixture(scope="module")
def pong_model_and_states() -> tuple[DQN, torch.Tensor]:
    """The committed Pong model and 600 real states it visits (epsilon 0.05)."""
    checkpoint = load_checkpoint(PRETRAINED_PATH / "dqn_PongNoFrameskip-v4_cpu_fast.pth")
    dqn = DQN(checkpoint["num_actions"])
    dqn.load_state_dict(checkpoint["state_dict"])
    env = FrameStackObservation(make_atari_env("PongNoFrameskip-v4", training=False), stack_size=4, padding_type="zero")
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    states = []
    for _ in range(600):
        states.append(np.asarray(obs))
        action = int(rng.integers(6)) if rng.random() < 0.05 else greedy_action(dqn, obs, None)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return dqn, torch.from_numpy(np.stack(states))


def ties(q: torch.Tensor) -> torch.Tensor:
    return (q == q.max(dim=1, keepdim=True).values).sum(dim=1) > 1


def test_bf16_picks_the_fp32_greedy_actions_when_q_values_are_near_10(pong_model_and_states: tuple[DQN, torch.Tensor]) -> None:
    """Breakout-sized values: the Pong model's outputs offset by +10. A bf16 head would tie ~80% of states here."""
    dqn, states = pong_model_and_states
    with torch.no_grad():
        dqn.fc[2].bias += 10.0
        try:
            q32 = dqn(states)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                q16 = dqn(states)
        finally:
            dqn.fc[2].bias -= 10.0
    assert q16.dtype == torch.float32 and q32.abs().mean() > 8
    agreement = (q16.argmax(dim=1) == q32.argmax(dim=1)).float().mean().item()
    assert agreement >= 0.99, agreement
    assert not torch.any(ties(q16) & ~ties(q32))


def test_bf16_loss_targets_are_fp32(pong_model_and_states: tuple[DQN, torch.Tensor]) -> None:
    dqn, states = pong_model_and_states
    batch = Batch(states[:-1], torch.zeros(599, dtype=torch.long), torch.zeros(599), states[1:], torch.zeros(599, dtype=torch.bool))
    with torch.no_grad():
        loss32 = dqn_loss(dqn, dqn, batch, 0.99, None)
        loss16 = dqn_loss(dqn, dqn, batch, 0.99, torch.bfloat16)
    assert loss16.dtype == torch.float32
    assert loss16.item() == pytest.approx(loss32.item(), rel=0.05)


@pytest.mark.parametrize("cuda, native_bf16, precision, expected", [
    (True, True, "auto", ("cuda", None)),  # CUDA: fp32, the faster there for this small network
    (True, False, "bf16", ("cuda", torch.bfloat16)),
    (False, True, "auto", ("cpu", torch.bfloat16)),
    (False, False, "auto", ("cpu", None)),
    (False, True, "fp32", ("cpu", None)),
])
def test_auto_precision_is_bf16_only_on_native_bf16_cpus(monkeypatch: pytest.MonkeyPatch, cuda: bool, native_bf16: bool,
                                                         precision: str, expected: tuple) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(utils.precision, "cpu_has_native_bf16", lambda: native_bf16)
    device, dtype = pick_device_and_precision("auto", precision)
    assert (device.type, dtype) == expected


def random_batch(seed: int, size: int = 32) -> Batch:
    g = torch.Generator().manual_seed(seed)
    states = torch.randint(0, 256, (size, 4, 84, 84), dtype=torch.uint8, generator=g)
    next_states = torch.randint(0, 256, (size, 4, 84, 84), dtype=torch.uint8, generator=g)
    return Batch(states, torch.randint(0, 4, (size,), generator=g), torch.randint(-1, 2, (size,), generator=g).float(),
                 next_states, torch.rand(size, generator=g) < 0.1)


def twin_learners(lr: float) -> tuple[Learner, Learner]:
    """An fp32 learner and a bf16 one with the same initial weights."""
    torch.manual_seed(0)
    fp32 = Learner(4, torch.device("cpu"), None, "adam", lr, 0.99, 10.0)
    bf16 = Learner(4, torch.device("cpu"), torch.bfloat16, "adam", lr, 0.99, 10.0)
    bf16.load_networks(fp32.online.state_dict(), fp32.target.state_dict())
    return fp32, bf16


def test_bf16_updates_keep_fp32_masters_and_follow_the_fp32_updates() -> None:
    fp32, bf16 = twin_learners(lr=1e-4)
    start = {k: v.clone() for k, v in fp32.online.state_dict().items()}
    for i in range(10):
        batch = random_batch(i)
        fp32.update(batch)
        bf16.update(batch)
    for (name, w32), w16 in zip(fp32.online.state_dict().items(), bf16.online.state_dict().values()):
        assert w16.dtype == torch.float32, name  # the masters stay fp32
        moved32, moved16 = (w32 - start[name]).flatten(), (w16 - start[name]).flatten()
        cosine = torch.nn.functional.cosine_similarity(moved32, moved16, dim=0)
        assert cosine > 0.9, (name, cosine.item())  # the same direction of learning
        assert 0.8 < moved16.norm() / moved32.norm() < 1.25, name  # and the same size
    # The working copy is the master rounded to bf16 (trunk) or the master itself (fp32 Q head).
    for (name, master), work in zip(bf16.online.named_parameters(), bf16.online_work.parameters()):
        expected_dtype = torch.float32 if name.startswith("fc.2") else torch.bfloat16
        assert work.dtype == expected_dtype, name
        torch.testing.assert_close(work, master.detach().to(expected_dtype), rtol=0, atol=0)


def test_updates_smaller_than_bf16_resolution_accumulate_in_the_fp32_masters() -> None:
    """Adam's steps are at most ~lr per weight: at lr 1e-6 they are far below bf16's spacing near these weights
    (~1e-4 to 1e-3), so pure bf16 weights would round every one of them away; the fp32 masters must keep them."""
    _, bf16 = twin_learners(lr=1e-6)
    start = bf16.online.cnn[2].weight.detach().clone()
    for i in range(10):
        bf16.update(random_batch(i))
    now = bf16.online.cnn[2].weight.detach()
    assert ((now - start).abs() > 0).float().mean() > 0.9  # the masters moved ...
    assert (now.to(torch.bfloat16) == start.to(torch.bfloat16)).float().mean() > 0.9  # ... by less than bf16 can show


def lua_dqn_update(online: DQN, target: DQN, batch: Batch, state: dict[str, list[torch.Tensor]], lr: float = 2.5e-4) -> None:
    """DeepMind's NeuralQLearner.lua update, written out: delta = clip(r + 0.99 (1 - done) max Q_target(s') - Q(s, a), -1, 1),
    dw = SUM over the minibatch of delta * dQ(s, a)/dw, then g = .95 g + .05 dw, g2 = .95 g2 + .05 dw^2,
    w += lr * dw / sqrt(g2 - g^2 + 0.01)."""
    states, actions, rewards, next_states, dones = batch
    q = online(states).gather(1, actions.long().unsqueeze(1)).squeeze(1)
    with torch.no_grad():
        delta = (rewards + 0.99 * (1.0 - dones.float()) * target(next_states).max(1).values - q).clamp(-1.0, 1.0)
    online.zero_grad()
    (-(delta * q).sum()).backward()
    with torch.no_grad():
        for w, g, g2 in zip(online.parameters(), state["g"], state["g2"]):
            dw = -w.grad
            g.mul_(0.95).add_(0.05 * dw)
            g2.mul_(0.95).add_(0.05 * dw * dw)
            w.add_(lr * dw / torch.sqrt(g2 - g * g + 0.01))


def test_an_rmsprop_learner_takes_deepminds_lua_updates() -> None:
    """The whole fp32 update (mean Huber loss, backward, make_optimizer's RMSProp) moves every weight as the Lua
    code does on the summed, clipped TD error; a wrong eps, loss scale or sign breaks it by far more than rounding."""
    torch.manual_seed(0)
    learner = Learner(4, torch.device("cpu"), None, "rmsprop", 2.5e-4, 0.99, 0.0, batch_size=32)
    lua_online, lua_target = DQN(num_actions=4), DQN(num_actions=4)
    lua_online.load_state_dict(learner.online.state_dict())
    lua_target.load_state_dict(learner.target.state_dict())
    lua_state = {k: [torch.zeros_like(p) for p in lua_online.parameters()] for k in ("g", "g2")}
    start = {k: v.clone() for k, v in learner.online.state_dict().items()}
    for i in range(3):
        batch = random_batch(i)
        learner.update(batch)
        lua_dqn_update(lua_online, lua_target, batch, lua_state)
    for name, ours in learner.online.state_dict().items():
        theirs = lua_online.state_dict()[name]
        ours_step, lua_step = ours - start[name], theirs - start[name]
        assert lua_step.abs().max() > 1e-5, name  # the Lua update moved it
        # Equal up to float rounding (different conv kernels; a ReLU may flip): within 1% of the step's norm.
        assert (ours_step - lua_step).norm() < 1e-2 * lua_step.norm(), name


def test_a_target_sync_refreshes_the_target_working_copy() -> None:
    _, bf16 = twin_learners(lr=1e-3)
    for i in range(3):
        bf16.update(random_batch(i))
    assert not torch.equal(bf16.target_work.cnn[0].weight.float(), bf16.online_work.cnn[0].weight.float())
    bf16.sync_target()
    torch.testing.assert_close(bf16.target_work.cnn[0].weight, bf16.online.cnn[0].weight.detach().to(torch.bfloat16), rtol=0, atol=0)

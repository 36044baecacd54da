"""A2C's and PPO's shared parts against hand-computed numbers: GAE and n-step returns, the clipped surrogate,
the A2C loss, TF-style RMSProp, frame stacks; and both learning a tiny pixel task end to end."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import train_A2C_script
import train_PPO_script
import utils.env_wrappers
import utils.model_pick
from utils import training_state
from tests.tiny_env import make_side_task_envs
from utils.checkpoints import list_checkpoints, load_checkpoint
from models.definitions.ActorCritic import ActorCritic
from utils.on_policy import FrameStacker, TFLikeRMSprop, a2c_loss, advantages_and_returns, ppo_loss
from utils.precision import copy_weights, on_device, widen_gradients, working_copy

# A 3-step rollout of one env: the transition at t = 1 is terminal (the state at t = 2 starts a new life).
REWARDS = np.array([[1.0], [0.0], [2.0]], np.float32)
VALUES = np.array([[0.5], [0.4], [0.3]], np.float32)
STARTS = np.array([[False], [False], [True]])
NEXT_VALUES, NEXT_STARTS = np.array([1.0], np.float32), np.array([False])


def test_gae_on_a_three_step_rollout_with_a_terminal() -> None:
    advantages, returns = advantages_and_returns(REWARDS, VALUES, STARTS, NEXT_VALUES, NEXT_STARTS, gamma=0.9, gae_lambda=0.8)
    # t = 2: delta = 2 + 0.9 * 1.0 - 0.3 = 2.6 (bootstrapped from the next state's value)
    # t = 1: terminal, delta = 0 - 0.4 = -0.4, nothing flows back from t = 2
    # t = 0: delta = 1 + 0.9 * 0.4 - 0.5 = 0.86; A = 0.86 + 0.9 * 0.8 * (-0.4) = 0.572
    np.testing.assert_allclose(advantages[:, 0], [0.572, -0.4, 2.6], rtol=1e-6)
    np.testing.assert_allclose(returns[:, 0], [1.072, 0.0, 2.9], rtol=1e-6)


def test_lambda_one_gives_a2cs_n_step_returns() -> None:
    _, returns = advantages_and_returns(REWARDS, VALUES, STARTS, NEXT_VALUES, NEXT_STARTS, gamma=0.9, gae_lambda=1.0)
    # R_0 = r_0 + 0.9 r_1 (the game segment ends at t = 1); R_1 = r_1; R_2 = r_2 + 0.9 V(s_3)
    np.testing.assert_allclose(returns[:, 0], [1.0, 0.0, 2.9], rtol=1e-6)


def test_clipped_surrogate_on_a_two_sample_batch() -> None:
    new = torch.tensor([math.log(0.6), math.log(0.475)], requires_grad=True)
    old = torch.tensor([math.log(0.5), math.log(0.5)])
    advantages = torch.tensor([1.0, -2.0])
    new_values, old_values, returns = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.2]), torch.tensor([2.0, 0.1])
    loss, stats = ppo_loss(new, old, advantages, new_values, old_values, returns, torch.tensor([1.0, 0.5]),
                           clip_coef=0.1, vf_coef=0.5, ent_coef=0.01)
    # Ratios 1.2 and 0.95. Sample 0: min(1.2, 1.1) * 1 = 1.1 (clipped); sample 1: 0.95 * -2 = -1.9 (inside the clip range).
    # Policy loss = -(1.1 - 1.9) / 2 = 0.4.
    # Values: unclipped errors 1.0 and 0.01; clipped values 0.6 and 0.1 give 1.96 and 0.0; the max: 1.96 and 0.01,
    # value loss = 0.5 * 1.97 / 2 = 0.4925. Entropy 0.75. Loss = 0.4 + 0.5 * 0.4925 - 0.01 * 0.75 = 0.63875.
    assert stats["policy_loss"].item() == pytest.approx(0.4)
    assert stats["value_loss"].item() == pytest.approx(0.4925)
    assert loss.item() == pytest.approx(0.63875)
    assert stats["clip_fraction"].item() == pytest.approx(0.5)
    loss.backward()
    # The clipped sample gets no policy gradient; the other d(-A r / 2)/d log pi = -A r / 2 = 0.95.
    torch.testing.assert_close(new.grad, torch.tensor([0.0, 0.95]))


def test_a2c_loss_on_a_two_sample_batch() -> None:
    log_probs = torch.tensor([math.log(0.5), math.log(0.25)])
    loss, stats = a2c_loss(log_probs, torch.tensor([1.0, -1.0]), torch.tensor([0.5, 1.0]), torch.tensor([1.0, 0.0]),
                           torch.tensor([1.0, 1.0]), vf_coef=0.25, ent_coef=0.01)
    policy = -(1.0 * math.log(0.5) - 1.0 * math.log(0.25)) / 2  # -0.3466
    value = (0.5**2 + 1.0**2) / 2  # 0.625
    assert stats["policy_loss"].item() == pytest.approx(policy)
    assert stats["value_loss"].item() == pytest.approx(value)
    assert loss.item() == pytest.approx(policy + 0.25 * value - 0.01)


def test_frame_stacks_roll_and_start_new_games_from_zeros() -> None:
    stacker = FrameStacker(2)
    frames = lambda v: np.full((2, 84, 84), v, np.uint8)  # noqa: E731
    stacks = stacker.reset(frames(1))
    assert stacks[:, :, 0, 0].tolist() == [[0, 0, 0, 1], [0, 0, 0, 1]]
    stacker.push(frames(2), np.array([False, False]))
    stacks = stacker.push(frames(3), np.array([False, True]))
    assert stacks[:, :, 0, 0].tolist() == [[0, 1, 2, 3], [0, 0, 0, 3]]


def test_ppo_learns_the_side_task_checkpoints_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(utils.env_wrappers, "validate_env_id", lambda env_id: env_id)  # the checkpoint's game is SideTask
    common = ["--num_envs", "4", "--num_steps", "16", "--num_minibatches", "2", "--learning_rate", "1e-3", "--eval_freq", "0",
              "--log_freq", "640", "--checkpoint_freq", "1280", "--device", "cpu", "--output_dir", str(tmp_path), "--seed", "0"]

    def train(argv: list[str]) -> dict:
        config = train_PPO_script.parse_config(argv)
        config.env_id = "SideTask"
        return train_PPO_script.train_ppo(config, env_factory=make_side_task_envs)

    half = train([*common, "--run_name", "side", "--num_of_training_steps", "3200"])
    assert half["steps"] == 3200 and half["iterations"] == 50
    checkpoint = load_checkpoint(list_checkpoints(tmp_path / "models" / "checkpoints" / "side", "SideTask", "ppo")[-1])
    assert checkpoint["step"] == 3200 and checkpoint["iteration"] == 50 and checkpoint["algo"] == "ppo"
    assert all(w.dtype == torch.float32 for w in checkpoint["state_dict"].values())  # the fp32 masters, whatever the precision
    summary = train(["--resume", "side", "--output_dir", str(tmp_path), "--num_of_training_steps", "6400"])
    assert summary["steps"] == 6400 and summary["iterations"] == 100
    assert summary["mean_return"] > 7.0  # random play scores 0, the optimal policy 10


def test_ppo_goes_on_from_a_checkpoints_weights_only_file_on_another_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                            capsys: pytest.CaptureFixture) -> None:
    """What a session commits of a long run (python -m utils.training_state): weights and counters; a fresh optimizer."""
    monkeypatch.setattr(utils.env_wrappers, "validate_env_id", lambda env_id: env_id)  # the checkpoint's game is SideTask
    common = ["--num_envs", "4", "--num_steps", "16", "--num_minibatches", "2", "--learning_rate", "1e-3", "--eval_freq", "0",
              "--log_freq", "640", "--checkpoint_freq", "0", "--device", "cpu", "--seed", "0"]

    def train(argv: list[str]) -> dict:
        config = train_PPO_script.parse_config(argv)
        config.env_id = "SideTask"
        return train_PPO_script.train_ppo(config, env_factory=make_side_task_envs)

    half = train([*common, "--output_dir", str(tmp_path / "lost"), "--run_name", "side", "--num_of_training_steps", "3200"])
    committed = tmp_path / "committed.pth"
    training_state.main([half["last_checkpoint"], str(committed)])
    model = load_checkpoint(committed)
    assert model["algo"] == "ppo" and model["step"] == 3200 and "optimizer_state_dict" not in model
    summary = train(["--resume", str(committed), "--output_dir", str(tmp_path / "new_machine"), "--num_of_training_steps", "6400"])
    assert "resuming from a model file at step 3200" in capsys.readouterr().out
    assert summary["steps"] == 6400 and summary["iterations"] == 100
    assert summary["mean_return"] > 7.0  # random play scores 0, the optimal policy 10


def test_a2c_learns_the_side_task(tmp_path: Path) -> None:
    """TF-style RMSProp's running average starts at 1, so its first steps are ~lr * gradient: at Atari's lr 7e-4 this
    tiny task would take far longer than a test may; lr 2e-2 learns it in 6000 steps (300 updates)."""
    config = train_A2C_script.parse_config([
        "--num_envs", "4", "--num_steps", "5", "--num_of_training_steps", "6000", "--learning_rate", "2e-2", "--eval_freq", "0", "--log_freq", "1000",
        "--checkpoint_freq", "0", "--device", "cpu", "--output_dir", str(tmp_path), "--run_name", "side", "--seed", "0",
    ])
    config.env_id = "SideTask"
    summary = train_A2C_script.train_a2c(config, env_factory=make_side_task_envs)
    assert summary["steps"] == 6000 and summary["iterations"] == 300
    assert summary["mean_return"] > 7.0  # random play scores 0, the optimal policy 10
    assert load_checkpoint(summary["last_checkpoint"])["algo"] == "a2c"


def test_tf_like_rmsprop_takes_tensorflows_first_step() -> None:
    """square_avg starts at 1 and eps sits inside the root: the first step is lr * g / sqrt(0.99 + 0.01 g^2 + eps)."""
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = TFLikeRMSprop([weight], lr=0.1, alpha=0.99, eps=1e-5)
    weight.grad = torch.tensor([3.0, 0.5])
    optimizer.step()
    expected = torch.tensor([1.0 - 0.1 * 3.0 / math.sqrt(0.99 + 0.01 * 9 + 1e-5), -2.0 - 0.1 * 0.5 / math.sqrt(0.99 + 0.01 * 0.25 + 1e-5)])
    torch.testing.assert_close(weight.detach(), expected)


def test_bf16_actor_critic_updates_follow_the_fp32_ones_on_fp32_masters() -> None:
    """The bf16 working copy (bf16 body, fp32 heads) takes Adam steps in the direction and of the size of fp32's,
    its gradients land in fp32 masters, and the policy it samples from is fp32."""
    torch.manual_seed(0)
    master32 = on_device(ActorCritic(4), torch.device("cpu"))
    master16 = on_device(ActorCritic(4), torch.device("cpu"))
    master16.load_state_dict(master32.state_dict())
    work16 = working_copy(master16, torch.bfloat16)
    start = {k: v.clone() for k, v in master32.state_dict().items()}
    pairs = [(master32, master32, torch.optim.Adam(master32.parameters(), lr=2.5e-4, eps=1e-5)),
             (master16, work16, torch.optim.Adam(master16.parameters(), lr=2.5e-4, eps=1e-5))]
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        states = torch.randint(0, 256, (32, 4, 84, 84), dtype=torch.uint8, generator=g)
        actions, advantages = torch.randint(0, 4, (32,), generator=g), torch.randn(32, generator=g)
        for master, work, optimizer in pairs:
            policy, values = work.policy(states)
            assert policy.logits.dtype == torch.float32 and values.dtype == torch.float32
            loss = -(advantages * policy.log_prob(actions)).mean() + (values - advantages).pow(2).mean() - 0.01 * policy.entropy().mean()
            work.zero_grad(set_to_none=True)
            loss.backward()
            widen_gradients(master, work)
            optimizer.step()
            copy_weights(work, master)
    for (name, w32), w16 in zip(master32.state_dict().items(), master16.state_dict().values()):
        assert w16.dtype == torch.float32, name
        moved32, moved16 = (w32 - start[name]).flatten(), (w16 - start[name]).flatten()
        assert torch.nn.functional.cosine_similarity(moved32, moved16, dim=0) > 0.9, name
        assert 0.8 < moved16.norm() / moved32.norm() < 1.25, name
    for name, work in work16.named_parameters():
        assert work.dtype == (torch.float32 if name.startswith(("actor", "critic")) else torch.bfloat16), name
        torch.testing.assert_close(work, master16.get_parameter(name).detach().to(work.dtype), rtol=0, atol=0)


@pytest.mark.parametrize("script, flags, annealed", [
    (train_A2C_script, [], False),  # RL Zoo's A2C: constant
    (train_A2C_script, ["--anneal_lr", "1"], True),  # OpenAI Baselines' A2C
    (train_PPO_script, ["--num_minibatches", "2"], True),  # CleanRL's PPO
])
def test_the_learning_rate_falls_linearly_to_zero_with_anneal_lr(tmp_path: Path, script: Any, flags: list[str], annealed: bool) -> None:
    """Iteration i of N (from 0) runs at lr * (1 - i / N); TensorBoard logs it after each iteration (log_freq = one batch)."""
    config = script.parse_config([
        "--num_envs", "2", "--num_steps", "8", "--num_of_training_steps", "80", "--learning_rate", "1e-3", "--eval_freq", "0",
        "--log_freq", "16", "--checkpoint_freq", "0", "--device", "cpu", "--output_dir", str(tmp_path), "--run_name", "lr", *flags,
    ])
    config.env_id = "SideTask"
    train = script.train_a2c if script is train_A2C_script else script.train_ppo
    assert train(config, env_factory=make_side_task_envs)["iterations"] == 5
    events = EventAccumulator(str(tmp_path / "runs" / "lr"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("Learning_rate")]
    expected = [1e-3 * (1 - i / 5) if annealed else 1e-3 for i in range(5)]
    assert [step for step, _ in logged] == [16, 32, 48, 64, 80]
    np.testing.assert_allclose([value for _, value in logged], expected, rtol=1e-6)


@pytest.mark.parametrize("eval_greedy, actions", [("0", "sampled"), ("1", "greedy")])
def test_eval_greedy_reaches_every_evaluation_and_re_score(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, eval_greedy: str,
                                                           actions: str) -> None:
    """--eval_greedy 1: training's evaluations and re-scores play the most probable action (evaluate's greedy=True), and
    picks.jsonl says so; 0 (the default) samples. The evaluator is recorded and answers rising means, so each one re-scores."""
    calls: list[dict[str, Any]] = []

    def fake_evaluate(network: Any, env_id: str, episodes: int, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return argparse.Namespace(returns=[float(len(calls))] * episodes)

    monkeypatch.setattr(utils.model_pick, "evaluate", fake_evaluate)
    config = train_A2C_script.parse_config([
        "--num_envs", "2", "--num_steps", "8", "--num_of_training_steps", "64", "--eval_freq", "32", "--eval_episodes", "2",
        "--rescore_episodes", "3", "--log_freq", "0", "--checkpoint_freq", "0", "--device", "cpu", "--output_dir", str(tmp_path),
        "--run_name", "greedy", "--eval_greedy", eval_greedy,
    ])
    config.env_id = "SideTask"
    train_A2C_script.train_a2c(config, env_factory=make_side_task_envs)
    assert len(calls) == 4 and all(call["greedy"] is (eval_greedy == "1") and call["epsilon"] == 0.0 for call in calls)
    picks = [json.loads(line) for line in (tmp_path / "runs" / "greedy" / "picks.jsonl").read_text().splitlines()]
    assert [(p["step"], p["actions"], p["kept"]) for p in picks] == [(32, actions, True), (64, actions, True)]

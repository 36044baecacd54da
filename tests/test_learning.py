"""The real agent and training loop learn a task whose returns are known, within a minute on a CPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.wrappers import FrameStackObservation

from models.definitions.DQN import DQN
from tests.tiny_env import make_side_task, make_side_task_envs
from train_DQN_script import parse_config, train_dqn
from utils.checkpoints import load_checkpoint
from utils.dqn_agent import Batch, dqn_loss


def play(policy, episodes: int, seed: int) -> float:
    env = FrameStackObservation(make_side_task(), stack_size=4, padding_type="zero")
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(np.asarray(obs)))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


@pytest.fixture(scope="module")
def trained_side_task(tmp_path_factory: pytest.TempPathFactory) -> DQN:
    """The real train_dqn loop on the side task; returns the best model it saved."""
    config = parse_config([
        "--num_of_training_steps", "3000", "--num_warmup_steps", "500", "--replay_buffer_size", "5000",
        "--acting_learning_step_ratio", "2", "--target_dqn_update_interval", "200", "--gamma", "0.9",
        "--epsilon_duration", "1000", "--epsilon_end_value", "0.05", "--learning_rate", "5e-4",
        "--log_freq", "0", "--console_log_freq", "0", "--checkpoint_freq", "0", "--grads_log_freq", "0", "--eval_freq", "0",
        "--device", "cpu", "--output_dir", str(tmp_path_factory.mktemp("side")), "--run_name", "side", "--seed", "0",
    ])
    config.env_id = "SideTask"
    summary = train_dqn(config, env_factory=make_side_task_envs)
    checkpoint = load_checkpoint(summary["best_model_path"])
    dqn = DQN(checkpoint["num_actions"])
    dqn.load_state_dict(checkpoint["state_dict"])
    return dqn.eval()


def test_dqn_learns_side_task_and_beats_random_policy(trained_side_task: DQN) -> None:
    def greedy(stack: np.ndarray) -> int:
        with torch.no_grad():
            return int(trained_side_task(torch.from_numpy(stack).unsqueeze(0)).argmax())

    rng = np.random.default_rng(0)
    random_return = play(lambda _: int(rng.integers(2)), episodes=50, seed=1000)
    greedy_return = play(greedy, episodes=50, seed=1000)
    assert abs(random_return) < 2.5  # the task's random baseline is 0
    assert greedy_return >= 8.0, f"greedy {greedy_return} vs random {random_return}"


def test_bf16_and_fp32_agree_on_greedy_actions_and_loss(trained_side_task: DQN) -> None:
    """--precision bf16 (autocast) must not change what the trained agent does, and the loss only slightly."""
    env = FrameStackObservation(make_side_task(), stack_size=4, padding_type="zero")
    obs, _ = env.reset(seed=7)
    states = []
    for _ in range(256):
        states.append(np.asarray(obs))
        obs, *_ = env.step(int(env.action_space.sample()))
    states_t = torch.from_numpy(np.stack(states))
    with torch.no_grad():
        q32 = trained_side_task(states_t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            q16 = trained_side_task(states_t)
    assert torch.equal(q32.argmax(1), q16.argmax(1))
    batch = Batch(states_t[:-1], torch.randint(0, 2, (255,)), torch.ones(255), states_t[1:], torch.zeros(255, dtype=torch.bool))
    with torch.no_grad():
        loss32 = dqn_loss(trained_side_task, trained_side_task, batch, 0.9, None)
        loss16 = dqn_loss(trained_side_task, trained_side_task, batch, 0.9, torch.bfloat16)
    assert loss16.dtype == torch.float32  # targets and loss stay in fp32
    assert torch.isclose(loss16, loss32, rtol=0.05), (loss16, loss32)

"""The real agent and training loop learn a task whose returns are known, within a minute on a CPU."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from gymnasium.wrappers import FrameStackObservation

from models.definitions.DQN import DQN
from tests.tiny_env import make_side_task
from train_DQN_script import parse_config, train_dqn
from utils.checkpoints import load_checkpoint


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


def test_dqn_learns_side_task_and_beats_random_policy(tmp_path: Path) -> None:
    config = parse_config([
        "--num_of_training_steps", "3000", "--num_warmup_steps", "500", "--replay_buffer_size", "5000",
        "--acting_learning_step_ratio", "2", "--target_dqn_update_interval", "200", "--gamma", "0.9",
        "--epsilon_duration", "1000", "--epsilon_end_value", "0.05", "--learning_rate", "5e-4",
        "--log_freq", "0", "--console_log_freq", "0", "--checkpoint_freq", "0", "--grads_log_freq", "0", "--eval_freq", "0",
        "--device", "cpu", "--output_dir", str(tmp_path), "--run_name", "side", "--seed", "0",
    ])
    config.env_id = "SideTask"
    summary = train_dqn(config, env_factory=make_side_task)

    checkpoint = load_checkpoint(summary["best_model_path"])
    dqn = DQN(checkpoint["num_actions"])
    dqn.load_state_dict(checkpoint["state_dict"])
    dqn.eval()

    def greedy(stack: np.ndarray) -> int:
        with torch.no_grad():
            return int(dqn(torch.from_numpy(stack).unsqueeze(0)).argmax())

    rng = np.random.default_rng(0)
    random_return = play(lambda _: int(rng.integers(2)), episodes=50, seed=1000)
    greedy_return = play(greedy, episodes=50, seed=1000)
    assert abs(random_return) < 2.5  # the task's random baseline is 0
    assert greedy_return >= 8.0, f"greedy {greedy_return} vs random {random_return}"

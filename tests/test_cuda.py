"""The CUDA path against the CPU as reference: one update, bf16 greedy actions, a checkpointed and
resumed training whose files load on a CPU-only machine; PPO and A2C learn, resume and play from CUDA.
Skipped where no CUDA GPU is present (CI)."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.wrappers import FrameStackObservation

import evaluate_DQN_script
import train_A2C_script
import train_PPO_script
import utils.env_wrappers
from models.definitions.DQN import DQN
from tests.test_dqn_agent import pong_model_and_states  # noqa: F401 (a fixture: the committed model, real states)
from tests.test_reliability import SMALL
from tests.tiny_env import make_side_task_envs
from train_DQN_script import parse_config, train_dqn
from utils.checkpoints import list_checkpoints, load_checkpoint
from utils.dqn_agent import gradient_step, greedy_action, to_device
from utils.env_wrappers import make_atari_env

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
CUDA = torch.device("cuda")
SMALL_CUDA = [*SMALL, "--device", "cuda"]  # the last --device given wins


def real_batch(env_id: str = "BreakoutNoFrameskip-v4", size: int = 32) -> tuple[np.ndarray, ...]:
    """(states, actions, rewards, next_states, dones) of random play, in the replay buffer's dtypes."""
    env = FrameStackObservation(make_atari_env(env_id), stack_size=4, padding_type="zero")
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(size):
        action = int(rng.integers(env.action_space.n))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((np.asarray(obs), action, reward, np.asarray(next_obs), terminated))
        obs = env.reset()[0] if terminated or truncated else next_obs
    env.close()
    states, actions, rewards, next_states, dones = zip(*rows)
    return (np.stack(states), np.array(actions, dtype=np.int64), np.array(rewards, dtype=np.float32),
            np.stack(next_states), np.array(dones, dtype=bool))


def test_one_fp32_update_on_cuda_matches_the_cpu() -> None:
    torch.manual_seed(0)
    online, target = DQN(4), DQN(4)
    nets = {"cpu": (online, target), "cuda": (copy.deepcopy(online).to(CUDA), copy.deepcopy(target).to(CUDA))}
    batch = real_batch()
    results = {}
    for name, (o, t) in nets.items():
        optimizer = torch.optim.SGD(o.parameters(), lr=0.0)  # gradients compared, weights left as they are
        loss, norms = gradient_step(o, t, optimizer, to_device(batch, torch.device(name)), 0.99, 0.0, None,
                                    want_grad_norms=True)
        results[name] = (loss.item(), {k: v.item() for k, v in norms.items()}, [p.grad.cpu() for p in o.parameters()])
    assert results["cuda"][0] == pytest.approx(results["cpu"][0], rel=1e-3)
    for k, norm in results["cpu"][1].items():
        assert results["cuda"][1][k] == pytest.approx(norm, rel=1e-2), k
    for g_cpu, g_cuda in zip(results["cpu"][2], results["cuda"][2]):
        cosine = torch.nn.functional.cosine_similarity(g_cpu.flatten(), g_cuda.flatten(), dim=0)
        assert cosine > 0.999


def test_bf16_greedy_actions_on_cuda_are_the_cpu_fp32_ones(pong_model_and_states: tuple[DQN, torch.Tensor]) -> None:
    cpu_dqn, states = pong_model_and_states
    cuda_dqn = copy.deepcopy(cpu_dqn).to(CUDA)
    agree = sum(greedy_action(cpu_dqn, s.numpy(), None) == greedy_action(cuda_dqn, s.numpy(), torch.bfloat16) for s in states)
    assert agree >= 0.99 * len(states), agree


def test_cuda_training_resumes_and_its_files_load_and_play_on_a_cpu(tmp_path: Path) -> None:
    common = [*SMALL_CUDA, "--output_dir", str(tmp_path), "--save_replay_buffer", "--seed", "3", "--checkpoint_freq", "400"]
    full = train_dqn(parse_config([*common, "--run_name", "full", "--num_of_training_steps", "800"]))
    train_dqn(parse_config([*common, "--run_name", "halves", "--num_of_training_steps", "400"]))
    resumed = train_dqn(parse_config(["--resume", "halves", "--output_dir", str(tmp_path), "--num_of_training_steps", "800"]))
    assert resumed["steps"] == full["steps"] == 800 and resumed["updates"] == full["updates"] == (800 - 200) // 4
    folder = tmp_path / "models" / "checkpoints"
    a = load_checkpoint(list_checkpoints(folder / "full", "BreakoutNoFrameskip-v4")[-1])
    b = load_checkpoint(list_checkpoints(folder / "halves", "BreakoutNoFrameskip-v4")[-1])
    at_400 = load_checkpoint(list_checkpoints(folder / "full", "BreakoutNoFrameskip-v4")[0])
    assert at_400["step"] == 400 and all(t.device.type == "cpu" for t in a["state_dict"].values())
    # Epsilon is ~1 over these steps, so both runs see the same games: the resumed run's weights differ from the
    # uninterrupted run's by GPU rounding only (cuDNN is not bitwise deterministic), far less than the 100 updates
    # after the resume point moved them.
    for name, w in a["state_dict"].items():
        moved = (w - at_400["state_dict"][name]).norm()
        assert (b["state_dict"][name] - w).norm() <= 0.05 * moved, name
    summary = evaluate_DQN_script.main(["--model", full["best_model_path"], "--num_episodes", "1", "--device", "cpu",
                                        "--max_episode_frames", "2000", "--output", str(tmp_path / "eval.json")])
    assert summary["num_episodes"] == 1


@pytest.mark.parametrize("algo, precision", [("ppo", "auto"), ("a2c", "bf16")])
def test_ppo_and_a2c_learn_and_resume_on_cuda_and_play_on_a_cpu(algo: str, precision: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The side task of tests/test_on_policy.py (random play 0, optimal 10) in the CPU tests' settings, on the GPU,
    halved by a checkpoint; then a short real game from CUDA, played back by the evaluator on the CPU."""
    monkeypatch.setattr(utils.env_wrappers, "validate_env_id", lambda env_id: env_id)  # the checkpoint's game is SideTask
    script, train = {"ppo": (train_PPO_script, train_PPO_script.train_ppo), "a2c": (train_A2C_script, train_A2C_script.train_a2c)}[algo]
    common = ["--num_envs", "4", "--eval_freq", "0", "--device", "cuda", "--precision", precision, "--output_dir", str(tmp_path),
              "--seed", "0", "--log_freq", "640"]
    common += (["--num_steps", "16", "--num_minibatches", "2", "--learning_rate", "1e-3"] if algo == "ppo"
               else ["--num_steps", "5", "--learning_rate", "2e-2"])
    total = {"ppo": 6400, "a2c": 6000}[algo]

    def side_task(argv: list[str]) -> dict:
        config = script.parse_config(argv)
        config.env_id = "SideTask"
        return train(config, env_factory=make_side_task_envs)

    side_task([*common, "--run_name", "side", "--num_of_training_steps", str(total // 2), "--checkpoint_freq", str(total // 2)])
    summary = side_task(["--resume", "side", "--output_dir", str(tmp_path), "--num_of_training_steps", str(total)])
    assert summary["steps"] == total and summary["mean_return"] > 7.0
    checkpoint = load_checkpoint(summary["last_checkpoint"])
    assert all(w.device.type == "cpu" and w.dtype == torch.float32 for w in checkpoint["state_dict"].values())

    game = script.parse_config([*common, "--env_id", "BreakoutNoFrameskip-v4", "--run_name", "game", "--num_of_training_steps", "640",
                                "--checkpoint_freq", "0"])
    played = train(game)
    assert played["steps"] == 640
    result = evaluate_DQN_script.main(["--model", played["last_checkpoint"], "--num_episodes", "1", "--device", "cpu",
                                       "--max_episode_frames", "2000", "--output", str(tmp_path / "eval.json")])
    assert result["num_episodes"] == 1

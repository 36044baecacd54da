"""train_DQN_script.py end to end on real Breakout: checkpoints, best model, TensorBoard scalars."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from models.definitions.DQN import DQN
from utils.checkpoints import list_checkpoints, load_checkpoint

ENV_ID = "BreakoutNoFrameskip-v4"


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("e2e")
    root = Path(__file__).resolve().parent.parent
    cmd = [
        sys.executable, str(root / "train_DQN_script.py"), "--env_id", ENV_ID,
        "--num_of_training_steps", "2500", "--replay_buffer_size", "2000", "--num_warmup_steps", "1000",
        "--log_freq", "500", "--console_log_freq", "1000", "--checkpoint_freq", "500", "--keep_checkpoints", "2",
        "--grads_log_freq", "20", "--target_dqn_update_interval", "500", "--device", "cpu", "--eval_freq", "0",
        "--output_dir", str(out), "--run_name", "e2e",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def test_checkpoints_written_pruned_and_loadable(short_run: Path) -> None:
    checkpoints = list_checkpoints(short_run / "models" / "checkpoints" / "e2e", ENV_ID)
    assert [p.name for p in checkpoints] == [f"dqn_{ENV_ID}_ckpt_steps_{n}.pth" for n in (2000, 2500)]
    checkpoint = load_checkpoint(checkpoints[-1])
    assert checkpoint["step"] == 2500 and checkpoint["env_id"] == ENV_ID
    model = DQN(checkpoint["num_actions"])
    model.load_state_dict(checkpoint["state_dict"])  # the weights load back into the Nature CNN
    assert checkpoint["num_updates"] == (2500 - 1000) // 4
    assert not list((short_run / "models" / "checkpoints" / "e2e").glob("*.tmp"))  # no temp files left behind


def test_best_model_saved_during_training(short_run: Path) -> None:
    """Without evaluations the best model is the one at the highest training mean after warmup (read from TensorBoard)."""
    binaries = list((short_run / "models" / "binaries").glob("*.pth"))
    assert [p.name for p in binaries] == [f"dqn_{ENV_ID}_000000.pth"]
    best = load_checkpoint(binaries[0])
    events = EventAccumulator(str(short_run / "runs" / "e2e"))
    events.Reload()
    after_warmup = [e for e in events.Scalars("Episode/return_mean100") if e.step > 1000]
    highest = max(after_warmup, key=lambda e: (e.value, -e.step))  # the first time the maximum was reached
    assert best["mean_return"] == pytest.approx(highest.value)
    assert best["step"] == highest.step


def test_tensorboard_has_the_named_scalars(short_run: Path) -> None:
    events = EventAccumulator(str(short_run / "runs" / "e2e"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {
        "Rewards per episode", "Steps per episode", "Episode/return", "Episode/return_mean100",
        "Huber loss", "Epsilon", "FPS", "grad_norms/total", "grad_norms/cnn.0.weight", "grad_norms/fc.2.bias",
    }
    assert expected <= tags
    assert [e.step for e in events.Scalars("FPS")] == [500, 1000, 1500, 2000, 2500]
    assert len(events.Scalars("grad_norms/total")) == (2500 - 1000) // 4 // 20
    assert all(e.value > 0 for e in events.Scalars("FPS"))

"""Sweeps on embedded Ray (real ALE runs of a few hundred steps) and multi-seed statistics against hand-computed cases."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from torch.utils.tensorboard import SummaryWriter

from plot_results import main as plot_main
from utils.plotting import aggregate_human_normalized, seed_band

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(ROOT / "sweep_DQN_script.py")
TINY = ["--num_warmup_steps", "100", "--replay_buffer_size", "1000", "--batch_size", "8", "--console_log_freq", "0",
        "--log_freq", "100", "--eval_episodes", "1", "--grads_log_freq", "0"]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def sweep(tmp_path: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, "--output_dir", str(tmp_path), *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=ROOT)


def run_dir(tmp_path: Path, name: str) -> Path:
    return tmp_path / "sweeps" / "sweep" / name


def test_two_runs_then_a_relaunch_skips_them(tmp_path: Path) -> None:
    args = ["--env_ids", "PongNoFrameskip-v4", "--seeds", "0", "1", "--num_of_training_steps", "300", "--eval_freq", "300", *TINY]
    first = sweep(tmp_path, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    results = [json.loads((run_dir(tmp_path, f"sweep_Pong_seed{s}") / "result.json").read_text()) for s in (0, 1)]
    assert [r["seed"] for r in results] == [0, 1] and all(r["steps"] == 300 for r in results)
    assert all(len(r["attempts"]) == 1 and r["attempts"][0]["start_step"] == 0 for r in results)
    assert results[0]["attempts"][0]["pid"] != os.getpid()  # trained in a Ray worker, not in the driver
    summary = json.loads((tmp_path / "sweeps" / "sweep" / "summary.json").read_text())
    (game,) = summary["games"]
    scores = [r["final_eval_return"] for r in results]
    assert game["seeds"] == 2 and game["score"]["mean"] == pytest.approx(np.mean(scores))
    assert game["score"]["ci95"][0] <= np.mean(scores) <= game["score"]["ci95"][1]
    assert "| PongNoFrameskip-v4 | 2 |" in first.stdout

    again = sweep(tmp_path, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 finished (skipped), 0 to resume, 0 to start" in again.stdout
    assert json.loads((run_dir(tmp_path, "sweep_Pong_seed0") / "result.json").read_text()) == results[0]


def test_a_killed_worker_is_retried_and_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    args = ["--env_ids", "PongNoFrameskip-v4", "--seeds", "3", "--num_of_training_steps", "2400", "--eval_freq", "2400",
            "--checkpoint_freq", "300", "--save_replay_buffer", *TINY]
    process = subprocess.Popen([sys.executable, SCRIPT, "--output_dir", str(tmp_path), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    folder = run_dir(tmp_path, "sweep_Pong_seed3")
    checkpoints = folder / "models" / "checkpoints" / "sweep_Pong_seed3"
    deadline = time.time() + 240
    while not list(checkpoints.glob("*_ckpt_steps_*.pth")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.1)
    worker = json.loads((folder / "attempts.jsonl").read_text().splitlines()[0])["pid"]
    os.kill(worker, signal.SIGKILL)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    result = json.loads((folder / "result.json").read_text())
    first, second = result["attempts"]
    assert first["pid"] == worker and second["pid"] != worker
    assert second["start_step"] > 0 and second["start_step"] % 300 == 0  # from a checkpoint, not from step 0
    assert result["steps"] == 2400


@pytest.mark.parametrize("flags, message", [
    (["--env_ids", "FooNoFrameskip-v4", "--seeds", "0"], "unknown --env_id 'FooNoFrameskip-v4'"),
    (["--env_ids", "PongNoFrameskip-v4", "--seeds", "0", "--learning_rate", "-1"], "--learning_rate"),
    (["--env_ids", "PongNoFrameskip-v4", "--seeds", "0", "--seed", "4"], "--seed is set by the sweep"),
    (["--env_ids", "PongNoFrameskip-v4", "--seeds", "0", "--address", "ray://127.0.0.1:9"], "no Ray cluster reachable"),
    (["--algo", "ppo", "--env_ids", "PongNoFrameskip-v4", "--seeds", "0", "--num_minibatches", "3"], "--num_minibatches 3 must divide"),
    (["--algo", "a2c", "--env_ids", "PongNoFrameskip-v4", "--seeds", "0", "--replay_buffer_size", "10"], "unrecognized arguments"),
])
def test_bad_input_fails_in_one_line_before_any_run(tmp_path: Path, flags: list[str], message: str) -> None:
    result = sweep(tmp_path, *flags, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert not (tmp_path / "sweeps").exists()


def test_seed_band_matches_the_bootstrap_by_hand() -> None:
    # Two runs at 0 and 2: resampling 2 runs gives means 0, 1, 2 with probabilities 1/4, 1/2, 1/4,
    # so the 95% percentile interval is [0, 2] around the mean 1, at every step.
    steps = np.array([0, 100, 200])
    _, mean, low, high = seed_band([(steps, np.zeros(3)), (steps, np.full(3, 2.0))], points=3)
    np.testing.assert_allclose(mean, 1.0)
    np.testing.assert_allclose(low, 0.0)
    np.testing.assert_allclose(high, 2.0)
    # Curves on different step grids are interpolated onto the shorter run's range.
    grid, mean, _, _ = seed_band([(np.array([0, 100]), np.array([0.0, 10.0])), (np.array([0, 50]), np.array([0.0, 0.0]))], points=3)
    np.testing.assert_allclose(grid, [0, 25, 50])
    np.testing.assert_allclose(mean, [0, 1.25, 2.5])


def pong_score(normalised: float) -> float:
    return 30.0 * normalised - 20.7  # Pong: random -20.7, human 9.3


def breakout_score(normalised: float) -> float:
    return 30.1 * normalised + 1.7  # Breakout: random 1.7, human 31.8


def test_iqm_and_mean_of_human_normalised_scores_by_hand() -> None:
    # Normalised: Pong 0, 0.1, 0.2, 1.0 and Breakout 0.3, 0.4, 0.5, 0.6. Sorted: 0 .1 .2 .3 .4 .5 .6 1;
    # the IQM drops the lowest and highest quarter (2 each): mean(.2, .3, .4, .5) = 0.35; the mean is 3.1 / 8.
    finals = {
        "PongNoFrameskip-v4": [pong_score(h) for h in (0.0, 0.1, 0.2, 1.0)],
        "BreakoutNoFrameskip-v4": [breakout_score(h) for h in (0.3, 0.4, 0.5, 0.6)],
        "NotAGameNoFrameskip-v4": [5.0],  # no reference scores: left out
    }
    result = aggregate_human_normalized(finals)
    assert result["games"] == ["PongNoFrameskip-v4", "BreakoutNoFrameskip-v4"] and result["runs_per_game"] == 4
    assert result["iqm"]["value"] == pytest.approx(0.35)
    assert result["mean"]["value"] == pytest.approx(0.3875)
    for key in ("iqm", "mean"):
        low, high = result[key]["ci95"]
        assert 0.0 <= low < result[key]["value"] < high <= 1.0


def write_run(folder: Path, env_id: str, final: float, seed: int) -> None:
    writer = SummaryWriter(str(folder))
    for step in range(0, 10_001, 500):
        writer.add_scalar("Episode/return_mean100", final * step / 10_000 + seed, step)
    for step in (5_000, 10_000):
        writer.add_scalar("Eval/mean_return", final * step / 10_000, step)
    writer.close()
    (folder / "run_info.json").write_text(json.dumps({"env_id": env_id, "seed": seed}))


def test_plotter_groups_synthetic_runs_by_game(tmp_path: Path) -> None:
    finals = {"PongNoFrameskip-v4": [pong_score(h) for h in (0.0, 0.1, 0.2, 1.0)],
              "BreakoutNoFrameskip-v4": [breakout_score(h) for h in (0.3, 0.4, 0.5, 0.6)]}
    for env_id, scores in finals.items():
        for seed, score in enumerate(scores):
            write_run(tmp_path / "sweep" / f"{env_id}_{seed}", env_id, score, seed)
    paths = plot_main([str(tmp_path / "sweep"), "--out_dir", str(tmp_path / "plots"), "--name", "synthetic"])
    assert sorted(p.name for p in paths) == sorted(f"synthetic_{s}" for s in ("curves.png", "returns.png", "seeds.png", "aggregate.png", "aggregate.json"))
    aggregate = json.loads((tmp_path / "plots" / "synthetic_aggregate.json").read_text())
    assert aggregate["iqm"]["value"] == pytest.approx(0.35)  # the runs' last evaluations are the final scores
    assert aggregate["final_scores"]["PongNoFrameskip-v4"] == pytest.approx(finals["PongNoFrameskip-v4"])
    image = imageio.imread(tmp_path / "plots" / "synthetic_seeds.png")
    assert image.shape[1] > 1000 and np.asarray(image)[..., :3].std() > 10  # two game panels, not blank

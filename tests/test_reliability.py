"""Never lose a run: exact resume, kill -9 and resume, graceful stop, atomic writes, one-line errors."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluate_DQN_script
import train_DQN_script
import train_PPO_script
from models.definitions.DQN import DQN
from train_DQN_script import parse_config, train_dqn
from utils import training_state
from utils.replay_buffer import StreamedReplayBuffer
from utils.checkpoints import (
    CheckpointError,
    atomic_torch_save,
    atomic_write,
    list_checkpoints,
    load_checkpoint,
)

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(ROOT / "train_DQN_script.py")
SMALL = [
    "--replay_buffer_size", "2000", "--num_warmup_steps", "200", "--log_freq", "100", "--console_log_freq", "0",
    "--grads_log_freq", "0", "--eval_freq", "0", "--device", "cpu", "--target_dqn_update_interval", "100",
]


def final_weights(out: Path, run: str, env_id: str = "BreakoutNoFrameskip-v4") -> dict[str, torch.Tensor]:
    return load_checkpoint(list_checkpoints(out / "models" / "checkpoints" / run, env_id)[-1])["state_dict"]


def test_half_run_plus_resume_equals_full_run_with_saved_buffer(tmp_path: Path) -> None:
    common = [*SMALL, "--output_dir", str(tmp_path), "--save_replay_buffer", "--seed", "3", "--checkpoint_freq", "400"]
    train_dqn(parse_config([*common, "--run_name", "full", "--num_of_training_steps", "800"]))
    train_dqn(parse_config([*common, "--run_name", "halves", "--num_of_training_steps", "400"]))
    summary = train_dqn(parse_config(["--resume", "halves", "--output_dir", str(tmp_path), "--num_of_training_steps", "800"]))
    assert summary["steps"] == 800
    full, halves = final_weights(tmp_path, "full"), final_weights(tmp_path, "halves")
    for name in full:
        torch.testing.assert_close(halves[name], full[name], rtol=0, atol=0)
    resumed = load_checkpoint(list_checkpoints(tmp_path / "models" / "checkpoints" / "halves", "BreakoutNoFrameskip-v4")[-1])
    assert resumed["num_updates"] == (800 - 200) // 4
    assert len(list((tmp_path / "runs").iterdir())) == 2  # the resumed run continued its own TensorBoard folder


def test_kill_9_then_resume_finishes_from_the_checkpoint(tmp_path: Path) -> None:
    args = [*SMALL, "--output_dir", str(tmp_path), "--run_name", "killed", "--checkpoint_freq", "300", "--num_of_training_steps", "5000"]
    process = subprocess.Popen([sys.executable, SCRIPT, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = tmp_path / "models" / "checkpoints" / "killed"
    deadline = time.time() + 300
    while not list_checkpoints(folder, "BreakoutNoFrameskip-v4") and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = list_checkpoints(folder, "BreakoutNoFrameskip-v4")[-1]
    killed_at = load_checkpoint(first)["step"]
    assert killed_at % 300 == 0 and killed_at < 5000

    resumed = subprocess.run(
        [sys.executable, SCRIPT, "--resume", "killed", "--output_dir", str(tmp_path), "--num_of_training_steps", str(killed_at + 600)],
        capture_output=True, text=True, timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    assert "refilling" in resumed.stdout  # no saved buffer: a fresh warmup before learning again
    last = load_checkpoint(list_checkpoints(folder, "BreakoutNoFrameskip-v4")[-1])
    assert last["step"] == killed_at + 600
    assert last["num_updates"] == load_checkpoint(first)["num_updates"] + (600 - 200) // 4
    model = DQN(last["num_actions"])
    model.load_state_dict(last["state_dict"])


def test_sigterm_finishes_the_step_checkpoints_and_exits_0(tmp_path: Path) -> None:
    args = [*SMALL, "--output_dir", str(tmp_path), "--run_name", "stopped", "--checkpoint_freq", "250", "--num_of_training_steps", "100000"]
    process = subprocess.Popen([sys.executable, SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "models" / "checkpoints" / "stopped"
    deadline = time.time() + 300
    while not list_checkpoints(folder, "BreakoutNoFrameskip-v4") and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-1500:]
    assert "resume with: python train_DQN_script.py --resume stopped" in stdout
    last = list_checkpoints(folder, "BreakoutNoFrameskip-v4")[-1]
    assert str(last) in stdout and load_checkpoint(last)["step"] < 100000


def test_failed_checkpoint_write_leaves_previous_checkpoint_intact(tmp_path: Path) -> None:
    path = tmp_path / "dqn_X_ckpt_steps_1.pth"
    atomic_torch_save({"state_dict": {"w": torch.ones(3)}, "env_id": "X"}, path)

    def write_half_then_die(f: io.BufferedWriter) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full (injected)")

    with pytest.raises(OSError):
        atomic_write(path, write_half_then_die)
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_checkpoint_with_a_pickled_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "env_id": "PongNoFrameskip-v4", "payload": Path("/etc/passwd")}, path)
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        load_checkpoint(path)


def test_non_finite_loss_stops_with_the_step_and_keeps_good_checkpoints(tmp_path: Path) -> None:
    config = parse_config([
        *SMALL, "--output_dir", str(tmp_path), "--run_name", "nan", "--learning_rate", "1e30",
        "--checkpoint_freq", "200", "--num_of_training_steps", "2000",
    ])
    with pytest.raises(train_DQN_script.NonFiniteError, match=r"non-finite loss at agent step \d+") as error:
        train_dqn(config)
    folder = tmp_path / "models" / "checkpoints" / "nan"
    good = list_checkpoints(folder, "BreakoutNoFrameskip-v4")
    assert good and all(torch.isfinite(t).all() for t in load_checkpoint(good[-1])["state_dict"].values())
    assert len(list(folder.glob("nonfinite_step_*.pth"))) == 1 and "nonfinite_step_" in str(error.value)


# ---- bad input: one line on stderr, exit code 2, nothing created ---------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real Pong training checkpoint and model, and broken files to feed to --resume and the evaluator."""
    out = tmp_path_factory.mktemp("ckpts")
    train_dqn(parse_config([*SMALL, "--env_id", "PongNoFrameskip-v4", "--output_dir", str(out), "--run_name", "pong",
                            "--num_of_training_steps", "300", "--checkpoint_freq", "0", "--seed", "1"]))
    checkpoint = list_checkpoints(out / "models" / "checkpoints" / "pong", "PongNoFrameskip-v4")[-1]
    truncated = out / "truncated.pth"
    truncated.write_bytes(checkpoint.read_bytes()[:5000])
    text = out / "notes.pth"
    text.write_text("not a checkpoint")
    model = out / "model.pth"
    torch.save({"state_dict": load_checkpoint(checkpoint)["state_dict"], "env_id": "PongNoFrameskip-v4", "num_actions": 6}, model)
    a_file = out / "a_file"
    a_file.write_text("x")
    return {"checkpoint": checkpoint, "truncated": truncated, "text": text, "model": model, "a_file": a_file}


BAD_TRAIN_INPUTS = {
    "unknown env id": (["--env_id", "NotAGame-v0"], "unknown --env_id"),
    "not a NoFrameskip id": (["--env_id", "ALE/Pong-v5"], "not an Atari NoFrameskip-v4 id"),
    "zero buffer": (["--replay_buffer_size", "0"], "--replay_buffer_size"),
    "negative steps": (["--num_of_training_steps", "-5"], "--num_of_training_steps"),
    "negative frequency": (["--checkpoint_freq", "-1"], "--checkpoint_freq"),
    "zero target interval": (["--target_dqn_update_interval", "0"], "--target_dqn_update_interval"),
    "zero batch": (["--batch_size", "0"], "--batch_size"),
    "zero learning rate": (["--learning_rate", "0"], "--learning_rate"),
    "fractional steps": (["--num_of_training_steps", "2.5"], "--num_of_training_steps"),
    "batch above warmup": (["--batch_size", "64", "--num_warmup_steps", "32"], "--num_warmup_steps"),
    "batch above buffer": (["--batch_size", "5000", "--replay_buffer_size", "1000"], "--batch_size"),
    "epsilon above 1": (["--epsilon_end_value", "1.5"], "--epsilon_end_value"),
    "gamma below 0": (["--gamma", "-0.1"], "--gamma"),
    "unknown flag": (["--learnin_rate", "1e-4"], "unrecognized arguments"),
    "not enough RAM": (["--replay_buffer_size", "1e10"], "--dont_crash_if_no_mem"),
    "missing resume": (["--resume", "no_such_run"], "neither a checkpoint file nor a run"),
    "truncated resume": (["--resume", "{truncated}"], "cannot load checkpoint"),
    "non-checkpoint resume": (["--resume", "{text}"], "cannot load checkpoint"),
    "model file without step or flags": (["--resume", "{model}"], "not a training checkpoint"),
    "foreign resume": (["--resume", "{checkpoint}", "--env_id", "BreakoutNoFrameskip-v4"], "is a checkpoint of PongNoFrameskip-v4"),
    "seed changed on resume": (["--resume", "{checkpoint}", "--seed", "2", "--num_of_training_steps", "400"], "--seed cannot change on resume"),
    "optimizer changed on resume": (["--resume", "{checkpoint}", "--optimizer", "rmsprop", "--num_of_training_steps", "400"], "--optimizer cannot change"),
    "buffer size changed on resume": (["--resume", "{checkpoint}", "--replay_buffer_size", "3000", "--num_of_training_steps", "400"],
                                      "--replay_buffer_size cannot change"),
    "output dir not writable": (["--output_dir", "{a_file}/out"], "cannot be created"),
}
if not torch.cuda.is_available():
    BAD_TRAIN_INPUTS["cuda without GPU"] = (["--device", "cuda"], "no CUDA GPU")


def run_expecting_exit_2(main, argv: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize("case", list(BAD_TRAIN_INPUTS))
def test_bad_training_input_one_line_exit_2_nothing_created(case: str, files: dict, tmp_path: Path, capsys) -> None:
    argv, expected = BAD_TRAIN_INPUTS[case]
    argv = [a.format(**files) for a in argv]
    if "--output_dir" not in argv:
        argv += ["--output_dir", str(tmp_path / "out")]
    before = {p: p.stat().st_mtime_ns for p in files["checkpoint"].parent.parent.rglob("*")}
    err = run_expecting_exit_2(train_DQN_script.main, argv, capsys)
    assert expected in err, err
    assert not (tmp_path / "out").exists()  # nothing created
    assert {p: p.stat().st_mtime_ns for p in files["checkpoint"].parent.parent.rglob("*")} == before  # nothing damaged


BAD_EVAL_INPUTS = {
    "missing model": (["--model", "no_such_model.pth"], "not found"),
    "truncated model": (["--model", "{truncated}"], "cannot load checkpoint"),
    "non-checkpoint": (["--model", "{text}"], "cannot load checkpoint"),
    "foreign model": (["--model", "{model}", "--env_id", "BreakoutNoFrameskip-v4"], "6 actions"),
    "bad env id": (["--model", "{model}", "--env_id", "Pong-v4"], "NoFrameskip"),
    "zero episodes": (["--model", "{model}", "--num_episodes", "0"], "--num_episodes"),
}


@pytest.mark.parametrize("case", list(BAD_EVAL_INPUTS))
def test_bad_evaluator_input_one_line_exit_2(case: str, files: dict, capsys) -> None:
    argv, expected = BAD_EVAL_INPUTS[case]
    err = run_expecting_exit_2(evaluate_DQN_script.main, [a.format(**files) for a in argv], capsys)
    assert expected in err, err


def test_real_command_line_prints_no_traceback() -> None:
    result = subprocess.run([sys.executable, SCRIPT, "--env_id", "Pong"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "unknown --env_id 'Pong'" in result.stderr


# ---- checkpoints from earlier versions, and going on from a model file -------------------------------------------
LEGACY_COMMIT = "38732ee"  # the last commit before the training state was gathered into utils/training_state.py


def test_a_checkpoint_written_before_the_refactor_still_resumes(tmp_path: Path) -> None:
    """The code of LEGACY_COMMIT writes a checkpoint; today's code resumes it with its weights, counters and scores."""
    old_tree = tmp_path / "old"
    old_tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", LEGACY_COMMIT], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {LEGACY_COMMIT} is not in this clone's history")
    subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive.stdout, check=True)
    out = tmp_path / "out"
    old = subprocess.run(
        [sys.executable, "train_DQN_script.py", *SMALL, "--output_dir", str(out), "--run_name", "legacy",
         "--num_of_training_steps", "300", "--checkpoint_freq", "300", "--seed", "2", "--save_replay_buffer"],
        cwd=old_tree, capture_output=True, text=True, timeout=600,
    )
    assert old.returncode == 0, old.stderr[-1500:]
    written = load_checkpoint(list_checkpoints(out / "models" / "checkpoints" / "legacy", "BreakoutNoFrameskip-v4")[-1])

    summary = train_dqn(parse_config(["--resume", "legacy", "--output_dir", str(out), "--num_of_training_steps", "400"]))
    assert summary["steps"] == 400
    assert summary["updates"] == written["num_updates"] + (400 - 300) // 4
    resumed = load_checkpoint(list_checkpoints(out / "models" / "checkpoints" / "legacy", "BreakoutNoFrameskip-v4")[-1])
    assert resumed["step"] == 400 and resumed["num_episodes"] >= written["num_episodes"]
    assert resumed["episode_returns"][: len(written["episode_returns"])] == written["episode_returns"]
    assert any(not torch.equal(resumed["state_dict"][k], written["state_dict"][k]) for k in written["state_dict"])


def test_resume_from_a_weights_only_model_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A new machine has only the committed model: training goes on from its weights, step and flags."""
    summary = train_dqn(parse_config([*SMALL, "--output_dir", str(tmp_path), "--run_name", "first", "--num_of_training_steps", "300",
                                      "--checkpoint_freq", "0", "--seed", "4"]))
    model_path = Path(summary["best_model_path"])
    model = load_checkpoint(model_path)
    assert "optimizer_state_dict" not in model and "random_states" not in model  # weights and identity only
    other_machine = tmp_path / "elsewhere"
    resumed = train_dqn(parse_config(["--resume", str(model_path), "--output_dir", str(other_machine),
                                      "--num_of_training_steps", str(model["step"] + 250)]))
    assert "refilling" in capsys.readouterr().out
    assert resumed["steps"] == model["step"] + 250
    start = model["step"]
    updates_after_refill = len([t for t in range(start + 201, start + 251) if t % 4 == 0])  # a fresh 200-step warmup first
    assert resumed["updates"] == model["num_updates"] + updates_after_refill
    last = load_checkpoint(resumed["last_checkpoint"])
    assert last["args"]["run_name"] == "first" and last["args"]["seed"] == 4  # the model's flags


def test_a_checkpoints_weights_only_file_is_its_best_model_file_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`python -m utils.training_state CKPT OUT`: what a session commits of a long run, so that a lost machine loses one segment."""
    summary = train_dqn(parse_config([*SMALL, "--output_dir", str(tmp_path), "--run_name", "long", "--num_of_training_steps", "300",
                                      "--checkpoint_freq", "300", "--seed", "4"]))
    checkpoint = load_checkpoint(summary["last_checkpoint"])
    out = tmp_path / "committed" / "latest.pth"
    training_state.main([summary["last_checkpoint"], str(out)])
    model = load_checkpoint(out)
    best_model = load_checkpoint(summary["best_model_path"])  # what the run itself writes as a model file
    assert set(model) == {k for k in best_model if k in checkpoint}  # all of it but the pick's scores
    assert all(torch.equal(model["state_dict"][k], checkpoint["state_dict"][k]) for k in checkpoint["state_dict"])
    assert (model["step"], model["num_updates"]) == (300, checkpoint["num_updates"])
    assert out.stat().st_size < 0.5 * Path(summary["last_checkpoint"]).stat().st_size  # no target, optimizer or games
    resumed = train_dqn(parse_config(["--resume", str(out), "--output_dir", str(tmp_path / "new_machine"), "--num_of_training_steps", "350"]))
    assert resumed["steps"] == 350 and "refilling" in capsys.readouterr().out
    with pytest.raises(SystemExit) as error:
        training_state.main([str(out), str(tmp_path / "again.pth")])  # a model file has nothing to strip
    assert error.value.code == 2 and "not a training checkpoint" in capsys.readouterr().err


def test_a_learning_rate_given_on_resume_is_the_one_the_optimizer_uses(tmp_path: Path) -> None:
    common = [*SMALL, "--output_dir", str(tmp_path), "--checkpoint_freq", "300", "--learning_rate", "1e-4"]
    train_dqn(parse_config([*common, "--run_name", "kept", "--num_of_training_steps", "300"]))
    train_dqn(parse_config([*common, "--run_name", "changed", "--num_of_training_steps", "300"]))
    kept = train_dqn(parse_config(["--resume", "kept", "--output_dir", str(tmp_path), "--num_of_training_steps", "400"]))
    changed = train_dqn(parse_config(["--resume", "changed", "--output_dir", str(tmp_path), "--num_of_training_steps", "400",
                                      "--learning_rate", "3e-5"]))
    learning_rates = {run: {group["lr"] for group in load_checkpoint(summary["last_checkpoint"])["optimizer_state_dict"]["param_groups"]}
                      for run, summary in (("kept", kept), ("changed", changed))}
    assert learning_rates == {"kept": {1e-4}, "changed": {3e-5}}
    assert load_checkpoint(changed["last_checkpoint"])["args"]["learning_rate"] == 3e-5


def test_preset_sets_visible_defaults_and_given_flags_win() -> None:
    config = parse_config(["--preset", "pong", "--learning_rate", "3e-4", "--output_dir", "/tmp"])
    assert config.env_id == "PongNoFrameskip-v4" and config.acting_learning_step_ratio == 2
    assert config.replay_buffer_size == 100_000 and config.learning_rate == 3e-4
    assert parse_config(["--output_dir", "/tmp"]).acting_learning_step_ratio == 4  # the paper's defaults stay defaults
    breakout = parse_config(["--preset", "breakout", "--output_dir", "/tmp"])
    assert breakout.env_id == "BreakoutNoFrameskip-v4" and breakout.replay_compression == "lz4"
    assert breakout.target_dqn_update_interval == 1_000 and breakout.eval_freq == 250_000


def test_two_envs_half_run_plus_resume_equals_full_run(tmp_path: Path) -> None:
    """N = 2 gymnasium stacks: both games, both replay streams and the draws over them resume bit-exactly."""
    common = [*SMALL, "--output_dir", str(tmp_path), "--save_replay_buffer", "--seed", "4", "--checkpoint_freq", "400",
              "--num_envs", "2", "--vector_env", "gymnasium"]
    full = train_dqn(parse_config([*common, "--run_name", "full", "--num_of_training_steps", "800"]))
    train_dqn(parse_config([*common, "--run_name", "halves", "--num_of_training_steps", "400"]))
    resumed = train_dqn(parse_config(["--resume", "halves", "--output_dir", str(tmp_path), "--num_of_training_steps", "800"]))
    assert resumed["steps"] == full["steps"] == 800 and resumed["updates"] == full["updates"] == (800 - 200) // 4
    full_w, halves_w = final_weights(tmp_path, "full"), final_weights(tmp_path, "halves")
    for name in full_w:
        torch.testing.assert_close(halves_w[name], full_w[name], rtol=0, atol=0)


def test_vector_env_run_resumes_with_new_games_and_its_memory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """ale-py's vector env cannot be saved: the resume restarts the games, ends each stream's old game as truncated
    (no stack joins two games) and keeps the memory, optimizer and counters."""
    common = [*SMALL, "--output_dir", str(tmp_path), "--save_replay_buffer", "--seed", "5", "--checkpoint_freq", "400", "--num_envs", "4"]
    train_dqn(parse_config([*common, "--run_name", "vec", "--num_of_training_steps", "400"]))
    checkpoint = load_checkpoint(list_checkpoints(tmp_path / "models" / "checkpoints" / "vec", "BreakoutNoFrameskip-v4")[-1])
    assert checkpoint["env_state"] is None and tuple(checkpoint["obs"].shape) == (4, 84, 84)
    state_before = StreamedReplayBuffer.load(tmp_path / "models" / "checkpoints" / "vec" / "replay_buffer_steps_400.npz")
    assert [s.get_current_size() for s in state_before.streams] == [100] * 4
    summary = train_dqn(parse_config(["--resume", "vec", "--output_dir", str(tmp_path), "--num_of_training_steps", "800",
                                      "--checkpoint_freq", "0"]))
    assert "cannot restore" in capsys.readouterr().out
    assert summary["steps"] == 800 and summary["updates"] == (800 - 200) // 4
    buffer = StreamedReplayBuffer.load(tmp_path / "models" / "checkpoints" / "vec" / "replay_buffer_steps_800.npz")
    for stream, frame in zip(buffer.streams, checkpoint["obs"].numpy()):
        # slots 0..99 before the kill, 100 = the checkpoint's frame as a truncation, then the new game from 101
        assert stream.get_current_size() == 100 + 1 + 100
        assert stream.ends[100] and not stream.has_action[100] and not stream.dones[100]
        np.testing.assert_array_equal(stream.frames[100], frame)


# Each algorithm's smallest run with evaluations every 200 (DQN) or 64 (PPO: 2 envs x 16 steps) agent steps.
RESCORED_RUNS = {
    "dqn": (lambda argv: train_dqn(parse_config(argv)),
            [*SMALL, "--num_of_training_steps", "800", "--eval_freq", "200", "--checkpoint_freq", "0"], 200),
    "ppo": (lambda argv: train_PPO_script.train_ppo(train_PPO_script.parse_config(argv)),
            ["--num_envs", "2", "--num_steps", "16", "--num_minibatches", "2", "--num_of_training_steps", "256", "--eval_freq", "64",
             "--log_freq", "0", "--checkpoint_freq", "128", "--device", "cpu"], 64),
}


@pytest.mark.parametrize("algo", list(RESCORED_RUNS))
def test_rescore_keeps_the_model_with_the_best_re_scored_mean(tmp_path: Path, algo: str) -> None:
    """--rescore_episodes: every evaluation that beats the best 10-game figure is played again on other seeds;
    the best model is the best re-scored one, and picks.jsonl lists each pick with both figures."""
    train, argv, eval_freq = RESCORED_RUNS[algo]
    summary = train([*argv, "--env_id", "PongNoFrameskip-v4", "--output_dir", str(tmp_path), "--run_name", "rescored",
                     "--eval_episodes", "1", "--rescore_episodes", "2", "--seed", "2"])
    picks = [json.loads(line) for line in (tmp_path / "runs" / "rescored" / "picks.jsonl").read_text().splitlines()]
    assert picks and picks[0]["step"] == eval_freq and picks[0]["kept"]
    assert [p["eval_mean_return"] for p in picks] == sorted({p["eval_mean_return"] for p in picks})  # each beat the last
    best = max(picks, key=lambda p: p["rescore_mean_return"])
    assert [p["kept"] for p in picks] == [p["rescore_mean_return"] == max(q["rescore_mean_return"] for q in picks[: i + 1])
                                          and p["rescore_mean_return"] > max([q["rescore_mean_return"] for q in picks[:i]], default=-99)
                                          for i, p in enumerate(picks)]
    model = load_checkpoint(summary["best_model_path"])
    assert model["step"] == best["step"] and model["rescore_mean_return"] == best["rescore_mean_return"]
    assert summary["best_rescore_return"] == best["rescore_mean_return"]
    assert load_checkpoint(summary["last_checkpoint"])["best_rescore_return"] == best["rescore_mean_return"]  # a resume goes on from it

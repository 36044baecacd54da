"""evaluate_DQN_script.py, evaluation during training, and the learning-curve plotter."""
from __future__ import annotations

import json
from pathlib import Path

import imageio.v2 as imageio
from gymnasium.wrappers import FrameStackObservation
import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

import evaluate_DQN_script
from models.definitions.ActorCritic import ActorCritic
from models.definitions.DQN import DQN
from train_DQN_script import parse_config, train_dqn
from utils.checkpoints import atomic_torch_save, load_checkpoint
from utils.constants import ROOT_PATH
from utils.env_wrappers import make_atari_env
from utils.evaluation import evaluate, human_normalized_score
from utils.plotting import plot_runs, read_scalars, returns_panel

ENV_ID = "BreakoutNoFrameskip-v4"


def noop_dqn() -> DQN:
    """A DQN whose greedy action is always NOOP (0): only epsilon draws press FIRE or move."""
    dqn = DQN(4)
    with torch.no_grad():
        dqn.fc[2].weight.zero_()
        dqn.fc[2].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    return dqn


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A freshly trained tiny Breakout model, trained with evaluation on (it picks the best model)."""
    out = tmp_path_factory.mktemp("evalrun")
    config = parse_config([
        "--env_id", ENV_ID, "--num_of_training_steps", "600", "--num_warmup_steps", "200",
        "--replay_buffer_size", "1000", "--eval_freq", "300", "--eval_episodes", "1",
        "--log_freq", "100", "--console_log_freq", "0", "--checkpoint_freq", "0", "--grads_log_freq", "0",
        "--device", "cpu", "--output_dir", str(out), "--run_name", "evalrun", "--seed", "5",
    ])
    return out, train_dqn(config)


def test_training_with_eval_freq_logs_eval_and_picks_best_by_it(trained_run: tuple[Path, dict]) -> None:
    out, summary = trained_run
    events = EventAccumulator(str(out / "runs" / "evalrun"))
    events.Reload()
    evals = events.Scalars("Eval/mean_return")
    assert [e.step for e in evals] == [300, 600]
    assert "Eval/std_return" in events.Tags()["scalars"]
    best = load_checkpoint(summary["best_model_path"])
    assert best["eval_mean_return"] == pytest.approx(max(e.value for e in evals))
    assert best["step"] == max(evals, key=lambda e: (e.value, -e.step)).step


def test_a_run_shorter_than_eval_freq_still_evaluates_and_leaves_a_best_model(tmp_path: Path) -> None:
    config = parse_config([
        "--env_id", ENV_ID, "--num_of_training_steps", "300", "--num_warmup_steps", "200",
        "--replay_buffer_size", "1000", "--eval_freq", "250000", "--eval_episodes", "1",
        "--log_freq", "0", "--console_log_freq", "0", "--checkpoint_freq", "0", "--grads_log_freq", "0",
        "--device", "cpu", "--output_dir", str(tmp_path), "--run_name", "short", "--seed", "5",
    ])
    summary = train_dqn(config)
    events = EventAccumulator(str(tmp_path / "runs" / "short"))
    events.Reload()
    assert [e.step for e in events.Scalars("Eval/mean_return")] == [300]
    best = load_checkpoint(summary["best_model_path"])
    assert best["step"] == 300 and "eval_mean_return" in best


def test_protocol_full_games_noops_and_epsilon() -> None:
    result = evaluate(noop_dqn(), ENV_ID, num_episodes=3, seed=0)
    assert all(1 <= n <= 30 for n in result.noops)
    assert all(result.game_over)  # games end at game over: a lost life does not end them
    assert all(length > 200 for length in result.lengths)  # 5 lives, each needing a random FIRE to launch
    assert 0.03 < result.random_actions / sum(result.lengths) < 0.07  # epsilon 0.05
    for losses, score in zip(result.life_losses, result.returns):  # Breakout's 5 lives, each lost at the score reached so far
        assert len(losses) == 5 and losses == sorted(losses) and losses[-1] == score


def test_a_game_without_lives_records_no_life_loss() -> None:
    result = evaluate(DQN(6), "PongNoFrameskip-v4", num_episodes=1, seed=0, max_episode_frames=400)
    assert result.life_losses == [[]]


def test_frame_cap_ends_games() -> None:
    result = evaluate(noop_dqn(), ENV_ID, num_episodes=2, seed=0, max_episode_frames=400)
    assert result.lengths == [100, 100] and result.game_over == [False, False]


def naive_evaluation(model: torch.nn.Module, env_id: str, num_episodes: int, seed: int, epsilon: float, max_episode_frames: int,
                     greedy: bool = False) -> dict:
    """The protocol written plainly, one game after another on one env, one generator for every random choice."""
    env = FrameStackObservation(make_atari_env(env_id, training=False, noop_max=30, max_episode_frames=max_episode_frames), 4, padding_type="zero")
    rng = np.random.default_rng(seed)
    out = {"returns": [], "lengths": [], "noops": [], "random_actions": 0}
    for episode in range(num_episodes):
        obs, info = env.reset(seed=seed + episode)
        out["noops"].append(int(info["episode_frame_number"]))
        score, length, done = 0.0, 0, False
        while not done:
            with torch.no_grad():
                output = model(torch.from_numpy(np.asarray(obs))[None])
            if rng.random() < epsilon:
                action = int(rng.integers(env.action_space.n))
                out["random_actions"] += 1
            elif isinstance(model, ActorCritic) and greedy:
                action = int(output[0][0].argmax())
            elif isinstance(model, ActorCritic):
                probs = torch.softmax(output[0][0].double(), dim=0).numpy()
                action = int(rng.choice(len(probs), p=probs / probs.sum()))
            else:
                action = int(output[0].argmax())
            obs, reward, terminated, truncated, _ = env.step(action)
            score, length, done = score + float(reward), length + 1, terminated or truncated
        out["returns"].append(score)
        out["lengths"].append(length)
    env.close()
    return out


@pytest.mark.parametrize("kind, epsilon, greedy", [("dqn", 0.05, False), ("actor-critic", 0.0, False), ("actor-critic", 0.05, False),
                                                   ("actor-critic", 0.05, True)])
def test_one_game_at_a_time_is_the_plain_protocol(kind: str, epsilon: float, greedy: bool) -> None:
    torch.manual_seed(3)
    model = DQN(6) if kind == "dqn" else ActorCritic(6)
    expected = naive_evaluation(model, "PongNoFrameskip-v4", 2, seed=11, epsilon=epsilon, max_episode_frames=1200, greedy=greedy)
    result = evaluate(model, "PongNoFrameskip-v4", 2, seed=11, epsilon=epsilon, max_episode_frames=1200, greedy=greedy)
    assert (result.returns, result.lengths, result.noops, result.random_actions) == (
        expected["returns"], expected["lengths"], expected["noops"], expected["random_actions"])


def test_games_side_by_side_are_the_same_games() -> None:
    """A deterministic policy (epsilon 0, the committed Breakout DQN's greedy actions) plays game i the same way whatever plays
    beside it."""
    dqn, env_id = evaluate_DQN_script.load_model(ROOT_PATH / "models" / "pretrained" / "dqn_BreakoutNoFrameskip-v4_breakout_r1.pth", None, torch.device("cpu"))
    one = evaluate(dqn, env_id, 4, seed=21, epsilon=0.0, max_episode_frames=2400, record_first=True)
    ended: list[tuple[int, float]] = []
    side_by_side = evaluate(dqn, env_id, 4, seed=21, epsilon=0.0, max_episode_frames=2400, record_first=True, games_at_once=3,
                            on_game_end=lambda index, score: ended.append((index, score)))
    assert sorted(ended) == list(enumerate(one.returns))  # each game reported once, with its score
    assert len(set(one.noops)) > 1 and len(set(one.returns)) > 1  # the games differ, so a mix-up would show
    assert (side_by_side.returns, side_by_side.lengths, side_by_side.noops, side_by_side.game_over, side_by_side.life_losses) == (
        one.returns, one.lengths, one.noops, one.game_over, one.life_losses)
    assert len(side_by_side.frames) == one.lengths[0] + 1
    np.testing.assert_array_equal(np.stack(side_by_side.frames), np.stack(one.frames))


def test_evaluator_script_json_gif_and_mp4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A model found by name in <output_dir>/models/binaries/, results written under <output_dir>/data/, a progress bar over the games."""
    model_path = tmp_path / "models" / "binaries" / "tiny.pth"
    atomic_torch_save({"state_dict": noop_dqn().state_dict(), "env_id": ENV_ID, "num_actions": 4}, model_path)
    summary = evaluate_DQN_script.main([
        "--model", "tiny.pth", "--output_dir", str(tmp_path), "--num_episodes", "2", "--max_episode_frames", "800", "--record",
    ])

    written = json.loads((tmp_path / "data" / "eval" / "tiny.json").read_text())
    bar = capsys.readouterr().err.split("\r")[-1]
    assert "2/2" in bar and f"mean={written['mean']:.2f}" in bar
    for key in ("mean", "std", "median", "min", "max", "human_normalized_score", "returns", "env_id", "epsilon"):
        assert key in written
    assert written["epsilon"] == 0.05 and written["num_episodes"] == 2 and written["env_id"] == ENV_ID
    assert written["human_normalized_score"] == pytest.approx(human_normalized_score(ENV_ID, written["mean"]))
    assert human_normalized_score("PongNoFrameskip-v4", 9.3) == pytest.approx(100.0)

    gif_path, mp4_path = (Path(p) for p in summary["recording"])
    assert gif_path.parent == tmp_path / "data"
    steps = written["lengths_agent_steps"][0]
    mp4 = imageio.mimread(mp4_path, memtest=False)
    assert len(mp4) == steps + 1  # the reset frame, then one frame per agent step
    assert mp4[0].shape[:2] == (210, 160)
    # The GIF merges runs of identical frames into one longer frame: compare against the recording
    # (replayed deterministically from the same seed) with such runs merged, in order, and the durations.
    result = evaluate(noop_dqn(), ENV_ID, num_episodes=1, seed=0, max_episode_frames=800, record_first=True)
    assert len(result.frames) == steps + 1
    merged, run_lengths = [result.frames[0]], [1]
    for frame in result.frames[1:]:
        if np.array_equal(frame, merged[-1]):
            run_lengths[-1] += 1
        else:
            merged.append(frame)
            run_lengths.append(1)
    with Image.open(gif_path) as gif:
        gif_frames, durations = [], []
        for frame in ImageSequence.Iterator(gif):
            gif_frames.append(np.asarray(frame.convert("RGB")))
            durations.append(frame.info["duration"])
    assert len(gif_frames) == len(merged) > 5
    for shown, expected in zip(gif_frames, merged):
        np.testing.assert_array_equal(shown, expected)
    assert sum(durations) == pytest.approx((steps + 1) * 1000 / 15, rel=0.02)  # real speed: 15 agent steps/s
    assert durations == pytest.approx([n * 1000 / 15 for n in run_lengths], abs=10)


def test_plotter_on_a_run_written_by_the_project_logger(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "synthetic"
    writer = SummaryWriter(str(run))
    rng = np.random.default_rng(0)
    for step in range(0, 20000, 100):
        writer.add_scalar("Episode/return", -21 + step / 1000 + rng.normal(), step)
        writer.add_scalar("Episode/return_mean100", -21 + step / 1000, step)
        writer.add_scalar("Huber loss", 0.05 + 0.01 * rng.random(), step)
        writer.add_scalar("FPS", 150 + rng.normal(), step)
        writer.add_scalar("Epsilon", max(1 - step / 10000, 0.01), step)
    for step in (5000, 10000, 15000):
        writer.add_scalar("Eval/mean_return", -21 + step / 1000, step)
        writer.add_scalar("Eval/std_return", 1.5, step)
    writer.close()
    paths = plot_runs([run, run], tmp_path / "plots", "PongNoFrameskip-v4", name="synthetic")
    for path in paths:
        image = imageio.imread(path)
        assert image.shape[0] > 400 and image.shape[1] > 600
        assert np.asarray(image)[..., :3].std() > 10  # not a blank canvas


def test_the_plotter_draws_an_actor_critic_runs_own_losses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An A2C/PPO run logs no Huber loss and no epsilon: its curves figure shows its value loss and its entropy."""
    import matplotlib.pyplot as plt

    run = tmp_path / "runs" / "a2c"
    writer = SummaryWriter(str(run))
    for step in range(0, 20000, 1000):
        writer.add_scalar("Loss/value_loss", 0.1 / (1 + step), step)
        writer.add_scalar("Loss/entropy", 1.79 - step / 20000, step)
        writer.add_scalar("FPS", 1500.0, step)
    writer.close()
    figures, close = [], plt.close
    monkeypatch.setattr(plt, "close", figures.append)
    plot_runs([run], tmp_path / "plots", "PongNoFrameskip-v4", name="a2c")
    panels = {ax.get_title(): ax for ax in figures[0].axes if ax.get_title()}
    assert {"value loss", "policy entropy (nats)"} <= set(panels)
    np.testing.assert_allclose(panels["policy entropy (nats)"].lines[0].get_ydata(), 1.79 - np.arange(20) / 20, rtol=1e-6)
    assert len(panels["value loss"].lines) == 1
    for figure in figures:
        close(figure)


def test_the_returns_panel_stars_each_rescored_pick_where_it_was_logged(tmp_path: Path) -> None:
    """A run with --rescore_episodes logs Eval/rescore_mean_return at the evaluations it re-scored: one star each."""
    import matplotlib.pyplot as plt

    run = tmp_path / "runs" / "picked"
    writer = SummaryWriter(str(run))
    for step, mean in ((250_000, 10.0), (500_000, 40.0), (750_000, 30.0)):
        writer.add_scalar("Eval/mean_return", mean, step)
    for step, mean in ((250_000, 8.5), (500_000, 35.5)):
        writer.add_scalar("Eval/rescore_mean_return", mean, step)
    writer.close()
    figure, ax = plt.subplots()
    returns_panel(ax, {"picked": read_scalars(run)}, "BreakoutNoFrameskip-v4")
    stars = [c for c in ax.collections if c.get_label().endswith("re-scored over more games")]
    assert len(stars) == 1
    np.testing.assert_allclose(stars[0].get_offsets(), [[250_000, 8.5], [500_000, 35.5]])
    plt.close(figure)


def test_the_evaluator_plays_an_actor_critic_with_its_own_sampling(tmp_path: Path) -> None:
    """A PPO/A2C model file (algo key) loads into the actor-critic and plays its sampled actions with epsilon 0;
    a policy that always samples NOOP never leaves Breakout's serve, so every game runs to the frame cap with 0 points."""
    model = ActorCritic(4)
    with torch.no_grad():  # logits that put all the probability on NOOP (action 0)
        model.actor.weight.zero_()
        model.actor.bias.copy_(torch.tensor([50.0, -50.0, -50.0, -50.0]))
    path = tmp_path / "ppo_model.pth"
    atomic_torch_save({"state_dict": model.state_dict(), "env_id": ENV_ID, "num_actions": 4, "algo": "ppo"}, path)
    summary = evaluate_DQN_script.main(["--model", str(path), "--num_episodes", "2", "--max_episode_frames", "400",
                                        "--output", str(tmp_path / "ppo.json")])
    assert summary["epsilon"] == 0.0 and summary["returns"] == [0.0, 0.0]
    assert summary["lengths_agent_steps"] == [100, 100]  # 400 frames each: no random action ended a game early


def test_the_evaluator_plays_an_actor_critic_greedily_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--greedy: the most probable action (NOOP here, at only 40%: a sampled policy would serve), labelled in a JSON of its own."""
    model = ActorCritic(4)
    with torch.no_grad():
        model.actor.weight.zero_()
        model.actor.bias.copy_(torch.tensor([0.7, 0.0, 0.0, 0.0]))
    path = tmp_path / "a2c_model.pth"
    atomic_torch_save({"state_dict": model.state_dict(), "env_id": ENV_ID, "num_actions": 4, "algo": "a2c"}, path)
    calls = []
    monkeypatch.setattr(evaluate_DQN_script, "evaluate", lambda *a, **k: calls.append(a) or evaluate(*a, **k))
    summary = evaluate_DQN_script.main(["--model", str(path), "--num_episodes", "2", "--max_episode_frames", "400", "--greedy",
                                        "--output_dir", str(tmp_path)])
    assert calls[0][-1] is True  # the flag reached evaluate()
    assert summary["actions"] == "greedy" and summary["returns"] == [0.0, 0.0] and summary["lengths_agent_steps"] == [100, 100]
    assert json.loads((tmp_path / "data" / "eval" / "a2c_model_greedy.json").read_text())["actions"] == "greedy"

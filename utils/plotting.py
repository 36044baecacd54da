"""Learning-curve plots from TensorBoard run folders, read with TensorBoard's own event reader.

Every panel is against agent steps, with emulator frames (4 per agent step) on a second axis.
`plot_runs`: several runs overlay on one figure, one colour each. `plot_groups`: runs grouped by game
(from the run_info.json training writes), the mean curve over seeds with a 95% bootstrap band, and
across games the IQM and mean of human-normalised final scores with stratified bootstrap CIs
(Agarwal et al., 2021), computed by rliable. A run's final score is its last evaluation.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from utils.constants import RUN_INFO_NAME
from utils.env_wrappers import FRAME_SKIP
from utils.evaluation import NATURE_SCORES, game_name, human_normalized_score

Series = tuple[np.ndarray, np.ndarray]  # (agent steps, values)


def read_scalars(run_dir: Path) -> dict[str, Series]:
    """All scalars of one run folder: tag -> (steps, values)."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0 = keep every point
    events.Reload()
    return {
        tag: (np.array([e.step for e in events.Scalars(tag)]), np.array([e.value for e in events.Scalars(tag)]))
        for tag in events.Tags()["scalars"]
    }


def _frames_axis(ax: plt.Axes) -> None:
    secondary = ax.secondary_xaxis("top", functions=(lambda s: s * FRAME_SKIP, lambda f: f / FRAME_SKIP))
    secondary.set_xlabel("emulator frames")


def _baselines(ax: plt.Axes, env_id: str | None) -> None:
    ref = NATURE_SCORES.get(game_name(env_id)) if env_id else None
    if ref is None:
        return
    for key, style, label in (("dqn", "--", "Nature DQN"), ("human", ":", "human"), ("random", "-.", "random")):
        ax.axhline(ref[key], color="black", linestyle=style, linewidth=1, alpha=0.7, label=f"{label} ({ref[key]:g})")


def _score_axes(ax: plt.Axes, env_id: str | None, title: str) -> None:
    """A game-score panel's reference lines, title, legend, grid and frames axis."""
    _baselines(ax, env_id)
    ax.set_title(title)
    ax.set_xlabel("agent steps")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    _frames_axis(ax)


def returns_panel(ax: plt.Axes, runs: dict[str, dict[str, Series]], env_id: str | None) -> None:
    """Each run's game scores, their mean of 100, its 10-game evaluations (mean and std) and, where a new best
    evaluation was re-scored over more games (--rescore_episodes), that re-score as a star."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for color, (label, s) in zip(colors, runs.items()):
        if "Episode/return" in s:
            ax.scatter(*s["Episode/return"], s=4, alpha=0.25, color=color, label=f"{label}: game score")
        if "Episode/return_mean100" in s:
            ax.plot(*s["Episode/return_mean100"], color=color, linewidth=2, label=f"{label}: mean of last 100")
        if "Eval/mean_return" in s:
            steps, mean = s["Eval/mean_return"]
            std = s.get("Eval/std_return", (steps, np.zeros_like(mean)))[1]
            ax.errorbar(steps, mean, yerr=std, color=color, marker="o", linestyle="--", capsize=3, label=f"{label}: evaluation (mean, std)")
        if "Eval/rescore_mean_return" in s:
            ax.scatter(*s["Eval/rescore_mean_return"], marker="*", s=120, color=color, edgecolors="black", zorder=3,
                       label=f"{label}: new best re-scored over more games")
    _score_axes(ax, env_id, "episode return (unclipped game score)")


def plot_runs(run_dirs: list[Path], out_dir: Path, env_id: str | None = None, name: str | None = None) -> list[Path]:
    """Write <name>_curves.png (all panels) and <name>_returns.png (episode and evaluation return); return the paths."""
    runs = {Path(d).name: read_scalars(Path(d)) for d in run_dirs}
    name = name or "_".join(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def line_panel(ax: plt.Axes, tag: str, title: str, log: bool = False) -> None:
        for color, (label, s) in zip(colors, runs.items()):
            if tag in s:
                ax.plot(*s[tag], color=color, label=label)
        ax.set_title(title)
        ax.set_xlabel("agent steps")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        _frames_axis(ax)

    figure, axes = plt.subplots(2, 2, figsize=(14, 9), constrained_layout=True)
    returns_panel(axes[0, 0], runs, env_id)
    if any("Huber loss" in s for s in runs.values()):  # a DQN run: its loss and its exploration
        line_panel(axes[0, 1], "Huber loss", "Huber loss", log=True)
        line_panel(axes[1, 1], "Epsilon", "epsilon")
    else:  # an A2C/PPO run: its value loss and its policy's entropy
        line_panel(axes[0, 1], "Loss/value_loss", "value loss", log=True)
        line_panel(axes[1, 1], "Loss/entropy", "policy entropy (nats)")
    line_panel(axes[1, 0], "FPS", "agent steps per second (current rate)", log=True)
    if axes[0, 1].get_legend_handles_labels()[0]:
        axes[0, 1].legend(fontsize=7)
    figure.suptitle(f"{env_id or ''} {name}".strip())
    curves = out_dir / f"{name}_curves.png"
    figure.savefig(curves, dpi=110)
    plt.close(figure)

    figure, ax = plt.subplots(figsize=(9, 5.5), constrained_layout=True)
    returns_panel(ax, runs, env_id)
    figure.suptitle(f"{env_id or ''} {name}".strip())
    returns = out_dir / f"{name}_returns.png"
    figure.savefig(returns, dpi=110)
    plt.close(figure)
    return [curves, returns]


def plot_evaluations(run_dirs: list[Path], references: list[dict[str, Any]], out_dir: Path, env_id: str | None, name: str,
                     max_step: int | None = None) -> Path:
    """<name>_evaluations.png: each run's evaluations (Eval/mean_return) and reference curves ({"label", "steps",
    "mean_return"}, e.g. an earlier run's figures) against agent steps, up to max_step."""
    figure, ax = plt.subplots(figsize=(9, 5.5), constrained_layout=True)
    curves = [(Path(d).name, *read_scalars(Path(d)).get("Eval/mean_return", (np.array([]), np.array([])))) for d in run_dirs]
    curves += [(r["label"], np.array(r["steps"]), np.array(r["mean_return"])) for r in references]
    for label, steps, values in curves:
        keep = steps <= max_step if max_step else np.ones(len(steps), bool)
        ax.plot(steps[keep], values[keep], marker="o", markersize=3, label=label)
    _score_axes(ax, env_id, "evaluations (10 games, Nature protocol) against agent steps")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}_evaluations.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# ---- several seeds per game, and several games: confidence intervals with rliable ---------------------------------
def run_env_id(run_dir: Path, default: str | None = None) -> str | None:
    """The game a run folder was trained on (its run_info.json), else `default`."""
    info = Path(run_dir) / RUN_INFO_NAME
    return json.loads(info.read_text())["env_id"] if info.is_file() else default


def final_score(scalars: dict[str, Series]) -> float | None:
    """A run's final score: its last Nature-protocol evaluation, else the last 100-game training mean, else None."""
    for tag in ("Eval/mean_return", "Episode/return_mean100"):
        if tag in scalars and len(scalars[tag][1]):
            return float(scalars[tag][1][-1])
    return None


def seed_band(curves: list[Series], points: int = 200, reps: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, low, high): the mean curve over runs and its 95% bootstrap band (runs resampled, rliable).

    Each curve is interpolated onto a common grid of agent steps, up to the shortest run's last step.
    """
    from rliable import library as rly

    start = max(float(c[0][0]) for c in curves)
    end = min(float(c[0][-1]) for c in curves)
    grid = np.linspace(start, end, points) if end > start else np.array([end])
    matrix = np.stack([np.interp(grid, c[0], c[1]) for c in curves])  # (runs, points): points as rliable's tasks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arch's RandomState deprecation, inside rliable
        point, interval = rly.get_interval_estimates(
            {"runs": matrix}, lambda x: np.mean(x, axis=0), reps=reps, random_state=np.random.RandomState(seed),
        )
    return grid, point["runs"], interval["runs"][0], interval["runs"][1]


def aggregate_human_normalized(finals: dict[str, list[float]], reps: int = 2000, seed: int = 0) -> dict[str, Any]:
    """IQM and mean of human-normalised final scores over games with 95% stratified bootstrap CIs (Agarwal et al., 2021).

    finals: env_id -> final scores of its runs; games without human/random reference scores are left
    out, and every game uses as many runs as the game with the fewest (rliable's runs x games matrix).
    """
    from rliable import library as rly
    from rliable import metrics

    games = {env_id: scores for env_id, scores in finals.items() if human_normalized_score(env_id, 0.0) is not None}
    if not games:
        return {}
    runs = min(len(s) for s in games.values())
    matrix = np.array([[human_normalized_score(env_id, s) / 100.0 for s in scores[:runs]] for env_id, scores in games.items()]).T
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        point, interval = rly.get_interval_estimates(
            {"dqn": matrix}, lambda x: np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)]),
            reps=reps, random_state=np.random.RandomState(seed),
        )
    result: dict[str, Any] = {"games": list(games), "runs_per_game": runs, "unit": "human-normalised score (1 = human, 0 = random)"}
    for i, key in enumerate(("iqm", "mean")):
        result[key] = {"value": float(point["dqn"][i]), "ci95": [float(interval["dqn"][0, i]), float(interval["dqn"][1, i])]}
    return result


def plot_seeds(groups: dict[str, list[dict[str, Series]]], out_dir: Path, name: str) -> Path:
    """<name>_seeds.png: per game, the mean over runs of the training mean-100 return and of the evaluations, with 95% bands."""
    figure, axes = plt.subplots(1, len(groups), figsize=(7 * len(groups), 5), constrained_layout=True, squeeze=False)
    for ax, (env_id, runs) in zip(axes[0], groups.items()):
        for tag, color, label in (("Episode/return_mean100", "C0", "training, mean of last 100 games"), ("Eval/mean_return", "C1", "evaluation")):
            curves = [s[tag] for s in runs if tag in s and len(s[tag][0])]
            if not curves:
                continue
            steps, mean, low, high = seed_band(curves)
            ax.plot(steps, mean, color=color, label=f"{label}: mean of {len(curves)} runs")
            ax.fill_between(steps, low, high, color=color, alpha=0.25, label="95% bootstrap CI")
        _baselines(ax, env_id)
        ax.set_title(env_id)
        ax.set_xlabel("agent steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        _frames_axis(ax)
    path = out_dir / f"{name}_seeds.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_aggregate(aggregate: dict[str, Any], out_dir: Path, name: str) -> Path:
    """<name>_aggregate.png: IQM and mean of human-normalised scores with their 95% CIs."""
    figure, ax = plt.subplots(figsize=(6, 2.8), constrained_layout=True)
    for row, key in enumerate(("iqm", "mean")):
        value, (low, high) = aggregate[key]["value"], aggregate[key]["ci95"]
        ax.barh(row, high - low, left=low, height=0.5, color="C0", alpha=0.6)
        ax.plot([value, value], [row - 0.25, row + 0.25], color="black", linewidth=2)
    ax.set_yticks([0, 1], ["IQM", "mean"])
    ax.axvline(1.0, color="black", linestyle=":", linewidth=1, label="human")
    ax.set_xlabel("human-normalised score")
    ax.set_title(f"{len(aggregate['games'])} games x {aggregate['runs_per_game']} runs, 95% stratified bootstrap CIs", fontsize=9)
    ax.legend(fontsize=7)
    path = out_dir / f"{name}_aggregate.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_groups(run_dirs: list[Path], out_dir: Path, default_env_id: str | None, name: str) -> list[Path]:
    """Runs grouped by game: <name>_seeds.png (bands over seeds) and, for known games, <name>_aggregate.png/.json."""
    groups: dict[str, list[dict[str, Series]]] = {}
    for run_dir in run_dirs:
        groups.setdefault(run_env_id(run_dir, default_env_id) or "unknown game", []).append(read_scalars(Path(run_dir)))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [plot_seeds(groups, out_dir, name)]
    finals = {env_id: [s for s in map(final_score, runs) if s is not None] for env_id, runs in groups.items()}
    aggregate = aggregate_human_normalized({k: v for k, v in finals.items() if v})
    if aggregate:
        paths.append(plot_aggregate(aggregate, out_dir, name))
        summary = out_dir / f"{name}_aggregate.json"
        summary.write_text(json.dumps(aggregate | {"final_scores": finals}, indent=1))
        paths.append(summary)
    return paths

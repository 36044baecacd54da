"""Learning-curve plots from TensorBoard run folders, read with TensorBoard's own event reader.

Every panel is against agent steps, with emulator frames (4 per agent step) on a second axis.
Several runs overlay on one figure, one colour each (e.g. seeds of one configuration).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from utils.env_wrappers import FRAME_SKIP
from utils.evaluation import NATURE_SCORES, game_name

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


def plot_runs(run_dirs: list[Path], out_dir: Path, env_id: str | None = None, name: str | None = None) -> list[Path]:
    """Write <name>_curves.png (all panels) and <name>_returns.png (episode and evaluation return); return the paths."""
    runs = {Path(d).name: read_scalars(Path(d)) for d in run_dirs}
    name = name or "_".join(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def returns_panel(ax: plt.Axes) -> None:
        for color, (label, s) in zip(colors, runs.items()):
            if "Episode/return" in s:
                ax.scatter(*s["Episode/return"], s=4, alpha=0.25, color=color, label=f"{label}: game score")
            if "Episode/return_mean100" in s:
                ax.plot(*s["Episode/return_mean100"], color=color, linewidth=2, label=f"{label}: mean of last 100")
            if "Eval/mean_return" in s:
                steps, mean = s["Eval/mean_return"]
                std = s.get("Eval/std_return", (steps, np.zeros_like(mean)))[1]
                ax.errorbar(steps, mean, yerr=std, color=color, marker="o", linestyle="--", capsize=3, label=f"{label}: evaluation (eps 0.05)")
        _baselines(ax, env_id)
        ax.set_title("episode return (unclipped game score)")
        ax.set_xlabel("agent steps")
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
        _frames_axis(ax)

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
    returns_panel(axes[0, 0])
    line_panel(axes[0, 1], "Huber loss", "Huber loss", log=True)
    line_panel(axes[1, 0], "FPS", "agent steps per second (current rate)", log=True)
    line_panel(axes[1, 1], "Epsilon", "epsilon")
    axes[0, 1].legend(fontsize=7)
    figure.suptitle(f"{env_id or ''} {name}".strip())
    curves = out_dir / f"{name}_curves.png"
    figure.savefig(curves, dpi=110)
    plt.close(figure)

    figure, ax = plt.subplots(figsize=(9, 5.5), constrained_layout=True)
    returns_panel(ax)
    figure.suptitle(f"{env_id or ''} {name}".strip())
    returns = out_dir / f"{name}_returns.png"
    figure.savefig(returns, dpi=110)
    plt.close(figure)
    return [curves, returns]

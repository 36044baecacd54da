"""The --debug view of what the agent sees: the 4 stacked frames beside the game frame."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

if not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")  # no display: draw off-screen, write PNGs
import matplotlib.pyplot as plt
import numpy as np


class DebugVisualizer:
    """Shows the 4 stacked frames fed to the agent next to the game frame, without blocking training.

    With a display it updates one live matplotlib window; without one it writes
    data/debug/<run_name>/step_<N>.png and says where on the first write.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.interactive = bool(os.environ.get("DISPLAY")) and matplotlib.get_backend().lower() != "agg"
        self.figure, self.axes = plt.subplots(1, 5, figsize=(15, 3.4))
        self.announced = False
        if self.interactive:
            plt.ion()
            plt.show(block=False)

    def show(self, state: np.ndarray, game_frame: np.ndarray | None, step: int) -> Path | None:
        """state: (4, 84, 84) uint8, oldest frame first; game_frame: (H, W, 3) uint8 RGB or None."""
        for i, ax in enumerate(self.axes[:4]):
            ax.clear()
            ax.imshow(state[i], cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"t-{3 - i}" if i < 3 else "t (newest)")
            ax.axis("off")
        self.axes[4].clear()
        if game_frame is not None:
            self.axes[4].imshow(game_frame)
        self.axes[4].set_title("game")
        self.axes[4].axis("off")
        self.figure.suptitle(f"agent step {step}")
        if self.interactive:
            self.figure.canvas.draw_idle()
            plt.pause(0.001)
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"step_{step:09d}.png"
        self.figure.savefig(path)
        if not self.announced:
            print(f"--debug: no display, writing the agent's view as PNGs to {self.out_dir}")
            self.announced = True
        return path

    def close(self) -> None:
        plt.close(self.figure)

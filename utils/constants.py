"""Where the project reads and writes: the repository's fixed folders, and `RunPaths`, the one place
that names every file a run writes under --output_dir (the repository root by default).

    <output_dir>/models/checkpoints/<run_name>/<algo>_<env_id>_ckpt_steps_<N>.pth training checkpoints (algo: dqn, ppo, a2c)
    <output_dir>/models/checkpoints/<run_name>/replay_buffer_steps_<N>.npz        with --save_replay_buffer
    <output_dir>/models/binaries/<algo>_<env_id>_<NNNNNN>.pth                     best model of each run
    <output_dir>/runs/<run_name>/                                                 TensorBoard event files
    <output_dir>/runs/<run_name>/run_info.json                                    the run's game, seed and flags
    <output_dir>/data/debug/<run_name>/, data/eval/, data/plots/                  --debug PNGs, evaluation JSON, plots
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT_PATH = Path(__file__).resolve().parent.parent
PRETRAINED_PATH = ROOT_PATH / "models" / "pretrained"  # models committed to the repository
RUN_INFO_NAME = "run_info.json"  # beside a run's TensorBoard events: what plots group runs by


@dataclass(frozen=True)
class RunPaths:
    """The files and folders of run `run_name` under `output_dir` (see the module docstring)."""

    output_dir: Path
    run_name: str = ""

    @property
    def checkpoints(self) -> Path:
        return Path(self.output_dir) / "models" / "checkpoints" / self.run_name

    def checkpoint(self, env_id: str, step: int, algo: str = "dqn") -> Path:
        return self.checkpoints / f"{algo}_{env_id}_ckpt_steps_{step}.pth"

    def replay_buffer(self, step: int) -> Path:
        return self.checkpoints / f"replay_buffer_steps_{step}.npz"

    @property
    def binaries(self) -> Path:
        return Path(self.output_dir) / "models" / "binaries"

    @property
    def tensorboard(self) -> Path:
        return Path(self.output_dir) / "runs" / self.run_name

    @property
    def run_info(self) -> Path:
        return self.tensorboard / RUN_INFO_NAME

    @property
    def debug(self) -> Path:
        return Path(self.output_dir) / "data" / "debug" / self.run_name

    @property
    def data(self) -> Path:
        return Path(self.output_dir) / "data"

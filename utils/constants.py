"""Where the project reads and writes (the original's layout), relative to the repository root."""
from pathlib import Path

ROOT_PATH = Path(__file__).resolve().parent.parent
BINARIES_PATH = ROOT_PATH / "models" / "binaries"  # best model of each run
CHECKPOINTS_PATH = ROOT_PATH / "models" / "checkpoints"  # periodic training checkpoints
PRETRAINED_PATH = ROOT_PATH / "models" / "pretrained"  # models committed to the repository
DATA_DIR_PATH = ROOT_PATH / "data"  # debug frames, evaluation JSON, plots, GIFs
RUNS_PATH = ROOT_PATH / "runs"  # TensorBoard event files, one folder per run

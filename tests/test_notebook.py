"""notebooks/DQN_playground.ipynb runs top to bottom on the CPU (executed with nbclient, as a user's Jupyter would):
a DQN game and an actor-critic (PPO or A2C) game."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def test_playground_notebook_runs_and_shows_a_game() -> None:
    notebook = nbformat.read(ROOT / "notebooks" / "DQN_playground.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    assert "score" in text and "agent steps" in text and "input: (4, 84, 84) uint8" in text
    assert re.search(r"(ppo|a2c)_\S+\.pth: score [+-]\d+ in \d+ agent steps", text)  # the actor-critic's game
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) >= 5  # game frames, Q-values, the stacked input, a learning curve, V(s) and pi over a game

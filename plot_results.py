"""Plot learning curves of one or more TensorBoard runs into data/plots/.

    python plot_results.py runs/pong_cpu_fast --env_id PongNoFrameskip-v4
    python plot_results.py pong_r1 --output_dir ~/dqn_runs      # a run name under <output_dir>/runs/
    python plot_results.py sweeps/sweep                         # every run under a folder, grouped by game
    python plot_results.py pong_v4 --output_dir ~/dqn_runs --reference_evaluations data/results/pong_r2_evaluations.json --max_step 1000000

One run or several: <name>_curves.png and <name>_returns.png overlay them. Several: also
<name>_seeds.png (per game, the mean over seeds with a 95% bootstrap band) and, for games with
human and random reference scores, <name>_aggregate.png/.json (IQM and mean of human-normalised
final scores with 95% stratified bootstrap CIs, from rliable). With --reference_evaluations:
<name>_evaluations.png, the runs' evaluations beside reference curves from JSON files.
"""
from __future__ import annotations

import json
from pathlib import Path

from utils.cli import OneLineArgumentParser, fail
from utils.constants import ROOT_PATH, RunPaths
from utils.plotting import plot_evaluations, plot_groups, plot_runs, run_env_id


def main(argv: list[str] | None = None) -> list[Path]:
    p = OneLineArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", type=Path, help="runs/<run_name> folders or run names; several overlay on one figure")
    p.add_argument("--env_id", default=None, help="draws the Nature DQN, human and random scores when the game is known")
    p.add_argument("--name", default=None, help="file name prefix (default: the run names joined)")
    p.add_argument("--output_dir", type=Path, default=ROOT_PATH, help="the training's --output_dir: run names are looked up in its runs/")
    p.add_argument("--out_dir", type=Path, default=None, help="where the PNGs go (default <output_dir>/data/plots)")
    p.add_argument("--reference_evaluations", type=Path, action="append", default=[], help='JSON {"label", "steps", "mean_return"} drawn beside the runs\' evaluations')
    p.add_argument("--max_step", type=int, default=None, help="last agent step of the evaluations figure")
    args = p.parse_args(argv)
    args.run_dirs = [d if d.is_dir() else RunPaths(args.output_dir, str(d)).tensorboard for d in args.run_dirs]
    args.out_dir = args.out_dir or RunPaths(args.output_dir).data / "plots"
    missing = [str(d) for d in args.run_dirs if not any(Path(d).rglob("events.out.tfevents.*"))]
    if missing:
        fail(f"no TensorBoard event file in: {', '.join(missing)}")
    run_dirs = [run for d in args.run_dirs for run in run_folders(d)]
    name = args.name or "_".join(d.name for d in run_dirs)[:100]
    env_id = args.env_id or run_env_id(run_dirs[0])
    paths = plot_runs(run_dirs, args.out_dir, env_id, name)
    if len(run_dirs) > 1:
        paths += plot_groups(run_dirs, args.out_dir, args.env_id, name)
    if args.reference_evaluations:
        try:
            references = [json.loads(path.read_text()) for path in args.reference_evaluations]
        except (OSError, ValueError) as e:
            fail(f"--reference_evaluations: {e}")
        paths.append(plot_evaluations(run_dirs, references, args.out_dir, env_id, name, args.max_step))
    print("wrote " + ", ".join(str(p) for p in paths))
    return paths


def run_folders(folder: Path) -> list[Path]:
    """`folder` itself when it holds TensorBoard events, else every folder under it that does."""
    if any(folder.glob("events.out.tfevents.*")):
        return [folder]
    return sorted({events.parent for events in folder.rglob("events.out.tfevents.*")})


if __name__ == "__main__":
    main()

"""Games x seeds of a training script (DQN, A2C or PPO) as Ray tasks, then a summary with 95% confidence intervals over seeds.

    python sweep_DQN_script.py --env_ids PongNoFrameskip-v4 BreakoutNoFrameskip-v4 --seeds 0 1 2 --preset pong
    python sweep_DQN_script.py --algo ppo --env_ids PongNoFrameskip-v4 --seeds 0 1 2 --preset pong
    python sweep_DQN_script.py ... --address auto                # the Ray cluster this machine belongs to
    python sweep_DQN_script.py ... --address ray://HOST:10001    # a remote Ray cluster (Ray Client)

--algo picks the script (dqn: train_DQN_script.py, a2c: train_A2C_script.py, ppo: train_PPO_script.py).
Any other flag goes to every run as that script's flags (checked for every run before any
starts). Each (game, seed) pair is one Ray task, named <sweep_name>_<Game>_seed<seed>, that calls
the script's training function in its worker process, with its own output folder
<output_dir>/sweeps/<sweep_name>/<run_name>/ (that run's models/, runs/, data/), so runs of one game
never share a file. A finished run writes result.json there. With no --address, Ray starts embedded
on this machine and stops at the end. On a cluster, <output_dir> must be a folder every node sees
(a shared file system) and the repository is shipped to the workers as Ray's working_dir.

Recovery: a task whose worker dies is retried by Ray (--max_retries) and resumes from that run's
newest checkpoint, never from step 0 (each attempt is listed in result.json); a sweep launched again
with the same --sweep_name skips finished runs and resumes unfinished ones.

Summary (printed, and written to summary.json / summary.md in the sweep folder): per game, the mean
over seeds of each run's final Nature-protocol evaluation, with a 95% bootstrap confidence interval
(rliable), raw and human-normalised.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.cli import OneLineArgumentParser, fail, non_negative_float, non_negative_int, positive_float
from utils.constants import ROOT_PATH, RunPaths
from utils.evaluation import game_name, human_normalized_score

# --algo: the training script (module) and its training function.
ALGOS = {"dqn": ("train_DQN_script", "train_dqn"), "a2c": ("train_A2C_script", "train_a2c"), "ppo": ("train_PPO_script", "train_ppo")}
RESULT_FILE = "result.json"
ATTEMPTS_FILE = "attempts.jsonl"
# Files of the repository a Ray cluster does not need (Ray's working_dir is capped at a few hundred MB).
CLUSTER_EXCLUDES = [".git", ".venv", "runs", "data", "models/checkpoints", "models/binaries", "*.pth", "*.npz"]


@dataclass(frozen=True)
class PlannedRun:
    """One (game, seed) pair of the sweep and the training script's flags that start it."""

    env_id: str
    seed: int
    run_name: str
    run_dir: Path
    argv: tuple[str, ...]
    algo: str = "dqn"

    @property
    def result_file(self) -> Path:
        return self.run_dir / RESULT_FILE


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(description=__doc__.splitlines()[0], epilog="other flags are passed to the training script", allow_abbrev=False)
    p.add_argument("--algo", choices=list(ALGOS), default="dqn", help="dqn, a2c or ppo: which train_<ALGO>_script.py runs")
    p.add_argument("--env_ids", nargs="+", required=True, help="Atari *NoFrameskip-v4 games")
    p.add_argument("--seeds", nargs="+", type=int, required=True, help="one run per game and seed")
    p.add_argument("--sweep_name", default="sweep", help="the sweep's folder under <output_dir>/sweeps/; launch again with it to resume")
    p.add_argument("--output_dir", type=Path, default=ROOT_PATH, help="root of sweeps/<sweep_name>/ (shared by all nodes on a cluster)")
    p.add_argument("--address", default=None, help="none: embedded Ray on this machine; 'auto' or ray://HOST:10001: a cluster")
    p.add_argument("--cpus_per_run", type=positive_float, default=1.0, help="Ray CPUs per run (also its torch threads, rounded down, at least 1)")
    p.add_argument("--gpus_per_run", type=non_negative_float, default=0.0, help="Ray GPUs per run; fractions share a GPU (0.5 = two runs per GPU)")
    p.add_argument("--max_retries", type=non_negative_int, default=3, help="retries of a run whose worker died (each resumes its checkpoint)")
    return p


def training_script(algo: str) -> tuple[Any, Any]:
    """(parse_config, the training function) of --algo's script."""
    module_name, function = ALGOS[algo]
    module = importlib.import_module(module_name)
    return module.parse_config, getattr(module, function)


def plan_runs(args: argparse.Namespace, train_flags: list[str]) -> list[PlannedRun]:
    """Every (game, seed) run with its flags, each checked by the training script's own validation (one line, exit 2)."""
    parse_config, _ = training_script(args.algo)

    for flag in ("--env_id", "--seed", "--run_name", "--output_dir", "--resume"):
        if any(f == flag or f.startswith(flag + "=") for f in train_flags):
            fail(f"{flag} is set by the sweep for each run; use --env_ids / --seeds / --sweep_name / --output_dir")
    sweep_dir = Path(args.output_dir) / "sweeps" / args.sweep_name
    runs = []
    for env_id in args.env_ids:
        for seed in args.seeds:
            run_name = f"{args.sweep_name}_{game_name(env_id)}_seed{seed}"
            run_dir = sweep_dir / run_name
            argv = (*train_flags, "--env_id", env_id, "--seed", str(seed), "--run_name", run_name, "--output_dir", str(run_dir))
            config = parse_config(list(argv))
            if not config.eval_freq:
                fail("--eval_freq 0: the sweep's summary needs each run's Nature-protocol evaluations")
            runs.append(PlannedRun(env_id, seed, run_name, run_dir, argv, args.algo))
    return runs


def train_one(run: PlannedRun, torch_threads: int) -> dict[str, Any]:
    """Train one run to its end inside a Ray worker, continuing its newest checkpoint if it has one; returns its result."""
    import torch

    from utils.plotting import read_scalars

    if run.result_file.exists():
        return json.loads(run.result_file.read_text())
    torch.set_num_threads(torch_threads)
    env_id = run.env_id
    parse_config, train = training_script(run.algo)
    checkpoints = sorted(RunPaths(run.run_dir, run.run_name).checkpoints.glob(f"{run.algo}_{env_id}_ckpt_steps_*.pth"), key=_step_of)
    argv = list(run.argv) + (["--resume", run.run_name] if checkpoints else [])
    run.run_dir.mkdir(parents=True, exist_ok=True)
    attempt = {"pid": os.getpid(), "node": os.uname().nodename, "start_step": _step_of(checkpoints[-1]) if checkpoints else 0, "time": time.time()}
    with open(run.run_dir / ATTEMPTS_FILE, "a") as f:
        f.write(json.dumps(attempt) + "\n")
    started = time.perf_counter()
    summary = train(parse_config(argv))
    if summary["stopped"]:
        raise RuntimeError(f"{run.run_name} was stopped at step {summary['steps']}; launch the sweep again to resume it")
    evaluations = read_scalars(RunPaths(run.run_dir, run.run_name).tensorboard).get("Eval/mean_return")
    final_eval = float(evaluations[1][-1]) if evaluations is not None else float("nan")
    attempts = [json.loads(line) for line in (run.run_dir / ATTEMPTS_FILE).read_text().splitlines()]
    result = {
        "algo": run.algo, "env_id": env_id, "seed": run.seed, "run_name": run.run_name, "steps": summary["steps"],
        "updates": summary.get("updates", summary.get("iterations")), "episodes": summary["episodes"], "final_eval_return": final_eval,
        "best_eval_return": summary["best_eval_return"], "best_model_path": summary["best_model_path"],
        "run_dir": summary["run_dir"], "last_attempt_wall_s": time.perf_counter() - started, "attempts": attempts,
    }
    tmp = run.result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, run.result_file)  # a result file is whole or absent: its presence means "finished"
    return result


def _step_of(checkpoint: Path) -> int:
    return int(checkpoint.stem.rsplit("_", 1)[1])


def connect_ray(address: str | None) -> None:
    """Embedded Ray on this machine (no address) or a cluster; an unreachable address fails in one line."""
    import ray

    if address is None:
        ray.init(include_dashboard=False, log_to_driver=True, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT_PATH)}})
        return
    runtime_env = {"working_dir": str(ROOT_PATH), "excludes": CLUSTER_EXCLUDES}
    try:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        fail(f"--address {address}: no Ray cluster reachable there ({str(e).splitlines()[0] if str(e) else type(e).__name__})")


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in one line, at once, when HOST:PORT of a ray:// or GCS address does not accept a TCP connection."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        fail(f"--address {address}: expected 'auto', HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        fail(f"--address {address}: no Ray cluster reachable there ({e.strerror or type(e).__name__})")


def run_sweep(runs: list[PlannedRun], args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    """Results of all runs (finished ones read back, the others trained as Ray tasks) and the errors of failed runs."""
    done = {run: json.loads(run.result_file.read_text()) for run in runs if run.result_file.exists()}
    pending = [run for run in runs if run not in done]
    resuming = sum(1 for run in pending if RunPaths(run.run_dir, run.run_name).checkpoints.is_dir())
    print(f"sweep {args.sweep_name}: {len(runs)} runs, {len(done)} finished (skipped), {resuming} to resume, {len(pending) - resuming} to start")
    errors: list[str] = []
    if pending:
        import ray

        connect_ray(args.address)
        task = ray.remote(train_one)
        resources = {"num_cpus": args.cpus_per_run, "num_gpus": args.gpus_per_run, "max_retries": args.max_retries, "retry_exceptions": False}
        threads = max(1, int(args.cpus_per_run))
        refs = {task.options(name=run.run_name, **resources).remote(run, threads): run for run in pending}
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                run = refs.pop(ready[0])
                try:
                    done[run] = ray.get(ready[0])
                    print(f"finished {run.run_name}: final evaluation {done[run]['final_eval_return']:.2f}")
                except (ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError, ray.exceptions.RayError) as e:
                    errors.append(f"{run.run_name}: {str(e).strip().splitlines()[-1]}")
                    print(f"failed {errors[-1]}", file=sys.stderr)
        finally:
            ray.shutdown()
    return [done[run] for run in runs if run in done], errors


def summarize(results: list[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """Per game: seeds, mean of the final evaluations, 95% bootstrap CI (rliable), and the same human-normalised."""
    import numpy as np
    from rliable import library as rly

    warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)  # arch, inside rliable
    rows = []
    for env_id in dict.fromkeys(r["env_id"] for r in results):
        scores = np.array([r["final_eval_return"] for r in results if r["env_id"] == env_id], dtype=np.float64)
        row: dict[str, Any] = {"env_id": env_id, "seeds": len(scores)}
        normalised = [human_normalized_score(env_id, s) for s in scores]
        for key, values in (("score", scores), ("human_normalized", None if None in normalised else np.array(normalised))):
            if values is None:
                row[key] = None
                continue
            point, interval = rly.get_interval_estimates(
                {env_id: values[:, None]}, lambda x: np.array([np.mean(x)]), reps=2000, confidence_interval_size=0.95,
                random_state=np.random.RandomState(seed),
            )
            row[key] = {"mean": float(point[env_id][0]), "ci95": [float(interval[env_id][0, 0]), float(interval[env_id][1, 0])]}
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table."""
    lines = ["| game | seeds | final evaluation, mean [95% CI] | human-normalised %, mean [95% CI] |", "|---|---|---|---|"]
    for row in rows:
        cells = []
        for key in ("score", "human_normalized"):
            v = row[key]
            cells.append("n/a" if v is None else f"{v['mean']:.2f} [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]")
        lines.append(f"| {row['env_id']} | {row['seeds']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args, train_flags = build_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    runs = plan_runs(args, train_flags)
    if args.address is not None:
        check_reachable(args.address)
    results, errors = run_sweep(runs, args)
    sweep_dir = Path(args.output_dir) / "sweeps" / args.sweep_name
    rows = summarize(results) if results else []
    table = format_table(rows)
    (sweep_dir / "summary.json").write_text(json.dumps({"runs": results, "games": rows, "errors": errors}, indent=1))
    (sweep_dir / "summary.md").write_text(table + "\n")
    print(table)
    print(f"wrote {sweep_dir / 'summary.json'} and summary.md")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

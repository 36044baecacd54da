"""Play a trained model (DQN, A2C or PPO) under the Nature evaluation protocol and report its score (optionally record it).

    python evaluate_DQN_script.py --model dqn_PongNoFrameskip-v4_000000.pth --record
    python evaluate_DQN_script.py --model ppo_PongNoFrameskip-v4_000000.pth      # its own sampled actions, epsilon 0
    python evaluate_DQN_script.py --model ppo_PongNoFrameskip-v4_000000.pth --greedy   # its most probable actions

The model file says its algorithm ("algo"; files without it are DQN's). A DQN plays epsilon-greedy
(epsilon 0.05, the Nature protocol); an A2C or PPO policy plays the actions it samples, or with
--greedy its most probable ones, with --epsilon 0 unless given.

--model is a file name in models/binaries/ (under --output_dir, as in training) or models/pretrained/, or any path. Shows a
progress bar over the games (the mean so far), then prints mean, std, median, min, max and the human-normalised score, and
writes them as JSON to data/eval/.
"""
from __future__ import annotations

import json
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch
from tqdm import tqdm

from models.definitions.ActorCritic import ActorCritic
from models.definitions.DQN import DQN
from utils.checkpoints import CheckpointError, atomic_write, load_checkpoint
from utils.cli import OneLineArgumentParser, fail, positive_int, unit_float
from utils.constants import PRETRAINED_PATH, ROOT_PATH, RunPaths
from utils.env_wrappers import FRAME_SKIP, EnvIdError, make_atari_env, validate_env_id
from utils.evaluation import EVAL_EPSILON, EVAL_MAX_EPISODE_FRAMES, evaluate
from utils.precision import add_device_flags, pick_device_and_precision

GAME_FPS = 60 / FRAME_SKIP  # one recorded frame per agent step: 15 per second is the game's real speed


def resolve_model_path(model: str, output_dir: Path = ROOT_PATH) -> Path:
    """A path as given, else the name looked up in <output_dir>/models/binaries/ then models/pretrained/."""
    binaries = RunPaths(output_dir).binaries
    for candidate in (Path(model), binaries / model, PRETRAINED_PATH / model):
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"model '{model}' not found as a path, in {binaries} or in {PRETRAINED_PATH}")


def load_model(path: Path, env_id: str | None, device: torch.device) -> tuple[DQN | ActorCritic, str]:
    """The network in a checkpoint (a DQN, or the actor-critic of A2C/PPO) and the env id to play; one-line errors."""
    checkpoint = load_checkpoint(path, device)
    env_id = validate_env_id(env_id or checkpoint["env_id"])
    probe = make_atari_env(env_id, training=False)
    num_actions = int(probe.action_space.n)
    probe.close()
    if int(checkpoint["num_actions"]) != num_actions:
        raise CheckpointError(
            f"'{path}' was trained on {checkpoint['env_id']} with {checkpoint['num_actions']} actions; "
            f"{env_id} has {num_actions}"
        )
    algo = checkpoint.get("algo", "dqn")
    model = (DQN(num_actions) if algo == "dqn" else ActorCritic(num_actions)).to(device)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError:
        raise CheckpointError(f"'{path}' does not hold the weights of a {algo.upper()} network of this project") from None
    return model, env_id


def write_recording(frames: list[np.ndarray], stem: Path) -> tuple[Path, Path]:
    """The recorded episode as <stem>.gif and <stem>.mp4, frames in play order, at the game's real speed."""
    gif_path, mp4_path = stem.with_suffix(".gif"), stem.with_suffix(".mp4")
    # GIF delays are whole centiseconds: round each frame's start time so the total keeps the real speed.
    starts_cs = np.round(np.arange(len(frames) + 1) * 100 / GAME_FPS)
    durations_ms = (np.diff(starts_cs) * 10).tolist()
    atomic_write(gif_path, lambda f: imageio.mimwrite(f, frames, format="GIF", duration=durations_ms, loop=0))
    tmp_mp4 = mp4_path.with_name(f".{mp4_path.name}.tmp.mp4")
    imageio.mimwrite(tmp_mp4, frames, fps=GAME_FPS, macro_block_size=2)
    tmp_mp4.replace(mp4_path)
    return gif_path, mp4_path


def main(argv: list[str] | None = None) -> dict:
    p = OneLineArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="file in models/binaries/ or models/pretrained/, or a path")
    p.add_argument("--env_id", default=None, help="game to play (default: the one the model was trained on)")
    p.add_argument("--num_episodes", type=positive_int, default=30, help="full games to play")
    p.add_argument("--seed", type=int, default=0, help="seed of the no-op starts and epsilon draws")
    p.add_argument("--epsilon", type=unit_float, default=None, help="random-action probability: 0.05 for a DQN (the Nature protocol), 0 for A2C/PPO")
    p.add_argument("--max_episode_frames", type=positive_int, default=EVAL_MAX_EPISODE_FRAMES, help="cap per game (18,000 = 5 min)")
    p.add_argument("--games_at_once", type=positive_int, default=1,
                   help="games played side by side, one batched forward pass per step (faster; 1, one after another, gives the committed figures)")
    p.add_argument("--greedy", action="store_true",
                   help="an A2C/PPO policy plays its most probable action instead of sampling one (a DQN is greedy anyway)")
    p.add_argument("--record", action="store_true", help="write the first game as a GIF and an MP4 under data/")
    p.add_argument("--output", type=Path, default=None, help="JSON path (default <output_dir>/data/eval/<model>.json)")
    p.add_argument("--output_dir", type=Path, default=ROOT_PATH, help="the training's --output_dir: models/binaries and data/ under it")
    add_device_flags(p)  # --device, --precision: as in training
    args = p.parse_args(argv)
    if args.max_episode_frames < FRAME_SKIP:
        fail(f"--max_episode_frames must be at least {FRAME_SKIP} (one agent step)")
    if args.device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda was given but no CUDA GPU is visible to PyTorch")
    device, autocast_dtype = pick_device_and_precision(args.device, args.precision)

    try:
        path = resolve_model_path(args.model, args.output_dir)
        dqn, env_id = load_model(path, args.env_id, device)
    except (CheckpointError, EnvIdError) as e:
        fail(str(e))

    if args.epsilon is None:
        args.epsilon = EVAL_EPSILON if isinstance(dqn, DQN) else 0.0
    with tqdm(total=args.num_episodes, unit="game", desc=env_id, dynamic_ncols=True) as progress:
        scores: list[float] = []

        def show(_: int, score: float) -> None:
            scores.append(score)
            progress.set_postfix(mean=f"{np.mean(scores):.2f}", last=f"{score:g}", refresh=False)
            progress.update()

        result = evaluate(dqn, env_id, args.num_episodes, args.seed, args.epsilon, args.max_episode_frames, args.record, autocast_dtype,
                          args.games_at_once, args.greedy, on_game_end=show)
    precision = "bf16" if autocast_dtype is not None else "fp32"
    actions = "greedy" if isinstance(dqn, DQN) or args.greedy else "sampled"
    summary = result.summary(env_id) | {"model": str(path), "precision": precision, "epsilon": args.epsilon, "actions": actions,
                                        "max_episode_frames": args.max_episode_frames, "seed": args.seed, "games_at_once": args.games_at_once}
    data = RunPaths(args.output_dir).data
    output = args.output or data / "eval" / f"{path.stem}{'_greedy' if args.greedy else ''}.json"
    try:
        atomic_write(output, lambda f: f.write(json.dumps(summary, indent=2).encode()))
        if args.record:
            summary["recording"] = [str(p) for p in write_recording(result.frames, data / f"{path.stem}_{env_id}")]
    except OSError as e:
        fail(f"cannot write results: {e}")
    hns = summary["human_normalized_score"]
    print(
        f"{env_id}: {summary['num_episodes']} games, mean {summary['mean']:.2f} +- {summary['std']:.2f}, "
        f"median {summary['median']:.1f}, min {summary['min']:.1f}, max {summary['max']:.1f}, "
        f"human-normalised {'n/a' if hns is None else f'{hns:.1f}%'} -> {output}"
    )
    if args.record:
        print(f"recorded the first game: {', '.join(summary['recording'])}")
    return summary


if __name__ == "__main__":
    main()

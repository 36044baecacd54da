"""Agent steps/s of the training loop against the sequential bound of its unavoidable parts. Prints JSON.

    python bench/throughput.py --steps 4000 --device cpu --precision auto

Times separately (median of many repetitions), on the real env: one env step, one greedy-action
forward pass, one replay sample of 32, one gradient update of 32 (online forward/backward, target
forward, optimizer step). bound = 1 / (env + forward + (sample + update) / ratio) agent steps/s.
Then runs train_dqn itself for --steps agent steps after its warmup, at constant epsilon
(`--epsilon`), and reports its steps/s (from its own FPS log) and efficiency = measured / bound.

Against the machine: the peak of a large GEMM (fp32, and bf16 where training uses it) is measured, the update's FLOPs are
counted from the network's layer shapes (online forward, backward without the input's gradient,
target forward), and roofline_update_ms = FLOPs / peak; the fraction reached is roofline / measured.
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import machine, median_seconds, real_frames
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from models.definitions.DQN import DQN
from train_DQN_script import parse_config, train_dqn
from utils.dqn_agent import (
    gradient_step,
    greedy_action,
    make_networks,
    make_optimizer,
    pick_device_and_precision,
    to_device,
)
from utils.env_wrappers import make_atari_env
from utils.replay_buffer import ReplayBuffer


def component_times(config: argparse.Namespace, repeats: int) -> dict[str, float]:
    device, autocast_dtype = pick_device_and_precision(config.device, config.precision)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    env = make_atari_env(config.env_id)
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def env_step() -> None:
        _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            env.reset()

    buffer = ReplayBuffer(20_000, seed=0, compression=config.replay_compression)
    for i, frame in enumerate(real_frames(config.env_id, 20_000)):
        slot = buffer.store_frame(frame)
        buffer.store_action_reward_done(slot, i % 4, 0.0, i % 500 == 499)
    online, target = make_networks(int(env.action_space.n), device)
    optimizer = make_optimizer(config.optimizer, online.parameters(), config.learning_rate)
    state = buffer.fetch_last_state()

    def update() -> None:
        batch = to_device(buffer.fetch_random_states(config.batch_size), device)
        gradient_step(online, target, optimizer, batch, config.gamma, config.grad_clipping_value, autocast_dtype)

    sample_s = median_seconds(lambda: buffer.fetch_random_states(config.batch_size), repeats)
    times = {
        "env_step_ms": median_seconds(env_step, repeats) * 1e3,
        "action_forward_ms": median_seconds(lambda: greedy_action(online, state, autocast_dtype), repeats, sync=sync) * 1e3,
        "replay_sample_32_ms": sample_s * 1e3,
        "gradient_update_32_ms": (median_seconds(update, max(repeats // 4, 20), sync=sync) - sample_s) * 1e3,
    }
    env.close()
    return times


def matmul_peak_flops(dtype: torch.dtype, device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of an n x n x n matrix product in dtype: this machine's practical compute peak."""
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    return 2 * n**3 / median_seconds(lambda: a @ b, repeats, sync=sync)


def update_flops(num_actions: int, batch_size: int) -> float:
    """FLOPs of one update: online forward + backward (weight grads; input grads except the first layer's) + target forward."""
    dqn = DQN(num_actions)
    macs: list[int] = []

    def count(layer: torch.nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        per_output = layer.in_features if isinstance(layer, torch.nn.Linear) else layer.in_channels * math.prod(layer.kernel_size)
        macs.append(output.numel() * per_output)

    for layer in dqn.modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
            layer.register_forward_hook(count)
    with torch.no_grad():
        dqn(torch.zeros(batch_size, 4, 84, 84, dtype=torch.uint8))
    forward = 2 * sum(macs)
    first_layer = 2 * macs[0]
    return forward + (2 * forward - first_layer) + forward


def measured_loop(config_argv: list[str], steps: int, warmup: int) -> float:
    """Agent steps/s of train_dqn after warmup, from its own FPS scalar (windows of steps / 4)."""
    with tempfile.TemporaryDirectory() as out:
        window = max(steps // 4, 1)
        config = parse_config([
            *config_argv, "--num_of_training_steps", str(warmup + steps), "--num_warmup_steps", str(warmup),
            "--log_freq", str(window), "--console_log_freq", "0", "--checkpoint_freq", "0", "--eval_freq", "0",
            "--grads_log_freq", "0", "--output_dir", out, "--run_name", "bench",
        ])
        train_dqn(config)
        events = EventAccumulator(str(Path(out) / "runs" / "bench"))
        events.Reload()
        fps = [e.value for e in events.Scalars("FPS") if e.step > warmup + window]  # skip the window with warmup in it
    return float(np.mean(fps))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env_id", default="BreakoutNoFrameskip-v4")
    p.add_argument("--steps", type=int, default=8000, help="agent steps timed after warmup")
    p.add_argument("--warmup", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=200, help="repetitions per component timing")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--ratio", type=int, default=4, help="--acting_learning_step_ratio")
    p.add_argument("--epsilon", type=float, default=0.1, help="constant epsilon of the timed loop")
    p.add_argument("--replay_compression", choices=["none", "lz4"], default="none")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loop_argv = [
        "--env_id", args.env_id, "--device", args.device, "--precision", args.precision,
        "--acting_learning_step_ratio", str(args.ratio), "--replay_buffer_size", "100000",
        "--epsilon_start_value", str(args.epsilon), "--epsilon_end_value", str(args.epsilon),
        "--replay_compression", args.replay_compression,
    ]
    config = parse_config(loop_argv)
    device, autocast_dtype = pick_device_and_precision(config.device, config.precision)
    times = component_times(config, args.repeats)
    # bf16's peak only where bf16 is used: without native bf16 a large bf16 GEMM takes minutes.
    dtypes = (("bf16", torch.bfloat16), ("fp32", torch.float32)) if autocast_dtype is not None else (("fp32", torch.float32),)
    peaks = {name: matmul_peak_flops(dtype, device) for name, dtype in dtypes}
    peak = peaks["bf16" if autocast_dtype is not None else "fp32"]
    flops = update_flops(4, 32)
    roofline_ms = flops / peak * 1e3
    # Greedy forward passes happen on (1 - epsilon) of the steps.
    per_step_ms = times["env_step_ms"] + (1 - args.epsilon) * times["action_forward_ms"] + (
        times["replay_sample_32_ms"] + times["gradient_update_32_ms"]) / args.ratio
    bound = 1000.0 / per_step_ms
    measured = measured_loop(loop_argv, args.steps, args.warmup)
    print(json.dumps({
        "benchmark": "throughput",
        "env_id": args.env_id,
        "device": device.type,
        "precision": "bf16" if autocast_dtype is not None else "fp32",
        "acting_learning_step_ratio": args.ratio,
        "epsilon": args.epsilon,
        "replay_compression": args.replay_compression,
        **{k: round(v, 4) for k, v in times.items()},
        "matmul_peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
        "update_gflop": round(flops / 1e9, 3),
        "roofline_update_ms": round(roofline_ms, 2),
        "update_fraction_of_roofline": round(roofline_ms / times["gradient_update_32_ms"], 3),
        "bound_steps_per_s": round(bound, 1),
        "measured_steps_per_s": round(measured, 1),
        "efficiency": round(measured / bound, 3),
        "machine": machine(),
    }, indent=2))


if __name__ == "__main__":
    main()

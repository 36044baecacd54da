"""Agent steps/s of the training loop against the sequential bound of its parts and the machine's roofline. Prints JSON.

    python bench/throughput.py --num_envs 1,4,8 --precision auto

Times separately (median of many repetitions), through the library (utils/): one step of the
training envs per agent step (N games per vector step, divided by N), one batched greedy forward
pass per agent step (N states, divided by N), one replay sample of 32, one gradient update of 32
(online forward/backward, target forward, optimizer step). For each N:
bound = 1 / (env + (1 - epsilon) * forward + (sample + update) / ratio) agent steps/s.
Then runs train_DQN_script.py for --steps agent steps after its warmup, at constant epsilon, and
reports its agent steps/s (from its own FPS scalar) and efficiency = measured / bound.

Against the machine: the peak of a large GEMM (fp32, and bf16 where training uses it; the best of
--peak_trials) is measured, the update's FLOPs are counted from the network's layer shapes (online
forward, backward without the input's gradient, target forward), and roofline_update_ms =
FLOPs / peak; the fraction of the roofline reached is roofline / measured.
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
from _common import machine, median_seconds, real_frames, training_loop_fps

from models.definitions.DQN import DQN
from utils.dqn_agent import Learner, to_device
from utils.env_wrappers import make_training_envs
from utils.precision import pick_device_and_precision
from utils.replay_buffer import ReplayBuffer


def component_times(args: argparse.Namespace, num_envs: int, repeats: int) -> dict[str, float]:
    """Milliseconds per agent step of the env and of acting with N envs, and per call of a sample and an update."""
    device, compute_dtype = pick_device_and_precision(args.device, args.precision)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    envs = make_training_envs(args.env_id, num_envs, args.vector_env)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    env_s = median_seconds(lambda: envs.step(rng.integers(envs.num_actions, size=num_envs)), repeats)
    envs.close()
    buffer = ReplayBuffer(20_000, seed=0, compression=args.replay_compression)
    for i, frame in enumerate(real_frames(args.env_id, 20_000)):
        slot = buffer.store_frame(frame)
        buffer.store_action_reward_done(slot, i % 4, 0.0, i % 500 == 499)
    learner = Learner(envs.num_actions, device, compute_dtype, "adam", 1e-4, 0.99, 10.0)
    states = np.stack([buffer.fetch_last_state()] * num_envs)
    sample_s = median_seconds(lambda: buffer.fetch_random_states(32), repeats)
    update_s = median_seconds(lambda: learner.update(to_device(buffer.fetch_random_states(32), device)), max(repeats // 4, 20), sync=sync)
    return {
        "env_step_ms": env_s / num_envs * 1e3,
        "action_forward_ms": median_seconds(lambda: learner.act(states), repeats, sync=sync) / num_envs * 1e3,
        "replay_sample_32_ms": sample_s * 1e3,
        "gradient_update_32_ms": (update_s - sample_s) * 1e3,
    }


def matmul_peak_flops(dtype: torch.dtype, device: torch.device, trials: int, n: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of an n x n x n matrix product in dtype, the best of `trials` medians: this machine's practical peak."""
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    return max(2 * n**3 / median_seconds(lambda: a @ b, repeats, sync=sync) for _ in range(trials))


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env_id", default="BreakoutNoFrameskip-v4")
    p.add_argument("--num_envs", default="1", help="comma-separated N to measure, e.g. 1,4,8")
    p.add_argument("--vector_env", choices=["auto", "gymnasium", "ale"], default="auto")
    p.add_argument("--steps", type=int, default=8000, help="agent steps timed after warmup")
    p.add_argument("--warmup", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=200, help="repetitions per component timing")
    p.add_argument("--peak_trials", type=int, default=3)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--ratio", type=int, default=4, help="--acting_learning_step_ratio")
    p.add_argument("--epsilon", type=float, default=0.1, help="constant epsilon of the timed loop")
    p.add_argument("--replay_compression", choices=["none", "lz4"], default="none")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, compute_dtype = pick_device_and_precision(args.device, args.precision)
    precision = "bf16" if compute_dtype is not None else "fp32"
    # bf16's peak only where bf16 is used: without native bf16 a large bf16 GEMM takes minutes.
    dtypes = (("bf16", torch.bfloat16), ("fp32", torch.float32)) if compute_dtype is not None else (("fp32", torch.float32),)
    peaks = {name: matmul_peak_flops(dtype, device, args.peak_trials) for name, dtype in dtypes}
    flops = update_flops(4, 32)
    roofline_ms = flops / peaks[precision] * 1e3
    loops = []
    for num_envs in (int(n) for n in args.num_envs.split(",")):
        times = component_times(args, num_envs, args.repeats)
        per_step_ms = times["env_step_ms"] + (1 - args.epsilon) * times["action_forward_ms"] + (
            times["replay_sample_32_ms"] + times["gradient_update_32_ms"]) / args.ratio
        loop_argv = [
            "--env_id", args.env_id, "--device", args.device, "--precision", args.precision, "--num_envs", str(num_envs),
            "--vector_env", args.vector_env, "--acting_learning_step_ratio", str(args.ratio), "--replay_buffer_size", "100000",
            "--epsilon_start_value", str(args.epsilon), "--epsilon_end_value", str(args.epsilon),
            "--replay_compression", args.replay_compression,
        ]
        measured = float(np.mean(training_loop_fps(loop_argv, args.steps, args.warmup, args.threads)))
        loops.append({
            "num_envs": num_envs,
            **{k: round(v, 4) for k, v in times.items()},
            "update_fraction_of_roofline": round(roofline_ms / times["gradient_update_32_ms"], 3),
            "bound_steps_per_s": round(1000.0 / per_step_ms, 1),
            "measured_steps_per_s": round(measured, 1),
            "efficiency": round(measured * per_step_ms / 1000.0, 3),
        })
    print(json.dumps({
        "benchmark": "throughput",
        "env_id": args.env_id,
        "device": device.type,
        "precision": precision,
        "acting_learning_step_ratio": args.ratio,
        "epsilon": args.epsilon,
        "replay_compression": args.replay_compression,
        "vector_env": args.vector_env,
        "matmul_peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
        "update_gflop": round(flops / 1e9, 3),
        "roofline_update_ms": round(roofline_ms, 2),
        "loops": loops,
        "machine": machine(),
    }, indent=2))


if __name__ == "__main__":
    main()

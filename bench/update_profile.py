"""Where one gradient update's time goes, per kind of operation (torch.profiler, self CPU time). Prints JSON.

    python bench/update_profile.py --updates 50

Profiles three ways of running the same update (batch 32, Nature CNN, fused Adam, clipping):
  fp32              fp32 weights, fp32 passes
  bf16_autocast     fp32 weights under bf16 autocast, which casts every weight at every pass (the
                    project's update before 2026-12-03)
  bf16_working_copy fp32 master weights, passes on bf16 working copies refreshed once per step (now)
Each kind's milliseconds per update (profiled), and each variant's update time outside the profiler:
the median over --rounds rounds that time every variant in turn (A B C A B C ...), so that the
machine's drift hits all variants alike.
"""
from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict

import torch
from _common import machine, median_seconds
from torch.profiler import ProfilerActivity, profile

from models.definitions.DQN import precision_context
from utils.dqn_agent import Batch, Learner, gradient_step

KINDS = {
    "convolution forward": ("aten::mkldnn_convolution",),
    "convolution backward": ("aten::convolution_backward",),
    "linear layers": ("aten::addmm", "aten::mm"),
    "casts and copies": ("aten::copy_", "aten::_to_copy", "aten::_foreach_copy_", "aten::clone"),
    "optimizer step": ("aten::_fused_adam_",),
    "gradient norms": ("aten::linalg_vector_norm", "aten::_foreach_norm"),
}


def random_batch(size: int = 32) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(torch.randint(0, 256, (size, 4, 84, 84), dtype=torch.uint8, generator=g), torch.randint(0, 4, (size,), generator=g),
                 torch.randn(size, generator=g), torch.randint(0, 256, (size, 4, 84, 84), dtype=torch.uint8, generator=g),
                 torch.zeros(size, dtype=torch.bool))


def update_function(variant: str, batch: Batch):
    if variant == "bf16_working_copy":
        learner = Learner(4, torch.device("cpu"), torch.bfloat16)
        return lambda: learner.update(batch)
    learner = Learner(4, torch.device("cpu"), None)
    dtype = torch.bfloat16 if variant == "bf16_autocast" else None

    def update() -> None:
        with precision_context("cpu", dtype):
            gradient_step(learner.online, learner.target, learner.optimizer, batch, 0.99, 10.0)

    return update


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=50, help="updates profiled (and timed) per variant")
    p.add_argument("--variants", default="fp32,bf16_autocast,bf16_working_copy")
    p.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds of 20 updates per variant")
    args = p.parse_args()
    batch, results = random_batch(), {}
    updates = {variant: update_function(variant, batch) for variant in args.variants.split(",")}
    rounds: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.rounds):
        for variant, update in updates.items():
            rounds[variant].append(median_seconds(update, 20, warmup=3) * 1e3)
    for variant, update in updates.items():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.updates):
                update()
        per_kind: dict[str, float] = defaultdict(float)
        for event in prof.key_averages():
            kind = next((k for k, names in KINDS.items() if event.key in names), "everything else")
            per_kind[kind] += event.self_cpu_time_total / 1e3 / args.updates
        results[variant] = {"update_ms_median": round(statistics.median(rounds[variant]), 2),
                            "update_ms_range": [round(min(rounds[variant]), 2), round(max(rounds[variant]), 2)],
                            "profiled_ms_per_kind": {k: round(v, 2) for k, v in sorted(per_kind.items())}}
    print(json.dumps({"benchmark": "update_profile", "batch_size": 32, "variants": results, "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()

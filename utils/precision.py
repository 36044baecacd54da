"""Where the passes run and in which dtype, for every algorithm: the device, and fp32 masters with bf16 working copies.

Invariants:
- A "master" network is fp32: the optimizer steps its weights, its gradients are fp32 when the
  optimizer sees them, and checkpoints and model files hold it.
- Its "working copy" is the network the forward and backward passes run on: the master itself in
  fp32, else a copy whose trunk (the submodules its class names in `TRUNK`: the convolutions and
  the hidden layer) holds compute-dtype weights while its heads stay fp32, so every output that is
  compared, sampled or regressed (Q-values, logits, values) keeps fp32 resolution.
- After each backward, `widen_gradients` copies the working copy's gradients into the masters'
  .grad (fp32, allocated once); after each optimizer step, `copy_weights` refreshes the working
  copy from the master (round to nearest). An update then costs what a pure bf16 one costs, while
  small optimizer steps accumulate in fp32 weights.
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch


def cpu_has_native_bf16() -> bool:
    """True on CPUs with native bf16 arithmetic (avx512_bf16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def add_device_flags(p: argparse.ArgumentParser) -> None:
    """--device and --precision, the same in every training script and the evaluator (`pick_device_and_precision`)."""
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto = cuda when available")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto = bf16 passes on fp32 master weights on CPUs with native bf16, fp32 elsewhere (CUDA included: faster there)")


def pick_device_and_precision(device: str = "auto", precision: str = "auto") -> tuple[torch.device, torch.dtype | None]:
    """(device, compute dtype: bf16, or None for fp32): cuda when asked or available; `auto` is bf16 only on native-bf16 CPUs.

    On CUDA the Nature network is too small for bf16 to pay: its launches, not its arithmetic, bound an update,
    and the casts add launches (H200: fp32 gave 10-30% more DQN agent steps/s, bench/results/throughput_cuda.json).
    """
    chosen = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    if precision == "bf16" or (precision == "auto" and chosen.type == "cpu" and cpu_has_native_bf16()):
        return chosen, torch.bfloat16
    return chosen, None


def on_device(network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`network` moved to `device`; on the CPU with NHWC weights, where oneDNN's convolutions are fastest."""
    network = network.to(device)
    return network.to(memory_format=torch.channels_last) if device.type == "cpu" else network


def working_copy(master: torch.nn.Module, compute_dtype: torch.dtype | None) -> torch.nn.Module:
    """The network the passes run on: `master` itself in fp32, else a copy with a `compute_dtype` trunk (master.TRUNK)."""
    if compute_dtype is None:
        return master
    work = copy.deepcopy(master)
    for name in master.TRUNK:
        work.get_submodule(name).to(compute_dtype)
    return work


def copy_weights(destination: torch.nn.Module, source: torch.nn.Module) -> None:
    """destination's parameters <- source's, cast to destination's dtypes (no-op when they are the same module)."""
    if destination is not source:
        with torch.no_grad():
            torch._foreach_copy_(list(destination.parameters()), list(source.parameters()))


def widen_gradients(master: torch.nn.Module, work: torch.nn.Module) -> None:
    """master's .grad <- work's gradients in fp32 (no-op when they are the same module); every work parameter has a gradient."""
    if work is master:
        return
    masters = list(master.parameters())
    for parameter in masters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    torch._foreach_copy_([m.grad for m in masters], [w.grad for w in work.parameters()])

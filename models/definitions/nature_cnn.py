"""The Nature DQN paper's convolutional trunk (Mnih et al., 2015), shared by every network of this project.

Input: (B, 4, 84, 84) stacked frames already scaled to [0, 1] (`trunk_input` scales uint8 ones).
Output: (B, 3136) features: Conv(4->32, 8, s4) ReLU, Conv(32->64, 4, s2) ReLU, Conv(64->64, 3, s1) ReLU, flattened.
"""
import torch
from torch import nn

TRUNK_FEATURES = 64 * 7 * 7


def conv_trunk(num_in_frames: int = 4) -> nn.Sequential:
    """The three convolutions with their ReLUs and the flatten (state_dict keys 0, 2, 4)."""
    return nn.Sequential(
        nn.Conv2d(num_in_frames, 32, kernel_size=8, stride=4),
        nn.ReLU(),
        nn.Conv2d(32, 64, kernel_size=4, stride=2),
        nn.ReLU(),
        nn.Conv2d(64, 64, kernel_size=3, stride=1),
        nn.ReLU(),
        nn.Flatten(),
    )


def trunk_input(states: torch.Tensor, first_weight: torch.Tensor) -> torch.Tensor:
    """uint8 frames -> the trunk's input: scaled by 1/255 straight into the compute dtype (autocast's, else the
    weights'), one cast and no fp32 copy under bf16; NHWC when the weights are (no reorder in oneDNN)."""
    device_type = states.device.type
    dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else first_weight.dtype
    x = states.to(dtype) * (1.0 / 255.0)
    if first_weight.is_contiguous(memory_format=torch.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)
    return x

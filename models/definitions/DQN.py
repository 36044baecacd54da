"""The Nature DQN network (Mnih et al., 2015, "Human-level control through deep RL").

Input: a batch of stacked frames, shape (B, 4, 84, 84), dtype uint8 (0..255); it is scaled
by 1/255 on the device the network lives on, so only uint8 bytes cross the host/device bus.
Output: Q-values, shape (B, num_actions), float32, with no activation on the last layer (Q-values
may be negative). The trunk (convolutions and the hidden layer) computes in its weights' dtype, or
in autocast's dtype under autocast: a bf16 trunk is either a bf16 copy of the weights (training,
utils/dqn_agent.py) or bf16 autocast over fp32 weights (evaluation of a saved model); both cast the
same operands to bf16. The last layer always runs in fp32 on fp32 features: every Q-value that is
compared (argmax), gathered, maximised or regressed keeps fp32 resolution, so bf16 never rounds two
actions into a tie.
"""
import contextlib

import torch
from torch import nn

from models.definitions.nature_cnn import TRUNK_FEATURES, conv_trunk, trunk_input


class DQN(nn.Module):
    """Conv(4->32, 8, s4) ReLU, Conv(32->64, 4, s2) ReLU, Conv(64->64, 3, s1) ReLU, FC 3136->512 ReLU, FC 512->A."""

    TRUNK = ("cnn", "fc.0")  # the layers a bf16 working copy holds in bf16 (utils/precision.py); the Q head stays fp32

    def __init__(self, num_actions: int, num_in_frames: int = 4) -> None:
        super().__init__()
        self.num_actions = num_actions
        self.cnn = conv_trunk(num_in_frames)
        self.fc = nn.Sequential(
            nn.Linear(TRUNK_FEATURES, 512),
            nn.ReLU(),
            nn.Linear(512, num_actions),
        )

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """states: (B, 4, 84, 84) uint8 (or float already in [0, 1] scaled by 255) -> (B, num_actions) Q-values."""
        hidden = self.fc[1](self.fc[0](self.cnn(trunk_input(states, self.cnn[0].weight))))
        with torch.autocast(states.device.type, enabled=False):  # the Q head in fp32 whatever the trunk's precision
            return self.fc[2](hidden.float())


def precision_context(device_type: str, autocast_dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast to autocast_dtype (e.g. bf16) on device_type, or a no-op for fp32 (autocast_dtype None)."""
    if autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=autocast_dtype)

"""The actor-critic network of A2C and PPO: the Nature trunk, a 512-unit hidden layer, a policy head and a value head.

As CleanRL's ppo_atari.py and Stable-Baselines3's CnnPolicy: one shared body, orthogonal
initialisation (gain sqrt(2) for the body, 0.01 for the policy logits so that the first policy is
near uniform, 1 for the value), zero biases.
Input: (B, 4, 84, 84) uint8 stacked frames, scaled by 1/255 here. Output: logits (B, num_actions)
and state values (B,), both float32. As the DQN network's: the body computes in its weights' dtype
(a bf16 working copy in training, utils/precision.py) or in autocast's; the two heads always run in
fp32 on fp32 features, so the policy that is sampled and the values that are regressed keep fp32
resolution.
"""
import math

import torch
from torch import nn
from torch.distributions import Categorical

from models.definitions.nature_cnn import TRUNK_FEATURES, conv_trunk, trunk_input


def orthogonal_(layer: nn.Module, gain: float) -> nn.Module:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """pi(a | s) as logits and V(s) from one body; `policy` gives the Categorical distribution."""

    TRUNK = ("cnn", "hidden")  # the layers a bf16 working copy holds in bf16; the policy and value heads stay fp32

    def __init__(self, num_actions: int, num_in_frames: int = 4) -> None:
        super().__init__()
        self.num_actions = num_actions
        self.cnn = conv_trunk(num_in_frames)
        self.hidden = nn.Linear(TRUNK_FEATURES, 512)
        self.actor = nn.Linear(512, num_actions)
        self.critic = nn.Linear(512, 1)
        for layer in [*self.cnn.children(), self.hidden]:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                orthogonal_(layer, math.sqrt(2))
        orthogonal_(self.actor, 0.01)
        orthogonal_(self.critic, 1.0)

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """states (B, 4, 84, 84) uint8 -> (logits (B, A), values (B,))."""
        features = torch.relu(self.hidden(self.cnn(trunk_input(states, self.cnn[0].weight))))
        with torch.autocast(states.device.type, enabled=False):  # the heads in fp32 whatever the body's precision
            features = features.float()
            return self.actor(features), self.critic(features).squeeze(1)

    def policy(self, states: torch.Tensor) -> tuple[Categorical, torch.Tensor]:
        """The action distribution and the state values for a batch of states."""
        logits, values = self(states)
        return Categorical(logits=logits), values

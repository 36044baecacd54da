"""The actor-critic network of A2C and PPO: the Nature trunk, a 512-unit hidden layer, a policy head and a value head.

As CleanRL's ppo_atari.py and Stable-Baselines3's CnnPolicy: one shared body, orthogonal
initialisation (gain sqrt(2) for the body, 0.01 for the policy logits so that the first policy is
near uniform, 1 for the value), zero biases.
Input: (B, 4, 84, 84) uint8 stacked frames, scaled by 1/255 here. Output: logits (B, num_actions)
and state values (B,), both float32.
"""
import math

import torch
from torch import nn
from torch.distributions import Categorical

from models.definitions.nature_cnn import TRUNK_FEATURES, conv_trunk


def orthogonal_(layer: nn.Module, gain: float) -> nn.Module:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """pi(a | s) as logits and V(s) from one body; `policy` gives the Categorical distribution."""

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
        features = torch.relu(self.hidden(self.cnn(states.float() * (1.0 / 255.0))))
        return self.actor(features), self.critic(features).squeeze(1)

    def policy(self, states: torch.Tensor) -> tuple[Categorical, torch.Tensor]:
        """The action distribution and the state values for a batch of states."""
        logits, values = self(states)
        return Categorical(logits=logits), values

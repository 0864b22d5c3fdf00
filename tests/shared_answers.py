"""Answers that more than one test file hands to a checker."""

from __future__ import annotations

import torch
from torch import nn


class HeadModules(nn.Module):
    """A right ``classifier_head`` answer: global average pooling, flatten, fc, as named modules."""

    def __init__(self, in_features, num_classes):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(x), 1))

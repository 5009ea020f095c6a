"""Small PyTorch models of each kind a user brings, exported into a test's folder (``torch.export.save``): a
sequential CNN, residual blocks, a U-Net skip, two outputs, a recurrent model and a Conv1D series model.

Each builder returns ``(module, example batch)``; :func:`export` writes the ``.pt2`` with a dynamic batch dimension.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def _seed(seed: int = 0):
    torch.manual_seed(seed)


class SequentialCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 7 * 7, 8)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return torch.softmax(self.out(self.drop(torch.relu(self.fc(self.flatten(self.features(x)))))), dim=1)


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return torch.relu(x + self.conv2(torch.relu(self.bn1(self.conv1(x)))))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block1 = ResBlock(4)
        self.block2 = ResBlock(4)
        self.head = nn.Linear(4 * 14 * 14, 5)

    def forward(self, x):
        x = self.block2(self.block1(torch.relu(self.stem(x))))
        return self.head(x.reshape(x.size(0), -1))  # the batch size, read before the cut


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.mid = nn.Conv2d(4, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)
        self.fuse = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):
        d = torch.relu(self.down(x))
        m = self.up(torch.relu(self.mid(self.pool(d))))
        return torch.sigmoid(self.fuse(torch.cat([d, m], dim=1)))


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(6, 8), nn.ReLU())
        self.bottleneck = nn.Linear(8, 3)
        self.classes = nn.Linear(3, 4)
        self.recon = nn.Linear(3, 6)

    def forward(self, x):
        z = self.bottleneck(self.trunk(x))
        return torch.softmax(self.classes(z), dim=1), self.recon(z)


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=True)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        return torch.softmax(self.fc(out[:, -1]), dim=1)


class RecurrentSkip(nn.Module):
    """A GRU with a connection around it: the GRU's value is a tuple (output, state), which the cut rule must follow
    like a tensor."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 5)
        self.gru = nn.GRU(5, 5, batch_first=True)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        h = torch.relu(self.embed(x))
        out, _ = self.gru(h)
        return torch.softmax(self.fc(out[:, -1] + h[:, 0]), dim=1)


class Series(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(3, 6, 5, padding=2)
        self.conv2 = nn.Conv1d(6, 6, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return torch.softmax(self.fc(self.pool(h).flatten(1)), dim=1)


BUILDERS = {
    "sequential": (SequentialCNN, (5, 1, 14, 14)),
    "residual": (Residual, (5, 1, 14, 14)),
    "unet": (UNet, (5, 1, 8, 8)),
    "two_heads": (TwoHeads, (5, 6)),
    "recurrent": (Recurrent, (5, 7, 3)),
    "recurrent_skip": (RecurrentSkip, (5, 7, 3)),
    "series": (Series, (5, 3, 16)),
}


def build(name: str, seed: int = 0):
    """``(module in eval mode, example batch)`` of the named kind, with seeded weights (BatchNorm statistics moved
    off their defaults so that eval mode matters)."""
    _seed(seed)
    cls, shape = BUILDERS[name]
    module = cls()
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return module.eval(), torch.rand(shape)


def export(module, example, path: Path, *, dynamic: bool = True) -> Path:
    """``torch.export.save`` of ``module`` (a dynamic batch unless ``dynamic`` is False)."""
    shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic else None
    program = torch.export.export(module, (example,), dynamic_shapes=shapes)
    torch.export.save(program, str(path))
    return path

"""Baseline keyword-spotting models: the seed thesis's CNN and LSTM, a small DS-CNN, and a
DeepThin-paper-style DNN whose wide Linear layers the later lessons compress.

Every model takes log-mel features of shape (batch, frames, n_mels) and starts with a
:class:`Standardize` layer whose per-band mean / std are set from the training set by
:func:`thinlab.train.fit`, so raw features go in everywhere.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import torch
from torch import nn

from thinlab.size import dense_bytes


class Standardize(nn.Module):
    """Per-band feature standardisation with mean / std kept as buffers (saved with the model).

    Input and output shape (batch, frames, n_mels).
    """

    def __init__(self, n_mels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    def set_stats(self, mean, std) -> None:
        """Copy per-band statistics (arrays of length n_mels) into the buffers."""
        mean = torch.as_tensor(mean, dtype=self.mean.dtype)
        std = torch.as_tensor(std, dtype=self.std.dtype).clamp_min(1e-5)
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ValueError(f"expected mean/std of shape {tuple(self.mean.shape)}, "
                             f"got {tuple(mean.shape)} / {tuple(std.shape)}")
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, x):
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def _check_input(x: torch.Tensor, n_frames: int, n_mels: int, name: str) -> None:
    if x.ndim != 3 or x.shape[1] != n_frames or x.shape[2] != n_mels:
        raise ValueError(f"{name} expects features of shape (batch, {n_frames}, {n_mels}), "
                         f"got {tuple(x.shape)}; compute them with thinlab.data.load_dataset "
                         "using the same feature parameters the model was built for")


class CNN(nn.Module):
    """The seed thesis's CNN: 4 conv layers (3x3, ReLU, 2x2 max-pool) with dropout, then 3 dense layers.

    Shapes: (B, frames, n_mels) → (B, 1, frames, n_mels) → conv stack → (B, C, f', m') → flatten →
    dense(hidden[0]) → dense(hidden[1]) → dense(n_classes).
    """

    def __init__(self, n_classes: int, *, n_frames: int = 101, n_mels: int = 40,
                 channels=(8, 16, 32, 64), hidden=(128, 64), dropout: float = 0.25):
        super().__init__()
        self.n_frames, self.n_mels = n_frames, n_mels
        self.norm = Standardize(n_mels)
        layers, c_in, f, m = [], 1, n_frames, n_mels
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            if f >= 2 and m >= 2:
                layers.append(nn.MaxPool2d(2))
                f, m = f // 2, m // 2
            c_in = c_out
        layers.append(nn.Dropout(dropout))
        self.features = nn.Sequential(*layers)
        self.flat_dim = c_in * f * m
        self.fc1 = nn.Linear(self.flat_dim, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], n_classes)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        _check_input(x, self.n_frames, self.n_mels, "CNN")
        h = self.features(self.norm(x).unsqueeze(1))  # (B, 1, frames, mels) → (B, C, f', m')
        h = h.flatten(1)  # (B, C·f'·m')
        h = self.drop(torch.relu(self.fc1(h)))
        h = self.drop(torch.relu(self.fc2(h)))
        return self.fc3(h)


class LSTM(nn.Module):
    """The seed thesis's LSTM: one LSTM layer over frames, then 2 dense layers.

    ``pool="max"`` (default) max-pools the hidden states over time; ``"last"`` takes the final
    state as the thesis did. On the real Speech Commands sample with the 20-epoch baseline budget
    the last state reached 23% test accuracy and max-pooling 84% (lesson 00's measurement): a
    keyword sits anywhere in the second, and the last state has to carry it through ~100 steps.
    """

    def __init__(self, n_classes: int, *, n_frames: int = 101, n_mels: int = 40,
                 hidden_size: int = 128, dense: int = 64, dropout: float = 0.2, pool: str = "max"):
        super().__init__()
        if pool not in ("max", "last"):
            raise ValueError(f"pool={pool!r}; choose 'max' (over time) or 'last' (final state)")
        self.n_frames, self.n_mels, self.pool = n_frames, n_mels, pool
        self.norm = Standardize(n_mels)
        self.lstm = nn.LSTM(n_mels, hidden_size, batch_first=True)
        self.fc1 = nn.Linear(hidden_size, dense)
        self.fc2 = nn.Linear(dense, n_classes)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        _check_input(x, self.n_frames, self.n_mels, "LSTM")
        out, _ = self.lstm(self.norm(x))  # (B, frames, hidden)
        h = out.amax(dim=1) if self.pool == "max" else out[:, -1]  # (B, hidden)
        h = self.drop(torch.relu(self.fc1(h)))
        return self.fc2(h)


class DSCNN(nn.Module):
    """A small depthwise-separable CNN (Zhang et al. 2017, "Hello Edge"): one strided conv, then
    `n_blocks` × (depthwise 3x3 + pointwise 1x1), global average pool, one dense layer."""

    def __init__(self, n_classes: int, *, n_frames: int = 101, n_mels: int = 40,
                 channels: int = 64, n_blocks: int = 4):
        super().__init__()
        self.n_frames, self.n_mels = n_frames, n_mels
        self.norm = Standardize(n_mels)
        blocks = [nn.Conv2d(1, channels, (10, 4), stride=(2, 2), padding=(5, 1)),
                  nn.BatchNorm2d(channels), nn.ReLU()]
        for _ in range(n_blocks):
            blocks += [nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
                       nn.BatchNorm2d(channels), nn.ReLU(),
                       nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU()]
        self.body = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, n_classes)

    def forward(self, x):
        _check_input(x, self.n_frames, self.n_mels, "DSCNN")
        h = self.body(self.norm(x).unsqueeze(1))  # (B, C, f', m')
        return self.fc(h.mean(dim=(2, 3)))  # global average pool → (B, C)


class DNN(nn.Module):
    """A DeepThin-paper-style DNN: stacked feature frames through several wide ReLU layers.

    The clip's frames are average-pooled in time by ``time_pool`` and stacked into one vector
    (B, frames // time_pool · n_mels), like TFKaldi's spliced frames, then go through
    ``hidden`` fully connected layers: the Linear layers that lessons 01-06 compress.
    """

    def __init__(self, n_classes: int, *, n_frames: int = 101, n_mels: int = 40,
                 hidden=(512, 512, 512), time_pool: int = 2, dropout: float = 0.1):
        super().__init__()
        self.n_frames, self.n_mels, self.time_pool = n_frames, n_mels, time_pool
        self.norm = Standardize(n_mels)
        self.in_dim = (n_frames // time_pool) * n_mels
        dims = [self.in_dim, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(dims[-1], n_classes)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        _check_input(x, self.n_frames, self.n_mels, "DNN")
        h = self.norm(x)
        f = (self.n_frames // self.time_pool) * self.time_pool
        h = h[:, :f].reshape(x.shape[0], f // self.time_pool, self.time_pool, self.n_mels)  # (B, f/p, p, mels)
        h = h.mean(2).flatten(1)  # (B, f/p · mels)
        for layer in self.hidden:
            h = self.drop(torch.relu(layer(h)))
        return self.out(h)


MODELS = {"cnn": CNN, "lstm": LSTM, "dscnn": DSCNN, "dnn": DNN}


def build_model(name: str, n_classes: int, **kwargs) -> nn.Module:
    """Build a baseline by name (``"cnn"``, ``"lstm"``, ``"dscnn"``, ``"dnn"``).

    Taught in: 00_speech_commands
    """
    key = name.lower()
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes={n_classes!r} must be an int ≥ 2 (10 for the 10-word task, 12 with "
                         "_unknown_ and _silence_)")
    model = MODELS[key](n_classes, **kwargs)
    model.thinlab_spec = {"name": key, "n_classes": n_classes, **kwargs}  # how to rebuild it (layers.io)
    return model


def n_params(model: nn.Module) -> int:
    """Number of trainable parameters. Taught in: 00_speech_commands"""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fp32_bytes(model: nn.Module) -> int:
    """Bytes of the dense model stored in float32: every parameter and every persistent buffer (the input
    standardisation's mean / std, batch-norm statistics), floats at 4 bytes, integer buffers at their width.

    This is the one definition of a dense model's bytes: it equals
    ``thinlab.nn.size_report(model).total_bytes`` for an uncompressed float32 model, and what
    ``save_compressed`` stores (less its fixed container overhead).

    Taught in: 00_speech_commands
    """
    total = 0
    for mod in model.modules():
        tensors = list(mod._parameters.values()) + [t for n, t in mod._buffers.items()
                                                    if n not in mod._non_persistent_buffers_set]
        for t in tensors:
            if t is not None:
                total += dense_bytes(tuple(t.shape), dtype="float32" if t.is_floating_point()
                                     else str(t.dtype).replace("torch.", ""))
    return total

"""Datasets for the front-end: scikit-learn digits (built in) and CIFAR-10/100 pickles.

A dataset is a :class:`Data` of four tensors (float32 NCHW inputs, int64 labels),
normalised, with a fixed train/test split; :func:`loader` wraps a split in a
seeded ``DataLoader`` so runs are deterministic.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["Data", "DataError", "load_digits", "load_cifar", "load_data", "loader", "DATA_NAMES"]

DATA_NAMES = ("digits", "digits32", "cifar10:<dir>", "cifar100:<dir>")


class DataError(ValueError):
    """A dataset argument or file is invalid; the message is one line."""


@dataclass
class Data:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "Data":
        """The first ``n_train`` / ``n_test`` samples (for quick runs)."""
        return Data(self.name, self.x_train[:n_train], self.y_train[:n_train],
                    self.x_test[:n_test], self.y_test[:n_test], self.num_classes)


def _upscale(x: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.repeat(1, channels // x.shape[1], 1, 1) if channels != x.shape[1] else x


def load_digits(seed: int = 0, test_fraction: float = 0.25, size: int = 8, channels: int = 1) -> Data:
    """scikit-learn's 8x8 digits (1797 samples, 10 classes), stratified fixed-seed split.

    Pixels 0..16 are normalised with the training set's mean and standard
    deviation. ``size=32, channels=3`` upscales (bilinear) and repeats the
    channel for the CIFAR-size zoo networks.
    """
    try:
        from sklearn.datasets import load_digits as _ld
        from sklearn.model_selection import train_test_split
    except ImportError:  # pragma: no cover
        raise DataError("data: digits needs scikit-learn (pip install scikit-learn)") from None
    d = _ld()
    x = d.images.astype(np.float32)[:, None]  # (n, 1, 8, 8)
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    mean, std = float(xtr.mean()), float(xtr.std())
    xtr, xte = (torch.from_numpy((a - mean) / std) for a in (xtr, xte))
    if size != 8 or channels != 1:
        xtr, xte = _upscale(xtr, size, channels), _upscale(xte, size, channels)
    name = "digits" if size == 8 and channels == 1 else f"digits{size}"
    return Data(name, xtr.contiguous(), torch.from_numpy(ytr), xte.contiguous(), torch.from_numpy(yte), 10)


_CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
_CIFAR_STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise DataError(f"{path}: not a CIFAR python pickle ({type(e).__name__})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: not a CIFAR python pickle (top level is not a dict)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def _arrays(path: Path, label_key: str):
    d = _unpickle(path)
    for k in ("data", label_key):
        if k not in d:
            raise DataError(f"{path}: {k}: missing key (CIFAR python format needs 'data' and '{label_key}')")
    x = np.asarray(d["data"], dtype=np.uint8)
    y = np.asarray(d[label_key], dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != 3072 or len(y) != len(x):
        raise DataError(f"{path}: data: must be (n, 3072) uint8 with n labels, got {x.shape} and {len(y)} labels")
    return x, y


def load_cifar(root: str | Path, kind: str = "cifar10") -> Data:
    """CIFAR-10 / CIFAR-100 from the python-pickle distribution in ``root``.

    CIFAR-10: ``data_batch_1`` .. ``data_batch_5`` (those present) and
    ``test_batch`` (labels key ``labels``). CIFAR-100: ``train`` and ``test``
    (labels key ``fine_labels``). Normalised with the usual CIFAR statistics.
    """
    root = Path(root)
    if kind not in ("cifar10", "cifar100"):
        raise DataError(f"data: kind must be cifar10 or cifar100, got {kind!r}")
    if not root.is_dir():
        raise DataError(f"{root}: no such directory (expected the CIFAR python-pickle files)")
    if kind == "cifar10":
        train_files = sorted(root.glob("data_batch_*"))
        test_file, label_key, ncls = root / "test_batch", "labels", 10
        if not train_files:
            raise DataError(f"{root}: data_batch_1: missing (CIFAR-10 python format)")
    else:
        train_files, test_file, label_key, ncls = [root / "train"], root / "test", "fine_labels", 100
    parts = [_arrays(p, label_key) for p in train_files]
    xtr, ytr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    xte, yte = _arrays(test_file, label_key)
    for y, p in ((ytr, root), (yte, test_file)):
        if y.size and (y.min() < 0 or y.max() >= ncls):
            raise DataError(f"{p}: {label_key}: labels must lie in [0, {ncls - 1}]")

    def norm(x):
        x = x.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
        return torch.from_numpy((x - _CIFAR_MEAN[:, None, None]) / _CIFAR_STD[:, None, None])

    return Data(kind, norm(xtr), torch.from_numpy(ytr), norm(xte), torch.from_numpy(yte), ncls)


def load_data(spec: str, seed: int = 0, size: int | None = None) -> Data:
    """Dataset from a command-line spec: ``digits``, ``digits32`` (3x32x32),
    ``cifar10:<dir>`` or ``cifar100:<dir>``. ``size=32`` turns ``digits`` into ``digits32``.
    """
    s = str(spec)
    if s == "digits":
        return load_digits(seed) if size in (None, 8) else load_digits(seed, size=size, channels=3)
    if s == "digits32":
        return load_digits(seed, size=32, channels=3)
    for kind in ("cifar10", "cifar100"):
        if s.startswith(kind + ":"):
            return load_cifar(s[len(kind) + 1:], kind)
    raise DataError(f"--data: unknown dataset {spec!r}; allowed: {', '.join(DATA_NAMES)}")


def loader(x: torch.Tensor, y: torch.Tensor, batch_size: int = 64, shuffle: bool = False, seed: int = 0):
    """A deterministic DataLoader over tensors (seeded shuffling, no workers)."""
    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=g)

"""Datasets for the front-end: scikit-learn digits (built in), CIFAR-10/100 pickles,
``.npz`` files and the user's own tensors, Datasets and DataLoaders.

A dataset is a :class:`Data` of four tensors (float inputs of any shape, int64
labels) with a fixed train/test split; :func:`loader` wraps a split in a
seeded ``DataLoader`` so runs are deterministic. :func:`as_data` turns what a
user hands to ``run_flow`` into a :class:`Data`: a torch ``Dataset`` or
``DataLoader`` is read once, in order, into tensors (so its transforms run
once; the flow's seeded loader then shuffles and batches).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from dbpim.model.torch.zoo import MAX_CLASSES

__all__ = ["Data", "DataError", "load_digits", "load_cifar", "load_npz", "load_data", "as_data", "loader",
           "DATA_NAMES", "CIFAR_PICKLE_GLOBALS"]

DATA_NAMES = ("digits", "digits32", "cifar10:<dir>", "cifar100:<dir>", "<file>.npz")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


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


#: The only globals a CIFAR python batch may name: numpy's array, dtype and scalar
#: reconstruction (``numpy.core`` before NumPy 2, ``numpy._core`` after; ``_frombuffer``
#: is pickle protocol 5's array form) and ``_codecs.encode`` (how Python 3 writes bytes at
#: protocols 0 to 2). Anything else in the file is refused unrun.
CIFAR_PICKLE_GLOBALS = frozenset({
    ("_codecs", "encode"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
})


class _Refused(pickle.UnpicklingError):
    """A global outside :data:`CIFAR_PICKLE_GLOBALS`; never imported, never called."""


class _CifarUnpickler(pickle.Unpickler):
    """Reads plain data and numpy arrays only: ``find_class`` allows :data:`CIFAR_PICKLE_GLOBALS`."""

    def find_class(self, module, name):
        if (module, name) not in CIFAR_PICKLE_GLOBALS:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    """A CIFAR python batch as a dict with str keys, read without running any code from the file.

    Raises
    ------
    DataError
        One line naming ``path``: missing, not a pickle, not a dict, or naming
        a global outside :data:`CIFAR_PICKLE_GLOBALS` (refused before it is imported).
    """
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except _Refused as e:
        raise DataError(f"{path}: refused: the pickle names {e}, which a CIFAR batch never holds (only numpy "
                        "arrays, lists, bytes and numbers are read; nothing in the file is run)") from None
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
    The pickles are read by a restricted unpickler (:data:`CIFAR_PICKLE_GLOBALS`):
    a file naming any other global is refused before anything in it runs.
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


def _labels(y, where: str) -> torch.Tensor:
    y = torch.as_tensor(np.asarray(y))
    if y.dtype.is_floating_point:
        if not bool(torch.all(y == torch.round(y))):
            raise DataError(f"{where}: labels must be integers (class indices), got non-integral floats")
    elif y.dtype == torch.bool or y.dtype.is_complex:
        raise DataError(f"{where}: labels must be integers (class indices), got {y.dtype}")
    y = y.long()
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be one class index per sample (1-D), got shape {tuple(y.shape)}")
    if y.numel() and int(y.min()) < 0:
        raise DataError(f"{where}: labels must be >= 0, found {int(y.min())}")
    return y


def _inputs(x, where: str) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if x.ndim < 2:
        raise DataError(f"{where}: inputs must have a sample axis and at least one more, got shape {tuple(x.shape)}")
    if x.dtype.is_floating_point:
        if not bool(torch.isfinite(x).all()):
            raise DataError(f"{where}: inputs hold NaN or inf")
        return x.float()
    if x.dtype == torch.bool or x.dtype.is_complex:
        raise DataError(f"{where}: inputs must be numbers, got {x.dtype}")
    return x.float() if x.dtype == torch.uint8 else x.long()  # uint8: pixels; other integers: indices (tokens)


def _pair(xtr, ytr, xte, yte, name: str, where: str, num_classes: int | None = None) -> Data:
    xtr, xte = _inputs(xtr, f"{where}: x_train"), _inputs(xte, f"{where}: x_test")
    ytr, yte = _labels(ytr, f"{where}: y_train"), _labels(yte, f"{where}: y_test")
    for x, y, s in ((xtr, ytr, "train"), (xte, yte, "test")):
        if len(x) != len(y) or len(x) == 0:
            raise DataError(f"{where}: x_{s} and y_{s} must hold the same number (> 0) of samples, "
                            f"got {len(x)} and {len(y)}")
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(f"{where}: x_train and x_test must have the same per-sample shape, got "
                        f"{tuple(xtr.shape[1:])} and {tuple(xte.shape[1:])}")
    top = int(max(int(ytr.max()), int(yte.max())))
    if num_classes is not None and top >= num_classes:
        raise DataError(f"{where}: labels must lie in [0, {num_classes}) (the data's classes), found {top}")
    if top >= MAX_CLASSES:
        raise DataError(f"{where}: labels must lie in [0, {MAX_CLASSES}) (a network has at most {MAX_CLASSES} "
                        f"classes: one per label 0..max), found {top}")
    if num_classes is None and top + 1 > len(ytr):
        raise DataError(f"{where}: labels must be class indices 0..n_classes-1 with at most one class per training "
                        f"sample; the largest label {top} makes {top + 1} classes for {len(ytr)} training samples")
    ncls = num_classes or top + 1
    return Data(name, xtr.contiguous(), ytr, xte.contiguous(), yte, max(2, ncls))


def load_npz(path: str | Path) -> Data:
    """A dataset from an ``.npz`` with arrays ``x_train, y_train, x_test, y_test``
    (inputs of any numeric dtype and shape, integer class labels); used as is (not normalised)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data: {path}: file not found (an .npz with {', '.join(NPZ_KEYS)})")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same error
        raise DataError(f"data: {path}: not a readable .npz ({type(e).__name__})") from None
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise DataError(f"data: {path}: missing array '{missing[0]}' (an .npz needs {', '.join(NPZ_KEYS)})")
    return _pair(*(arrays[k] for k in NPZ_KEYS), name=path.stem, where=f"data: {path}")


def _read_split(src, where: str):
    """(x, y) of one split given as a pair of tensors/arrays, a Dataset or a DataLoader."""
    from torch.utils.data import DataLoader, Dataset
    if isinstance(src, (tuple, list)) and len(src) == 2 and not isinstance(src[0], (tuple, list)):
        return src
    if isinstance(src, Dataset) and not isinstance(src, DataLoader):
        try:
            n = len(src)
        except TypeError:
            raise DataError(f"{where}: a Dataset must have a length (map-style)") from None
        items = [src[i] for i in range(n)]
    elif isinstance(src, DataLoader):
        items = None
        xs, ys = [], []
        for b in src:
            if not isinstance(b, (tuple, list)) or len(b) != 2:
                raise DataError(f"{where}: a DataLoader batch must be an (inputs, labels) pair")
            xs.append(torch.as_tensor(b[0]))
            ys.append(torch.as_tensor(b[1]))
        if not xs:
            raise DataError(f"{where}: the DataLoader is empty")
        return torch.cat(xs), torch.cat(ys)
    else:
        raise DataError(f"{where}: must be an (x, y) pair of tensors or arrays, a torch Dataset or a DataLoader, "
                        f"got {type(src).__name__}")
    if not items or not all(isinstance(it, (tuple, list)) and len(it) == 2 for it in items):
        raise DataError(f"{where}: every Dataset item must be an (input, label) pair")
    return torch.stack([torch.as_tensor(it[0]) for it in items]), torch.as_tensor(
        np.asarray([int(it[1]) for it in items]))


def as_data(data, seed: int = 0, size: int | None = None) -> Data:
    """The :class:`Data` of anything ``run_flow`` accepts as ``data``.

    Parameters
    ----------
    data : str, Data, dict, tuple
        A command-line spec (:func:`load_data`); a :class:`Data`; a dict with
        ``train`` and ``test``; a (train, test) pair; or four arrays
        (x_train, y_train, x_test, y_test). A split is an (x, y) pair of
        tensors/arrays, a map-style ``Dataset`` of (input, label) items, or a
        ``DataLoader`` of (inputs, labels) batches.
    seed, size : see :func:`load_data`.

    Raises
    ------
    DataError
        One line naming the split and what is accepted.
    """
    if isinstance(data, Data):
        return data
    if isinstance(data, (str, Path)):
        return load_data(str(data), seed, size)
    if isinstance(data, dict):
        if set(data) >= {"train", "test"}:
            tr, te = data["train"], data["test"]
        elif set(data) >= set(NPZ_KEYS):
            return _pair(*(data[k] for k in NPZ_KEYS), name="user", where="data")
        else:
            raise DataError("data: a dict needs keys 'train' and 'test' (or x_train, y_train, x_test, y_test)")
    elif isinstance(data, (tuple, list)) and len(data) == 4:
        return _pair(*data, name="user", where="data")
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        tr, te = data
    else:
        raise DataError(f"data: must be a dataset name, an .npz path, (train, test) or a dict of them, "
                        f"got {type(data).__name__}")
    (xtr, ytr), (xte, yte) = _read_split(tr, "data: train"), _read_split(te, "data: test")
    return _pair(xtr, ytr, xte, yte, name="user", where="data")


def load_data(spec: str, seed: int = 0, size: int | None = None) -> Data:
    """Dataset from a command-line spec: ``digits``, ``digits32`` (3x32x32),
    ``cifar10:<dir>``, ``cifar100:<dir>`` or a ``.npz`` file (:func:`load_npz`).
    ``size=32`` turns ``digits`` into ``digits32``.
    """
    s = str(spec)
    if s.endswith(".npz"):
        return load_npz(s)
    if s == "digits":
        return load_digits(seed) if size in (None, 8) else load_digits(seed, size=size, channels=3)
    if s == "digits32":
        return load_digits(seed, size=32, channels=3)
    for kind in ("cifar10", "cifar100"):
        if s.startswith(kind + ":"):
            return load_cifar(s[len(kind) + 1:], kind)
    raise DataError(f"data: unknown dataset {spec!r}; allowed: {', '.join(DATA_NAMES)}")


def loader(x: torch.Tensor, y: torch.Tensor, batch_size: int = 64, shuffle: bool = False, seed: int = 0):
    """A deterministic DataLoader over tensors (seeded shuffling, no workers)."""
    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=g)

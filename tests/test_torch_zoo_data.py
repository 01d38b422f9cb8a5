"""Model zoo and datasets of the PyTorch front-end."""

import pickle

import numpy as np
import pytest
import torch
import torch.fx as fx

from dbpim.model.torch.data import DataError, load_cifar, load_data, load_digits, loader
from dbpim.model.torch.zoo import MODELS, get_model, input_size

torch.set_num_threads(2)


@pytest.mark.parametrize("name", list(MODELS))
def test_zoo_forward_and_trace(name):
    torch.manual_seed(0)
    net = get_model(name, num_classes=7, width=0.125).eval()
    s = input_size(name)
    x = torch.randn(2, 1 if name == "smallcnn" else 3, s, s)
    assert net(x).shape == (2, 7)
    fx.symbolic_trace(net)


def test_zoo_names_and_errors():
    assert get_model("ResNet-18", 10, width=0.125) is not None
    with pytest.raises(ValueError, match="allowed: smallcnn"):
        get_model("lenet")
    with pytest.raises(ValueError, match="num_classes"):
        get_model("smallcnn", num_classes=1)
    big, small = get_model("vgg19", 10), get_model("vgg19", 10, width=0.25)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in big.parameters()) / 8


def test_digits_split_fixed_and_normalised():
    a, b = load_digits(0), load_digits(0)
    assert a.x_train.shape[1:] == (1, 8, 8) and a.num_classes == 10
    assert len(a.x_train) + len(a.x_test) == 1797
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert abs(float(a.x_train.mean())) < 1e-4 and abs(float(a.x_train.std()) - 1) < 1e-2
    c = load_digits(1)
    assert not torch.equal(a.y_test, c.y_test)
    d = load_data("digits32")
    assert d.x_train.shape[1:] == (3, 32, 32) and d.name == "digits32"
    assert torch.equal(load_data("digits", size=32).x_test, d.x_test)
    xb, yb = next(iter(loader(a.x_train, a.y_train, 16, shuffle=True, seed=3)))
    xb2, _ = next(iter(loader(a.x_train, a.y_train, 16, shuffle=True, seed=3)))
    assert torch.equal(xb, xb2) and xb.shape == (16, 1, 8, 8)


def _write_cifar(path, n, key, ncls, rng):
    d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), key: list(rng.integers(0, ncls, n))}
    with open(path, "wb") as f:
        pickle.dump(d, f)


def test_cifar10_and_100_pickles(tmp_path):
    rng = np.random.default_rng(0)
    c10 = tmp_path / "c10"
    c10.mkdir()
    _write_cifar(c10 / "data_batch_1", 5, b"labels", 10, rng)
    _write_cifar(c10 / "data_batch_2", 4, b"labels", 10, rng)
    _write_cifar(c10 / "test_batch", 3, b"labels", 10, rng)
    d = load_data(f"cifar10:{c10}")
    assert d.x_train.shape == (9, 3, 32, 32) and d.x_test.shape == (3, 3, 32, 32) and d.num_classes == 10
    c100 = tmp_path / "c100"
    c100.mkdir()
    _write_cifar(c100 / "train", 6, b"fine_labels", 100, rng)
    _write_cifar(c100 / "test", 2, b"fine_labels", 100, rng)
    d = load_cifar(c100, "cifar100")
    assert d.y_train.dtype == torch.int64 and d.num_classes == 100 and len(d.x_test) == 2


def test_cifar_errors(tmp_path):
    with pytest.raises(DataError, match="no such directory"):
        load_cifar(tmp_path / "nope")
    (tmp_path / "train").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a CIFAR python pickle"):
        load_cifar(tmp_path, "cifar100")
    with open(tmp_path / "train", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 10), np.uint8), b"fine_labels": [0, 1]}, f)
    with pytest.raises(DataError, match="3072"):
        load_cifar(tmp_path, "cifar100")
    with pytest.raises(DataError, match="^data: unknown dataset"):
        load_data("mnist")


class _Payload:
    """Unpickling this runs ``func(*args)``: what a crafted data file would do with plain pickle.load."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("payload", ["os.system", "builtins.open", "builtins.exec", "subprocess.Popen"])
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_cifar_pickle_payload_is_refused_unrun(tmp_path, payload, protocol):
    """A data_batch_1 whose pickle would run code is refused with one line, and the code never runs."""
    import builtins
    import os
    import subprocess
    marker = tmp_path / "pwned"
    func, args = {"os.system": (os.system, (f"touch {marker}",)),
                  "builtins.open": (builtins.open, (str(marker), "w")),
                  "builtins.exec": (builtins.exec, (f"open({str(marker)!r}, 'w')",)),
                  "subprocess.Popen": (subprocess.Popen, (["touch", str(marker)],))}[payload]
    root = tmp_path / "c10"
    root.mkdir()
    rng = np.random.default_rng(1)
    d = {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [1, 2], b"evil": _Payload(func, args)}
    with open(root / "data_batch_1", "wb") as f:
        pickle.dump(d, f, protocol=protocol)
    _write_cifar(root / "test_batch", 2, b"labels", 10, rng)
    with pytest.raises(DataError) as e:
        load_cifar(root)
    msg = str(e.value)
    assert "\n" not in msg and str(root / "data_batch_1") in msg
    assert "refused: the pickle names " in msg and f".{func.__qualname__}, which a CIFAR batch never" in msg
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_cifar_genuine_layout_loads_at_every_protocol(tmp_path, protocol):
    """The real CIFAR-10 batch layout (bytes keys; data uint8 ndarray; labels ints; batch_label bytes;
    filenames a list of bytes) loads through the restricted unpickler at every pickle protocol."""
    root = tmp_path / "c10"
    root.mkdir()
    rng = np.random.default_rng(2)
    for name, n in (("data_batch_1", 3), ("test_batch", 2)):
        d = {b"batch_label": b"training batch 1 of 5", b"labels": [int(v) for v in rng.integers(0, 10, n)],
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
        with open(root / name, "wb") as f:
            pickle.dump(d, f, protocol=protocol)
    data = load_cifar(root)
    assert data.x_train.shape == (3, 3, 32, 32) and len(data.y_test) == 2

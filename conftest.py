"""Shared pytest fixtures: a seeded RNG whose seed is printed on failure, and small compiled artifacts."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A numpy Generator; seed from DBPIM_SEED or fresh, reported on failure.

    Re-run a failure with ``DBPIM_SEED=<seed> pytest <test id>``.
    """
    seed = int(os.environ.get("DBPIM_SEED", random.SystemRandom().randrange(2**32)))
    request.node.user_properties.append(("seed", seed))
    print(f"random seed: DBPIM_SEED={seed}")
    return np.random.default_rng(seed)


@pytest.fixture(autouse=True)
def record_rtl_seed(request):
    """Every cocotb run's seed (``verif.rtl.run_cocotb``) becomes a property of the test: in the JUnit XML
    (``<property name="seed">``) and in the failure report."""
    try:
        import dbpim.verif.rtl as rtl
    except ImportError:  # the hw extra is missing
        yield
        return
    rtl.SEED_SINK = request.node.user_properties
    try:
        yield
    finally:
        rtl.SEED_SINK = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for k, v in item.user_properties:
            if k == "seed":
                rep.sections.append(("random seed", f"reproduce with DBPIM_SEED={v}"))



# --------------------------------------------------------------------------- functional coverage summary

_SESSION_START = []

# ``DBPIM_HW`` (``make test-rtl HW=...``) may be a path relative to where pytest starts; the cocotb simulators
# run in their build folders and take this process's environment over the one a test passes them, so the
# path is made absolute once, here, before any worker or simulator inherits it.
if (_hw := os.environ.get("DBPIM_HW", "").strip()) and Path(_hw).is_file():
    os.environ["DBPIM_HW"] = str(Path(_hw).resolve())


def pytest_sessionstart(session):
    import time
    _SESSION_START.append(time.time())


def pytest_terminal_summary(terminalreporter):
    """After a run that wrote functional coverage reports (``build/coverage/<unit>/coverage.json``, verif.coverage):
    one line per report written by this run (required bins hit / required, missing) and the total."""
    import json
    folder = Path(__file__).resolve().parent / "build" / "coverage"
    if not _SESSION_START or not folder.is_dir():
        return
    docs = []
    for f in sorted(folder.glob("*/coverage.json")):
        if f.stat().st_mtime >= _SESSION_START[0] - 1:
            try:
                docs.append((f.parent.name, json.loads(f.read_text())))
            except ValueError:
                docs.append((f.parent.name, None))
    if not docs:
        return
    tr = terminalreporter
    tr.section("functional coverage (build/coverage)")
    total = bad = 0
    for name, doc in docs:
        if doc is None:
            tr.write_line(f"{name}: coverage.json unreadable")
            bad += 1
            continue
        n = sum(len(v) for v in doc["required"].values())
        total, bad = total + n, bad + len(doc["unhit"])
        tr.write_line(f"{name}: {n - len(doc['unhit'])} / {n} required bins hit, {len(doc['unhit'])} missing"
                      + (f" ({', '.join(doc['unhit'])})" if doc["unhit"] else ""))
    tr.write_line(f"coverage summary: {len(docs)} reports, {total - bad} / {total} required bins hit, {bad} missing")


# --------------------------------------------------------------------------- real compiled networks

ROOT = __import__("pathlib").Path(__file__).resolve().parent
#: The demo network (small CNN on digits, tiny schedule) and zoo networks (ResNet-18 and MobileNetV2 at width 1/8
#: and 1/4, real digits32 inputs; the residual and depthwise ones of tests/test_chip_zoo.py).
REAL_NETWORKS = {
    "smallcnn": dict(model="smallcnn", data="digits", epochs=4, finetune_epochs=0.5, qat_epochs=0.5, n_train=256,
                     n_test=128, width=0.5),
    "resnet18": dict(model="resnet18", data="digits32", epochs=0, finetune_epochs=0, qat_epochs=0, n_train=64,
                     n_test=32, width=0.125, n_record=1),
    # ResNet-18 at the zoo's width (dbpim compile --all-zoo): WMEM past the host's former 16-bit reach
    "resnet18-w0.25": dict(model="resnet18", data="digits32", epochs=0, finetune_epochs=0, qat_epochs=0, n_train=64,
                           n_test=32, width=0.25, n_record=1),
    # trained one epoch: untrained, a depthwise layer's BatchNorm folds to a weight scale so small that its integer
    # bias passes the chip's 2**30 (model.chip refuses it)
    "mobilenetv2": dict(model="mobilenetv2", data="digits32", epochs=1, finetune_epochs=0, qat_epochs=0, n_train=64,
                        n_test=32, width=0.125, n_record=1),
    # MobileNetV2 at the zoo's width: 79,872 live ACT elements, more than the ISA addresses (activation spilling)
    "mobilenetv2-w0.25": dict(model="mobilenetv2", data="digits32", epochs=1, finetune_epochs=0, qat_epochs=0,
                              n_train=64, n_test=32, width=0.25, n_record=1),
}


def real_artifact(name: str, hw: str = "small"):
    """A compiled artifact of :data:`REAL_NETWORKS` for a shipped ``hw`` configuration (or a YAML path), built
    once and cached in build/test-artifacts.

    The cache key hashes the golden model, the front-end and the configurations,
    so a change to any of them rebuilds it; parallel workers wait on a lock.
    """
    import fcntl
    import hashlib

    pytest.importorskip("torch")
    from dbpim.model.config import load_config
    from dbpim.model.torch.flow import FlowOptions, run_flow

    hw_path = Path(hw) if Path(hw).is_file() else ROOT / "hw" / "configs" / f"{hw}.yaml"
    src = sorted((ROOT / "model").rglob("*.py")) + sorted((ROOT / "hw" / "configs").glob("*.yaml"))
    src += [] if hw_path.parent == ROOT / "hw" / "configs" else [hw_path]  # a YAML outside the shipped ones
    key = hashlib.sha256(b"".join(p.read_bytes() for p in src) + repr((REAL_NETWORKS[name], hw)).encode()).hexdigest()
    cache = ROOT / "build" / "test-artifacts"
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"{name}-{hw_path.stem}-{key[:12]}"
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "artifact" / "manifest.yaml").is_file():
            kw = dict(REAL_NETWORKS[name])
            run_flow(kw.pop("model"), kw.pop("data"), load_config(hw_path),
                     FlowOptions(sparsity=0.5, seed=0, compare=False, plots=False, progress=False, **kw), out=out)
    return out / "artifact"


def small_verilog(tmp_path: Path | None = None) -> Path:
    """Every block of the small configuration's Verilog (behavioural memories, no prefix: ``dbpim verilog --hw
    small --prefix ''``), generated once per :func:`verif.rtl.generator_key` and cached in build/test-verilog,
    so the tests that only read it (lint, the C headers and drivers) share one generation. With ``tmp_path``,
    a copy there that the test may change; else the cached folder, which a test must not write into."""
    import fcntl
    import shutil

    pytest.importorskip("amaranth")
    from dbpim.hw.generate import generate
    from dbpim.model.config import load_config
    from dbpim.verif.rtl import generator_key

    hw = load_config("small")
    cache = ROOT / "build" / "test-verilog"
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"small-{generator_key('all', hw, 'behavioural')[:16]}"
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "manifest.json").is_file():
            tmp = cache / f".{out.name}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            generate(hw, tmp, prefix="")
            tmp.rename(out)
    if tmp_path is None:
        return out
    shutil.copytree(out, tmp_path / "verilog")
    return tmp_path / "verilog"


@pytest.fixture(scope="session")
def real_artifacts():
    """(demo network artifact, zoo network artifact) for the small configuration (``DBPIM_HW`` when set)."""
    hw = os.environ.get("DBPIM_HW", "").strip() or "small"
    return real_artifact("smallcnn", hw=hw), real_artifact("resnet18", hw=hw)


@pytest.fixture(scope="session")
def paper_artifact():
    """The demo network compiled for the paper configuration (the paper-size core and macro)."""
    return real_artifact("smallcnn", hw="paper")


def _save_digits_artifact(folder, n_samples: int = 4, edit=None):
    """Save the digits MLP (real trained layers on the paper macro) as an artifact in ``folder``.

    ``edit(records)`` may return changed records before they are saved.
    Returns the artifact's path.
    """
    from dbpim.model import artifact, examples
    from dbpim.model.config import load_config
    from dbpim.sim_bench import synth
    hw = load_config("paper")
    recs = examples.to_records(synth.digits_real_layers(hw.macro, n_samples=n_samples))
    return artifact.save(folder, "digits-mlp", hw.macro, edit(recs) if edit else recs, meta={"data": "digits"})


@pytest.fixture(scope="session")
def save_digits_artifact():
    """The function that saves the small digits-MLP artifact: ``save_digits_artifact(folder, n_samples=4, edit=None)``."""
    return _save_digits_artifact

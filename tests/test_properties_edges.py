"""Property tests of the edges: mutated hardware YAMLs, mutated artifacts and random CLI numbers.

Whatever hypothesis draws, a command ends in one of two ways:

* exit status 2 with exactly one line on stderr, ``dbpim <command>: ...``
  (never a traceback), or
* exit status 0 with a report whose every number is finite and whose JSON
  is strict (``NaN`` / ``Infinity`` refused by the parser).

Hangs fail through pytest-timeout. The artifact is the digits MLP of the
conftest (real trained layers, no training here), so one run takes a fraction
of a second.
"""

from __future__ import annotations

import copy
import json
import math
import os

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import _save_digits_artifact  # noqa: E402
from dbpim import cli  # noqa: E402
from dbpim.model.config import CONFIG_DIR  # noqa: E402

#: ``make test`` draws a fixed set of examples (derandomized: the same on every machine, so CI does not depend
#: on luck); DBPIM_EXPLORE=1 draws 10x as many fresh random ones to look for new failures.
EXPLORE = os.environ.get("DBPIM_EXPLORE") == "1"
SETTINGS = settings(max_examples=1000 if EXPLORE else 100, deadline=None, derandomize=not EXPLORE,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: Values a careless or hostile edit puts into a numeric field.
WILD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e-300, 1e300, 0, -1, 0.5, 2**62, 2**63, -2**63]),
    st.integers(min_value=-2**70, max_value=2**70),
    st.booleans(), st.none(), st.text(max_size=6), st.lists(st.integers(0, 9), max_size=2),
)


def _strict(text: str):
    def refuse(c):
        raise ValueError(f"non-standard JSON constant {c}")
    return json.loads(text, parse_constant=refuse)


def _finite_everywhere(obj, path="$"):
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return
    if isinstance(obj, (int, float)):
        assert math.isfinite(obj), f"{path} = {obj}"
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _finite_everywhere(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _finite_everywhere(v, f"{path}[{i}]")


def _run(argv, capsys):
    capsys.readouterr()
    rc = cli.main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _check_outcome(rc, out, err, command, out_dir=None):
    assert "Traceback" not in err and "Traceback" not in out, err
    assert rc in (0, 2), (rc, err)
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"dbpim {command}: "), err
        return
    for word in ("nan", "inf"):  # "nan%", "infx", "inf TOPS": never printed as a figure
        assert not any(t.strip("%x(),").lower() == word for t in out.split()), out
    if out_dir is not None:
        summary = _strict((out_dir / "summary.json").read_text())
        _finite_everywhere(summary)


@pytest.fixture(scope="module")
def mlp_artifact(tmp_path_factory):
    return _save_digits_artifact(tmp_path_factory.mktemp("mlp") / "artifact")


@pytest.fixture(scope="module")
def paper_doc():
    return yaml.safe_load((CONFIG_DIR / "paper.yaml").read_text())


_SECTIONS = ("macro", "system", "energy", "core")
_PAPER = yaml.safe_load((CONFIG_DIR / "paper.yaml").read_text())
#: every (section, key) of the paper configuration, plus an unknown key
_KEYS = [(s, k) for s in _SECTIONS for k in sorted(_PAPER.get(s) or {})] + [("system", "not_a_key")]


@SETTINGS
@given(target=st.sampled_from(_KEYS), action=st.sampled_from(["set", "set", "set", "delete"]), value=WILD)
@example(target=("energy", "static_mw"), action="set", value=float("inf"))  # was "energy saving nan%"
@example(target=("system", "freq_mhz"), action="set", value=float("inf"))  # was "peak inf TOPS"
@example(target=("system", "dram_bytes_per_cycle"), action="set", value=1e-300)  # int64 overflow
@example(target=("system", "cores"), action="set", value=2**62)  # was a traceback
def test_bench_on_a_mutated_hardware_yaml(tmp_path_factory, mlp_artifact, paper_doc, capsys, target, action, value):
    doc = copy.deepcopy(paper_doc)
    section, key = target
    if action == "delete" and key in doc[section]:
        del doc[section][key]
    else:
        doc[section][key] = value
    d = tmp_path_factory.mktemp("hw")
    (d / "mine.yaml").write_text(yaml.safe_dump(doc))
    rc, out, err = _run(["bench", "--artifact", str(mlp_artifact), "--hw", str(d / "mine.yaml"),
                         "--out", str(d / "out"), "--no-plots"], capsys)
    _check_outcome(rc, out, err, "bench", d / "out")


@SETTINGS
@given(data=st.data())
def test_bench_on_a_mutated_artifact_manifest(tmp_path_factory, mlp_artifact, capsys, data):
    import shutil
    d = tmp_path_factory.mktemp("art")
    art = d / "artifact"
    shutil.copytree(mlp_artifact, art)
    man = yaml.safe_load((art / "manifest.yaml").read_text())
    where = data.draw(st.sampled_from(["top", "hw", "layer"]), label="where")
    if where == "top":
        target = man
    elif where == "hw":
        target = man["hw"]
    else:
        target = man["layers"][data.draw(st.integers(0, len(man["layers"]) - 1), label="layer")]
    key = data.draw(st.sampled_from(sorted(target)), label="key")
    if data.draw(st.booleans(), label="delete"):
        del target[key]
    else:
        target[key] = data.draw(st.one_of(WILD, st.just([]), st.just({})), label="value")
    (art / "manifest.yaml").write_text(yaml.safe_dump(man))
    rc, out, err = _run(["bench", "--artifact", str(art), "--hw", "paper", "--out", str(d / "out"), "--no-plots"],
                        capsys)
    _check_outcome(rc, out, err, "bench", d / "out")


#: (command, option) pairs whose number is parsed before anything slow runs; the rest of the command line
#: names an input that does not exist, so a valid number ends in that input's one-line refusal.
NUMBER_OPTIONS = [("compile", o) for o in ("--sparsity", "--seed", "--epochs", "--finetune-epochs", "--qat-epochs",
                                           "--lr", "--batch-size", "--phi-max", "--width")] + [
    ("paper-nets", "--sparsity"), ("paper-nets", "--record"), ("paper-nets", "--seed"),
    ("sweep", "--sparsity"), ("sweep", "--phi-max"), ("sweep", "--workers"),
    ("demo", "--sparsity"), ("verify", "--samples"), ("verify", "--vectors"),
]

_NUMBER_TEXT = st.one_of(
    st.sampled_from(["inf", "-inf", "nan", "NaN", "1e309", "1e-300", "-1", "0", "1.5", "0.999999", "1", "2**62",
                     "1e6", "", " ", "0x10", "1_000", "½"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-2**70, 2**70).map(str),
    st.text(max_size=5),
)


@settings(max_examples=600 if EXPLORE else 60, deadline=None, derandomize=not EXPLORE,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=st.sampled_from(NUMBER_OPTIONS), value=_NUMBER_TEXT)
def test_cli_numbers_are_one_line_or_accepted(tmp_path_factory, capsys, pair, value):
    command, option = pair
    d = tmp_path_factory.mktemp("cli")
    missing = str(d / "missing")
    rest = {"compile": ["--model", f"{missing}.onnx", "--data", "digits", "--out", str(d / "o")],
            "paper-nets": ["--names", "nosuchnet", "--out", str(d / "o")],
            "sweep": ["--hw", f"{missing}.yaml", "--out", str(d / "o")],
            "demo": ["--hw", f"{missing}.yaml", "--out", str(d / "o")],
            "verify": ["--artifact", missing]}[command]
    rc, out, err = _run([command, f"{option}={value}", *rest], capsys)
    assert rc == 2, (rc, out, err)  # a bad number, or the missing input: never a run
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith(f"dbpim {command}: "), err

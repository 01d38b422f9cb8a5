"""`dbpim verify`: the example layer and a user's compiled artifact on the RTL macro, errors and mismatches."""

import numpy as np
import pytest

from dbpim.cli import main
from dbpim.verif import demo as V


@pytest.fixture(scope="module")
def small_artifact(tmp_path_factory):
    from dbpim.model import artifact
    from dbpim.model.config import load_config
    from dbpim.model.examples import real_layers, to_records
    mc = load_config("small").macro
    path = tmp_path_factory.mktemp("art") / "digits"
    artifact.save(path, "digits", mc, to_records(real_layers(mc)))
    return path


def test_tiles_must_be_positive(capsys):
    assert main(["verify", "--tiles", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--tiles" in err and "[1, " not in err and ">= 1" in err


def test_bad_inputs_are_one_line(small_artifact, tmp_path, capsys):
    for argv, word in ([["--artifact", str(tmp_path / "none")], "manifest.yaml"],
                       [["--macro", "--artifact", str(small_artifact), "--layer", "nope", "--hw", "small"],
                        "fc1, fc2"],
                       [["--artifact", str(small_artifact), "--layer", "nope", "--hw", "small"], "layers: fc1"],
                       [["--artifact", str(small_artifact)], "--hw paper: its macro must match"],
                       [["--layer", "fc1"], "--artifact"],
                       [["--vectors", "0"], "--vectors"],
                       [["--artifact", str(small_artifact), "--vectors", "4"], "add --macro"],
                       [["--hw", str(tmp_path / "x.yaml")], "x.yaml"]):
        assert main(["verify"] + argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and word in err, (argv, err)


def test_a_mismatch_is_named_and_exits_1(small_artifact, monkeypatch, capsys):
    """The comparison itself: a wrong accumulator from the simulator is reported with its tile, vector and slot."""
    real = V.run_tiles_rtl

    def fake(cases, cfg, verbose=None):
        from dbpim.model.macro import run_macro
        from dbpim.model.config import load_config
        mc = load_config("small").macro
        out = []
        for tile, signed, xs in cases:
            acc = np.array([run_macro(tile, x, mc, signed=signed, gathered=True).acc for x in xs])
            cyc = np.array([run_macro(tile, x, mc, signed=signed, gathered=True).cycles for x in xs])
            out.append((acc, cyc))
        out[1][0][2, 0] += 1  # tile 1, vector 2, slot 0
        return out
    monkeypatch.setattr(V, "run_tiles_rtl", fake)
    assert main(["verify", "--macro", "--artifact", str(small_artifact), "--hw", "small", "--layer", "fc1",
                 "--vectors", "4"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [out[0]] and "fc1: MISMATCH tile 1 vector 2 slot 0" in out[0]
    assert real is not fake


@pytest.mark.rtl
@pytest.mark.timeout(600)
@pytest.mark.xdist_group("rtl-macro-small")
def test_verify_artifact_on_rtl(small_artifact, capsys):
    assert main(["verify", "--macro", "--artifact", str(small_artifact), "--hw", "small", "--vectors", "3"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and all("RTL == golden model" in ln for ln in out)
    assert out[0].startswith("fc1:") and "x 3 vectors" in out[0]


@pytest.mark.rtl
@pytest.mark.timeout(600)
@pytest.mark.xdist_group("rtl-macro-small")
def test_verify_example_layer(capsys):
    assert main(["verify", "--hw", "small", "--tiles", "1", "--vectors", "2"]) == 0
    assert "RTL == golden model: 1 tiles x 2 vectors" in capsys.readouterr().out

"""The conformance set (model/conformance.py, ``dbpim conformance``): it is complete (macro, core and chip cases,
every array documented), passes its own check, a flipped expected value is reported naming the case and index, two
generations are byte-identical, and the RTL (native harnesses) passes it from its files alone."""

import json
import shutil

import numpy as np
import pytest

from dbpim.cli import main
from dbpim.model import conformance
from dbpim.model.config import load_config


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    d = tmp_path_factory.mktemp("conf") / "set"
    conformance.write(d, load_config("small"))
    return d


def _flip(folder, file, name, index, delta=1):
    p = folder / file
    with np.load(p, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    a[name][index] += delta
    p.write_bytes(conformance._npz_bytes(a))


def test_set_is_complete_and_passes(small_set):
    man = json.loads((small_set / "manifest.json").read_text())
    assert man["format"] == conformance.FORMAT and man["version"] == conformance.VERSION
    assert man["config_digest"] == load_config("small").digest()
    names = {(c["kind"], c["name"]) for c in man["cases"]}
    assert {("macro", n) for n in ("full_tile", "phi_0_1_2", "zero_group", "lone_msb", "k1", "real_fc1")} <= names
    assert ("core", "real_fc1") in names
    assert {("chip", n) for n in ("simd_random", "pim_conv_segments", "pim_conv_signed", "pim_cnn")} <= names
    for c in man["cases"]:
        assert (small_set / c["file"]).is_file()
    readme = (small_set / "README.md").read_text()
    for c in man["cases"]:  # every array of every file is documented
        with np.load(small_set / c["file"], allow_pickle=False) as z:
            for k in z.files:
                assert f"`{k}`" in readme, k
    with np.load(small_set / "macro_full_tile.npz", allow_pickle=False) as z:
        assert (z["cells"].shape[1:] == (4, 4, 4)) and (z["col_filter"] >= 0).all()  # every column used
        assert (z["compute_cycles"][z["x"].reshape(len(z["x"]), -1).any(1) == 0] == 0).all()
    with np.load(small_set / "chip_pim_conv_segments.npz", allow_pickle=False) as z:
        assert z["acc"].any() and (z["act"] == z["act_in"]).all()  # PIM writes its sums to ACC only
        assert z["act"].dtype == np.int16 and z["acc"].dtype == np.int32 and z["imem"].dtype == np.uint64
    with np.load(small_set / "chip_simd_random.npz", allow_pickle=False) as z:
        assert (z["act"] != z["act_in"]).any() and (z["cycles"] > 0).all()
    with np.load(small_set / "chip_pim_cnn.npz", allow_pickle=False) as z:  # the GAP outputs are not all clamped
        assert len(np.unique(z["act"][:, -6:])) > 3 and z["acc"].any()
    chip = {c["name"]: c for c in man["cases"] if c["kind"] == "chip"}
    assert "2 segment(s)" in chip["pim_conv_segments"]["covers"]
    assert sum((small_set / c["file"]).stat().st_size for c in chip.values()) < 32_000  # KBs, not MBs
    assert conformance.check(small_set) == []


@pytest.mark.parametrize("file,name,index,case", [
    ("macro_phi_0_1_2.npz", "acc", (3, 1), "macro/phi_0_1_2: acc[3, 1]"),
    ("macro_lone_msb.npz", "cycles", (4,), "macro/lone_msb: cycles[4]"),
    ("core_conv_signed.npz", "cycles", (0,), "core/conv_signed: cycles[0]"),
    ("core_real_fc1.npz", "out_stream", (5,), "core/real_fc1: out_stream[5]"),
    ("macro_full_tile.npz", "out_accept", (2, 3), "macro/full_tile: out_accept[2, 3]"),
    ("macro_random_signed.npz", "compute_cycles", (7,), "macro/random_signed: compute_cycles[7]"),
    ("chip_simd_random.npz", "act", (1, 5), "chip/simd_random: act[1, 5]"),
    ("chip_pim_conv_segments.npz", "acc", (0, 7), "chip/pim_conv_segments: acc[0, 7]"),
    ("chip_pim_conv_signed.npz", "cycles", (1,), "chip/pim_conv_signed: cycles[1]"),
])
def test_a_flipped_value_is_reported(small_set, tmp_path, file, name, index, case):
    d = tmp_path / "set"
    shutil.copytree(small_set, d)
    _flip(d, file, name, index)
    bad = conformance.check(d)
    assert len(bad) == 1 and bad[0].startswith(case), bad


def test_a_broken_file_is_one_line(small_set, tmp_path):
    d = tmp_path / "set"
    shutil.copytree(small_set, d)
    with np.load(d / "macro_k1.npz", allow_pickle=False) as z:
        a = {k: z[k] for k in z.files if k != "acc"}
    (d / "macro_k1.npz").write_bytes(conformance._npz_bytes(a))
    with pytest.raises(conformance.ConformanceError, match="macro_k1.npz: no array 'acc'"):
        conformance.check(d)
    (d / "core_conv_signed.npz").write_bytes(b"not a zip")
    (d / "macro_k1.npz").unlink()
    with pytest.raises(conformance.ConformanceError, match="macro_k1.npz"):
        conformance.check(d)


def test_generation_is_byte_identical(small_set, tmp_path):
    conformance.write(tmp_path / "again", load_config("small"))
    a = sorted(p.name for p in small_set.iterdir())
    assert a == sorted(p.name for p in (tmp_path / "again").iterdir())
    for n in a:
        assert (small_set / n).read_bytes() == (tmp_path / "again" / n).read_bytes(), n


def test_cli_writes_and_checks(small_set, tmp_path, capsys):
    assert main(["conformance", "--check", str(small_set)]) == 0
    assert "agrees" in capsys.readouterr().out
    d = tmp_path / "set"
    shutil.copytree(small_set, d)
    _flip(d, "macro_k1.npz", "acc", (0, 0), delta=7)
    assert main(["conformance", "--check", str(d)]) == 1
    assert "macro/k1: acc[0, 0]" in capsys.readouterr().out
    assert main(["conformance", "--hw", "small", "--no-real", "--out", str(tmp_path / "o")]) == 0
    assert conformance.check(tmp_path / "o") == []
    capsys.readouterr()
    assert main(["conformance", "--hw", "small"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["conformance", "--check", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "manifest.json" in err and len(err.strip().splitlines()) == 1


@pytest.mark.rtl
@pytest.mark.timeout(900)
def test_rtl_passes_the_set_from_its_files_alone(small_set, tmp_path):
    """The RTL (native Verilator harnesses of the macro and the core), driven only from the set's macro and core
    files."""
    pytest.importorskip("cocotb")
    from dbpim.verif.conformance import replay
    assert replay(small_set, kinds=("macro", "core")) == []  # the chip cases: the next test
    d = tmp_path / "set"
    shutil.copytree(small_set, d)
    _flip(d, "macro_lone_msb.npz", "acc", (2, 0))
    _flip(d, "core_conv_signed.npz", "cycles", (0,))
    bad = replay(d, kinds=("macro", "core"))
    assert [b.split(":")[0] for b in bad] == ["macro/lone_msb", "core/conv_signed"], bad


@pytest.mark.rtl
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("rtl-chip-native")
def test_rtl_chip_passes_the_chip_cases_from_the_files_alone(small_set):
    """The RTL chip (native harness of ``small``, as tests/test_chip_native.py builds it) runs every chip case from
    the set's files: ACT and ACC after HALT and CYCLES equal the expected ones."""
    pytest.importorskip("amaranth")
    from dbpim.verif.conformance import replay
    assert replay(small_set, kinds=("chip",)) == []


@pytest.mark.rtl
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("rtl-chip-native")
def test_rtl_chip_replay_reports_a_flipped_value(small_set, tmp_path):
    """A flipped ACT, ACC or CYCLES value of a chip case is reported by the RTL replay, naming the case and index."""
    pytest.importorskip("amaranth")
    from dbpim.verif.conformance import replay
    d = tmp_path / "set"
    shutil.copytree(small_set, d)
    _flip(d, "chip_simd_random.npz", "act", (1, 5))
    _flip(d, "chip_pim_conv_segments.npz", "acc", (0, 7))
    _flip(d, "chip_pim_conv_signed.npz", "cycles", (1,))
    _flip(d, "chip_pim_cnn.npz", "act", (0, -1))
    bad = replay(d, kinds=("chip",))
    assert [b.split(" expected")[0] for b in bad] == ["chip/simd_random: act[1, 5]",
                                                       "chip/pim_conv_segments: acc[0, 7]",
                                                       "chip/pim_conv_signed: cycles[1]",
                                                       "chip/pim_cnn: act[0, 383]"], bad


def test_the_demo_case_needs_an_artifact_of_the_configuration():
    """``demo``: an artifact compiled for another configuration is one line naming both."""
    from types import SimpleNamespace
    with pytest.raises(conformance.ConformanceError, match="compiled for paper, not for small"):
        conformance.build(load_config("small"), real=False, demo=SimpleNamespace(hw=load_config("paper"),
                                                                                   network="smallcnn"))


@pytest.mark.slow
@pytest.mark.rtl
@pytest.mark.timeout(1800)
@pytest.mark.xdist_group("rtl-chip-native")
def test_the_demo_cnn_chip_case(real_artifacts, tmp_path):
    """The demo network's chip case (``dbpim conformance --demo-artifact``): its file is small, its logits are the
    golden chip's on the first test digits, the set passes its own check and the RTL chip replays it from the files."""
    pytest.importorskip("torch")
    pytest.importorskip("amaranth")
    from dbpim.model.artifact import load
    from dbpim.model.chip import GoldenChip
    from dbpim.model.torch.data import load_digits
    from dbpim.verif.conformance import replay
    art = load(real_artifacts[0])
    d = tmp_path / "set"
    conformance.write(d, art.hw, real=False, demo=art,
                      demo_x=load_digits(0).x_test.numpy()[:conformance.DEMO_SAMPLES])
    case = next(c for c in json.loads((d / "manifest.json").read_text())["cases"] if c["name"] == "demo_cnn")
    assert case["kind"] == "chip" and (d / case["file"]).stat().st_size < 64 * 1024
    with np.load(d / case["file"], allow_pickle=False) as z:
        act = z["act"]
    out = GoldenChip(art).program.output
    want = GoldenChip(art).run(load_digits(0).x_test.numpy()[:conformance.DEMO_SAMPLES])
    np.testing.assert_array_equal(act[:, out["addr"]:out["addr"] + want.shape[1]], want)
    assert conformance.check(d) == []
    assert replay(d, kinds=("chip",)) == []

"""``dbpim run``: a compiled network on inputs from its artifact alone (model.predict through the CLI)."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from dbpim import cli  # noqa: E402


def test_run_goes_through_the_golden_chip_and_equals_the_flow_on_its_test_samples(real_artifacts, tmp_path, capsys):
    art = real_artifacts[0]  # the demo CNN compiled with 128 test samples
    assert cli.main(["run", "--artifact", str(art), "--data", "digits", "--samples", "128",
                     "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "run.json").read_text())
    assert r["samples"] == 128 and r["outputs"] == [10] and len(r["predictions"]) == 128
    assert r["logits_equal"] is True  # golden chip == torch integer path, bit for bit
    acc = r["accuracy"]
    assert acc["chip"] == acc["torch_int"] == r["accuracy_compiled_integer_only"]  # the flow's integer-only path
    assert acc["float_requant"] == r["accuracy_compiled"]  # the same samples, the same frozen network
    assert r["cycles_model"]["pim_macro_cycles"] > 0 and r["cycles_model"]["simd_cycles"] > 0
    pm = r["cycles_perf_model"]  # the performance model end to end on the same samples: the golden chip's CYCLES
    assert pm["equal_golden_chip"] is True and pm["per_inference"] == r["cycles_model"]["golden_chip_cycles"] > 0
    assert sum(pm["layers [cycles]"].values()) + pm["unattributed [cycles]"] == pytest.approx(pm["per_inference"])
    assert r["program"]["by_opcode"]["PIM"] == r["program"]["by_opcode"]["REQ"] == 5 and r["program"]["by_opcode"]["HALT"] == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("smallcnn: golden chip (") and "PIM macro-cycles" in out[0]
    assert "torch integer path" in out[1] and out[1].endswith("golden chip's: yes")
    assert "float-requant reference" in out[2]


@pytest.mark.parametrize("rtl", [[], ["--rtl"]], ids=["golden", "rtl"])
def test_run_refuses_an_op_the_chip_lacks_in_one_line(real_artifacts, tmp_path, capsys, rtl):
    import shutil

    import yaml
    art = tmp_path / "art"
    shutil.copytree(real_artifacts[0], art)
    man = yaml.safe_load((art / "manifest.yaml").read_text())
    op = next(o for o in man["program"]["ops"] if o["op"] == "maxpool2d")
    for k in ("kernel", "stride", "padding", "dilation"):
        op.pop(k)
    op.update(op="unsupported", what="features.2: Softmax")
    (art / "manifest.yaml").write_text(yaml.safe_dump(man, sort_keys=False))
    assert cli.main(["run", "--artifact", str(art), "--data", "digits", "--samples", "4",
                     "--out", str(tmp_path / "o"), *rtl]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dbpim run: op 'features_2' (features.2: Softmax) cannot run on the chip") and "\n" not in err
    assert rtl or "model.predict cannot run it either" in err, err  # no path left to run
    assert not (tmp_path / "o").exists()


def _silu_net(real_artifacts, folder):
    """The demo artifact with its first ReLU made a SiLU (model.predict runs it, the golden chip does not)."""
    import shutil

    import yaml
    shutil.copytree(real_artifacts[0], folder)
    man = yaml.safe_load((folder / "manifest.yaml").read_text())
    op = next(o for o in man["program"]["ops"] if o["op"] == "clamp")
    for k in ("lo", "hi"):
        op.pop(k)
    op["op"] = "silu"
    (folder / "manifest.yaml").write_text(yaml.safe_dump(man, sort_keys=False))
    return folder, op["name"]


def test_run_without_the_chip_runs_the_float_requant_path_and_says_why(real_artifacts, tmp_path, capsys):
    """A network the golden chip refuses (SiLU) but model.predict runs: exit 0, run.json names the paths that
    ran and why the others did not, the accuracy of the one that ran (equal to Artifact.predict's)."""
    from dbpim.model.artifact import load
    from dbpim.model.torch.data import load_data
    art, name = _silu_net(real_artifacts, tmp_path / "art")
    assert cli.main(["run", "--artifact", str(art), "--data", "digits", "--samples", "48",
                     "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "run.json").read_text())
    assert r["paths_run"] == ["float_requant"] and set(r["paths_skipped"]) == {"chip", "torch_int"}
    assert r["paths_skipped"]["chip"].startswith(f"op {name!r} (silu) cannot run on the chip; it runs ")
    assert "integer plan" in r["paths_skipped"]["torch_int"]
    ds = load_data("digits", 0)
    want = load(art).predict(ds.x_test.numpy()[:48]).argmax(axis=1)
    assert r["predictions"] == want.tolist() and r["samples"] == 48 and r["outputs"] == [10]
    assert set(r["accuracy"]) == {"float_requant"}
    assert r["accuracy"]["float_requant"] == float((want == ds.y_test.numpy()[:48]).mean()) > 0.1
    assert r["logits_equal"] is None and r["program"] is None and r["cycles_model"] is None
    assert r["cycles_perf_model"] is None
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"smallcnn: golden chip: skipped ({r['paths_skipped']['chip']})"
    assert out[1].startswith("smallcnn: torch integer path: skipped (it runs the golden chip's integer plan")
    assert out[2] == (f"smallcnn: float-requant reference (model.predict), accuracy "
                      f"{100 * r['accuracy']['float_requant']:.2f} %, 48 samples")
    # --rtl needs the chip: the refusal stays one line, exit 2, nothing written
    assert cli.main(["run", "--artifact", str(art), "--data", "digits", "--samples", "4", "--rtl",
                     "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dbpim run: op {name!r} (silu) cannot run on the chip") and "\n" not in err
    assert not (tmp_path / "r").exists()


def test_run_reads_an_npz_with_numpy_and_refuses_bad_inputs_in_one_line(real_artifacts, tmp_path, capsys):
    art = real_artifacts[0]
    from dbpim.model.torch.data import load_data
    ds = load_data("digits", 0)
    np.savez(tmp_path / "d.npz", x=ds.x_test.numpy()[:16], y=ds.y_test.numpy()[:16])
    assert cli.main(["run", "--artifact", str(art), "--data", str(tmp_path / "d.npz"),
                     "--out", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o" / "run.json").read_text())["samples"] == 16
    np.savez(tmp_path / "bad.npz", x=np.full((2, 1, 8, 8), np.nan, np.float32), y=np.zeros(2, np.int64))
    for data, msg in ((str(tmp_path / "none.npz"), "file not found"), (str(tmp_path / "bad.npz"), "NaN"),
                      ("nosuchdata", "unknown dataset")):
        capsys.readouterr()
        assert cli.main(["run", "--artifact", str(art), "--data", data, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("dbpim run: ") and "\n" not in err and msg in err, err
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- --rtl: the RTL chip too

def _simd_only(real_artifacts, folder):
    """The demo artifact with its network program replaced by one the RTL chip runs today (no mapped layer):
    input -> residual add of the input with itself -> 2x2 max pooling -> ReLU6-like clamp -> flatten (16 outputs;
    its accuracy is not the point, the paths' agreement is)."""
    import shutil

    import yaml
    shutil.copytree(real_artifacts[0], folder)
    man = yaml.safe_load((folder / "manifest.yaml").read_text())
    ops = man["program"]["ops"]
    pool = dict(next(o for o in ops if o["op"] == "maxpool2d"))
    pool.update(name="pool", inputs=["sum"], shape=[1, 4, 4], range=[-1.6, 3.7])
    man["program"]["ops"] = [
        ops[0], {"name": "sum", "op": "add", "inputs": [ops[0]["name"]] * 2, "shape": [1, 8, 8], "range": [-1.6, 3.7]},
        pool, {"name": "act", "op": "clamp", "inputs": ["pool"], "shape": [1, 4, 4], "lo": 0.0, "hi": 3.0,
               "range": [0.0, 3.0]},
        {"name": "flat", "op": "reshape", "inputs": ["act"], "shape": [16], "range": [0.0, 3.0]}]
    man["program"]["output"] = "flat"
    (folder / "manifest.yaml").write_text(yaml.safe_dump(man, sort_keys=False))
    return folder


@pytest.mark.rtl
@pytest.mark.xdist_group("rtl-chip-native")
def test_run_rtl_runs_the_samples_on_the_rtl_chip_too(real_artifacts, tmp_path, capsys):
    art = _simd_only(real_artifacts, tmp_path / "art")
    assert cli.main(["run", "--artifact", str(art), "--data", "digits", "--samples", "24", "--rtl",
                     "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "run.json").read_text())
    assert r["program"]["by_opcode"] == {"ADD": 1, "MAXP": 1, "CLMP": 1, "HALT": 1}
    assert r["logits_equal"] is True and r["logits_equal_to_golden"] == {"torch_int": True, "rtl": True}
    acc = r["accuracy"]
    assert acc["rtl"] == acc["chip"] == acc["torch_int"]
    from dbpim.model.artifact import load
    from dbpim.model.chip import GoldenChip
    from dbpim.model.chip import program_cycles
    a = load(art)
    want = program_cycles(GoldenChip(a).program, a.hw.system.simd_lanes)
    cr = r["cycles_rtl"]
    assert cr["per_inference"] == cr["min"] == cr["max"] == r["cycles_model"]["chip_cycles"] == want
    assert cr["equal_model"] is True and r["cycles_model"]["simd_cycles"] == want  # the golden chip's count too
    assert r["cycles_perf_model"]["per_inference"] == want  # and the performance model's end to end
    rr = r["rtl"]
    assert rr["configuration"] == a.hw.name and rr["wall_per_inference_s"] > 0 and rr["simulated_cycles_per_s"] > 0
    lines = capsys.readouterr().out.splitlines()
    rtl = next(ln for ln in lines if f": RTL chip (dbpim_chip, native Verilator, {a.hw.name})" in ln)
    assert f"output equal to the golden chip's: yes; CYCLES {want} per inference (model.chip_timing {want}: equal)" \
        in rtl, rtl


def test_run_rtl_refuses_an_instruction_the_rtl_lacks_before_any_build(real_artifacts, tmp_path, capsys,
                                                                       monkeypatch):
    """A PIM or DWC instruction while the RTL chip does not run it: one line naming the network's op, exit 2,
    nothing built, nothing written (model.isa.RTL_PENDING is set here so the test holds whatever the RTL runs)."""
    pytest.importorskip("amaranth")
    from dbpim.model import isa
    from dbpim.verif import native, native_chip
    monkeypatch.setattr(isa, "RTL_PENDING", ("PIM", "DWC"))
    for mod in (native, native_chip):
        monkeypatch.setattr(mod, "build_native", lambda *a, **k: pytest.fail("built the harness"))
    assert cli.main(["run", "--artifact", str(real_artifacts[0]), "--data", "digits", "--samples", "4", "--rtl",
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("dbpim run: --rtl: op 'features_0_conv' (mapped conv2d) compiles to PIM (instruction 0), which "
                   "the RTL chip does not run yet (it stops with STATUS.ERROR_CODE 2); it runs HALT, REQ, ADD, "
                   "MAXP, GAP, CLMP, LOAD, STORE"), err
    assert not (tmp_path / "o").exists()


def test_instruction_sources_follow_the_compiled_program(real_artifacts):
    """model.chip.OP_INSTRUCTIONS (what --rtl's refusal names the op by) is what compile_program emits."""
    from dbpim.model import isa
    from dbpim.model.artifact import load
    from dbpim.model.chip import OP_INSTRUCTIONS, GoldenChip, instruction_sources
    for path in real_artifacts:
        chip = GoldenChip(load(path), wmem_words=None)  # resident (the zoo ResNet-18 streams on small's WMEM)
        ops = [isa.decode(int(w))["op"] for w in chip.program.imem]
        src = instruction_sources(chip.plan)
        assert ops[:-1] == [op for st in chip.plan.steps for op in OP_INSTRUCTIONS[st["op"]]] and ops[-1] == "HALT"
        assert len(src) == len(ops) - 1
        streamed = GoldenChip(load(path)).program  # the default: a LOAD before each PIM when streamed
        assert len(instruction_sources(chip.plan, streamed)) == len(streamed.imem) - 1


def test_run_rtl_exits_1_when_the_rtl_differs(real_artifacts, tmp_path, capsys, monkeypatch):
    """An RTL output or CYCLES off the models' (here a harness that adds 1 to sample 2's first output and
    reports one cycle too many): run.json written, the RTL line says NO, exit status 1."""
    pytest.importorskip("amaranth")
    from dbpim.verif import native_chip

    def fake(program, xs, cfg, timeout=None):
        from dbpim.model.chip import GoldenChip
        out = np.stack([np.zeros(16, np.int64)] * len(xs))
        chip = GoldenChip.from_program(program, cfg.system.simd_lanes)
        for s, x in enumerate(xs):
            act, acc = np.zeros((1, program.act_words), np.int64), np.zeros((1, 1), np.int64)
            act[0, program.input["addr"]:program.input["addr"] + x.size] = x.reshape(-1)
            chip.execute(act, acc)
            out[s] = act[0, program.output["addr"]:program.output["addr"] + 16]
        out[2, 0] += 1
        n = len(xs)
        run = native_chip.ChipRun(outputs=[], status=[], cycles=np.full(n, 10 ** 6), run_clocks=np.full(n, 10 ** 6),
                                  run_seconds=np.full(n, 0.1), run_cpu_seconds=np.full(n, 0.1),
                                  sample_seconds=np.full(n, 0.1), clocks=0, seconds=1.0, build_seconds=0.0,
                                  wall_seconds=1.0)
        return out, run

    monkeypatch.setattr(native_chip, "run_program_native", fake)
    art = _simd_only(real_artifacts, tmp_path / "art")
    assert cli.main(["run", "--artifact", str(art), "--data", "digits", "--samples", "8", "--rtl",
                     "--out", str(tmp_path / "o")]) == 1
    r = json.loads((tmp_path / "o" / "run.json").read_text())
    assert r["logits_equal"] is False and r["logits_equal_to_golden"] == {"torch_int": True, "rtl": False}
    assert r["cycles_rtl"]["equal_model"] is False
    rtl = next(ln for ln in capsys.readouterr().out.splitlines() if "RTL chip" in ln)
    assert "output equal to the golden chip's: NO (1 of 8 samples differ, first sample 2)" in rtl and "NOT EQUAL" in rtl


@pytest.mark.parametrize("case", ["no host target", "too large"])
def test_run_rtl_refuses_a_program_the_chip_cannot_hold_before_any_build(real_artifacts, tmp_path, capsys,
                                                                         monkeypatch, case):
    """With every instruction runnable (model.isa.RTL_PENDING emptied here): a WMEM image while WMEM is no host
    target, or an ACT allocation past the chip's ACT (its depths shrunk here), is one line, exit 2, no build."""
    pytest.importorskip("amaranth")
    from dbpim.model import isa
    from dbpim.verif import native, native_chip
    monkeypatch.setattr(isa, "RTL_PENDING", ())
    for mod in (native, native_chip):
        monkeypatch.setattr(mod, "build_native", lambda *a, **k: pytest.fail("built the harness"))
    targets = [t for t in isa.HOST_TARGETS if t != "WMEM"] + ([] if case == "no host target" else ["WMEM"])
    monkeypatch.setattr(native_chip, "SEL", {t: i for i, t in enumerate(targets)})
    if case == "too large":
        monkeypatch.setattr(native_chip, "chip_depths", lambda cfg: {"ACT": 100, "ACC": 1 << 16})
    assert cli.main(["run", "--artifact", str(real_artifacts[0]), "--data", "digits", "--samples", "4", "--rtl",
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    if case == "no host target":
        assert err.startswith("dbpim run: --rtl: the program's WMEM image (") and \
            "words) has no host target on the RTL chip (model.isa.HOST_TARGETS: " in err, err
    else:
        assert err.startswith("dbpim run: --rtl: program: needs ") and \
            " ACT words, the chip has 100 (configuration small)" in err, err
    assert "\n" not in err and not (tmp_path / "o").exists()


def _short_wmem(real_artifacts, folder):
    """The demo artifact with its configuration's WMEM (``chip.wmem_words`` in hw.yaml) one word short of the
    resident program's WMEM image; returns (folder, the resident golden chip)."""
    import shutil

    import yaml

    from dbpim.model.artifact import file_digest, load
    from dbpim.model.chip import GoldenChip
    from dbpim.model.config import load_config
    shutil.copytree(real_artifacts[0], folder)
    resident = GoldenChip(load(folder))
    hw = yaml.safe_load((folder / "hw.yaml").read_text())
    hw["chip"] = {**hw.get("chip", {}), "wmem_words": len(resident.program.wmem) - 1}
    (folder / "hw.yaml").write_text(yaml.safe_dump(hw, sort_keys=False))
    man = yaml.safe_load((folder / "manifest.yaml").read_text())
    man["hw_config"]["digest"] = load_config(folder / "hw.yaml").digest()
    man["files"]["hw.yaml"] = file_digest(folder / "hw.yaml")
    (folder / "manifest.yaml").write_text(yaml.safe_dump(man, sort_keys=False))
    return folder, resident


@pytest.mark.parametrize("rtl", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_run_streams_weights_past_the_configurations_wmem(real_artifacts, tmp_path, capsys, rtl):
    """A network whose WMEM image passes its configuration's WMEM runs with streamed weights (a LOAD of each PIM
    instruction's blocks from DRAM) on the golden chip, the performance model and, with ``rtl``, the RTL chip
    (--rtl, the native harness's ideal DRAM), instead of being refused: run.json's weights says so; the outputs
    are the resident program's; CYCLES per inference are the resident's plus the LOADs' on all of them.

    The RTL case builds a chip of its own (its configuration's WMEM is one word short of the image) and is slow;
    the default set runs streamed weights on the RTL chip in test_chip_native's
    test_demo_smallcnn_with_streamed_weights_on_the_rtl_chip, on the chip the other tests build."""
    if rtl:
        pytest.importorskip("amaranth")
    from dbpim.model import isa
    from dbpim.model.chip_timing import dma_cycles
    from dbpim.model.torch.data import load_data
    art, resident = _short_wmem(real_artifacts, tmp_path / "art")
    S = 4
    want = resident.run(load_data("digits", 0).x_test.numpy()[:S])
    assert cli.main(["run", "--artifact", str(art), "--data", "digits", "--samples", str(S), *(["--rtl"] if rtl else []),
                     "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "run.json").read_text())
    w, ops = r["weights"], r["program"]["by_opcode"]
    assert w["streamed"] is True and w["fits"] is True and w["loads"] == ops["LOAD"] == ops["PIM"] == 5
    assert w["image_words"] == len(resident.program.wmem) == w["wmem_words"] + 1 > w["resident_words"]
    assert r["predictions"] == want.reshape(S, -1).argmax(axis=1).tolist()
    assert r["logits_equal"] is True
    if rtl:
        assert r["logits_equal_to_golden"] == {"torch_int": True, "rtl": True}
    from dbpim.model.artifact import load
    from dbpim.model.chip import GoldenChip
    p = GoldenChip(load(art)).program
    loads = [isa.decode(int(x)) for x in p.imem if isa.decode(int(x))["op"] == "LOAD"]
    extra = sum(dma_cycles("LOAD", isa.unpack_descriptor("LOAD", p.dmem[i["desc"] * isa.DESC_WORDS:
                                                                     (i["desc"] + 1) * isa.DESC_WORDS]))
                for i in loads)
    cm, pm, cr = r["cycles_model"], r["cycles_perf_model"], r.get("cycles_rtl")
    assert cm["dma_cycles"] == extra and cm["golden_chip_cycles"] == resident.cycles / S + extra
    assert pm["equal_golden_chip"] is True and pm["per_inference"] == cm["golden_chip_cycles"]
    if rtl:
        assert cr["equal_model"] is True and cr["per_inference"] == cm["chip_cycles"] == cm["golden_chip_cycles"]
    else:
        assert cr is None and "chip_cycles" not in cm
    out = capsys.readouterr().out.splitlines()
    assert out[1] == (f"smallcnn: weights streamed: WMEM image {w['image_words']} words, configuration's WMEM "
                      f"{w['wmem_words']}: {w['resident_words']} resident, {w['dram_bytes']} DRAM bytes, 5 LOADs "
                      f"({extra} cycles per inference, in CYCLES)")

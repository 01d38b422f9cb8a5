"""Reports that explain themselves (sim_bench.explain, report.md / summary.json / printed lines, flow warnings),
on small synthetic layers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dbpim.model.compile import compile_layer
from dbpim.model.config import load_config
from dbpim.model.quant import prune_quantize
from dbpim.model.simd import OP_COST, simd_ops
from dbpim.model.torch.flow import accuracy_warnings
from dbpim.sim_bench import explain, report
from dbpim.sim_bench.perf import LayerSpec, evaluate_network


@pytest.fixture(scope="module")
def cfg():
    return load_config("paper")


def _mapped(cfg, name, K, N, sparsity=0.5, signed=False, seed=0, vectors=64):
    rng = np.random.default_rng(seed)
    q = prune_quantize(rng.normal(size=(K, N)), cfg.macro, sparsity)
    c = compile_layer(q.w, q.phi, q.mask, cfg.macro, q.group_size)
    # small activations (|x| < 16): unsigned ones leave the 4 high bit columns zero, signed negatives set them
    x = rng.integers(-16, 16, (vectors, K)) if signed else rng.integers(0, 16, (vectors, K))
    bits = (x.astype(np.int64) & 0xFF).astype(np.uint8)
    return LayerSpec(name=name, kind="conv2d", K=K, N=N, G=c.group_size, phi=np.asarray(c.phi),
                     mask=np.asarray(c.mask), w=q.w, bits=bits, vectors=vectors, signed=signed, kernel=(3, 3))


def _simd(name, op, elements, macs=0):
    return LayerSpec(name=name, kind="simd", op=op, simd_ops=simd_ops(op, macs, elements), macs=macs)


def test_every_simd_op_is_explained():
    assert set(explain.OP_WHAT) == set(OP_COST)
    assert "sigmoid" in explain.OP_WHAT["act"] and "multiply" in explain.OP_WHAT["act"]  # SiLU = sigmoid x mul


def test_simd_ops_listed_with_their_modelled_cost(cfg):
    specs = [_simd("silu", "act", 1000), _simd("ln", "layernorm", 64), _simd("gelu", "gelu", 100),
             _simd("sm", "softmax", 48), _simd("sm2", "softmax", 16), _simd("attn", "matmul", 0, macs=4096)]
    net = evaluate_network(specs, cfg, network="toy")
    rows = {r["op"]: r for r in explain.simd_op_rows(net)}
    assert set(rows) == {"act", "layernorm", "gelu", "softmax", "matmul"}
    assert rows["act"]["simd_ops [lane ops/inference]"] == 3000 and rows["act"]["cost [lane ops/element]"] == 3
    assert rows["layernorm"]["simd_ops [lane ops/inference]"] == 8 * 64
    assert rows["softmax"]["layers"] == 2 and rows["softmax"]["elements [per inference]"] == 64
    assert rows["matmul"]["macs [per inference]"] == 4096 and rows["matmul"]["elements [per inference]"] == 0
    lanes = cfg.system.simd_lanes
    assert rows["act"]["cycles [cycles]"] == np.ceil(3000 / lanes)
    assert sum(r["share_of_time_dbpim [%]"] for r in rows.values()) == pytest.approx(100.0)
    md = "\n".join(explain.explain_markdown([net]))
    assert "| act | sigmoid, SiLU (sigmoid look-up x multiply)" in md and "| layernorm |" in md
    assert "| gelu |" in md and "| softmax |" in md


def test_signed_inputs_note_gives_the_measured_skip(cfg):
    net = evaluate_network([_mapped(cfg, "after_silu", 144, 32, signed=True),
                            _mapped(cfg, "after_relu", 144, 32, signed=False, seed=1)], cfg, network="toy")
    notes = explain.signed_input_notes(net)
    assert [n["layer"] for n in notes] == ["after_silu"]
    lp = net.layers[0]
    assert notes[0]["speedup_input [x]"] == pytest.approx(lp.cycles("dense") / lp.cycles("input"))
    assert notes[0]["speedup_input [x]"] < 1.05  # negatives set the high bit columns
    assert f"input skipping gives {notes[0]['speedup_input [x]']:.2f}x: signed inputs" in notes[0]["note"]
    relu = net.layers[1]
    assert relu.cycles("dense") / relu.cycles("input") > notes[0]["speedup_input [x]"]  # unsigned: the 4 high columns skipped
    md = "\n".join(explain.explain_markdown([net]))
    assert "`after_silu`" in md and "Signed inputs: inputs are signed (two's complement" in md


def test_slower_than_dense_note_names_the_cause(cfg):
    """phi = 2 on a short K (9 rows, 16 filters): the demo's first-layer case."""
    net = evaluate_network([_mapped(cfg, "stem", 9, 16, sparsity=0.0), _mapped(cfg, "big", 576, 64, seed=2)], cfg,
                           network="toy")
    stem = net.layers[0]
    assert stem.cycles("dbpim") > stem.cycles("dense")  # the premise
    notes = explain.slower_than_dense_notes(net)
    assert [n["layer"] for n in notes] == ["stem"]
    n = notes[0]["note"]
    assert n.startswith(f"{stem.cycles('dense') / stem.cycles('dbpim'):.2f}x, slower than dense")
    assert "K = 9 rows" in n and "phi mean 2.00" in n
    b, d = stem.mech["dbpim"], stem.mech["dense"]
    assert f"into {b.filter_tiles} filter tile(s) where dense spreads them over {d.filter_tiles}" in n


def test_report_json_markdown_and_printed_lines_carry_the_notes(cfg, tmp_path):
    specs = [_mapped(cfg, "stem", 9, 16, sparsity=0.0), _simd("silu", "act", 2000),
             _mapped(cfg, "conv", 144, 32, signed=True, seed=3)]
    net = evaluate_network(specs, cfg, network="toy")
    s = report.write_report(net, tmp_path, plots=False)
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert {n["kind"] for n in doc["layer_notes"]} == {"slower_than_dense", "signed_inputs"}
    assert doc["simd_ops"][0]["op"] == "act"
    md = (tmp_path / "summary.md").read_text()
    assert "## SIMD core of toy" in md and "## Layer notes of toy" in md
    printed = report.format_summary(s)
    assert "SIMD core: act 6,000 lane ops (3/element" in printed
    assert "note: stem:" in printed and "input skipping on signed inputs: conv" in printed


def test_flow_warns_when_the_integer_accuracy_beats_the_float_one():
    w = accuracy_warnings({"float": 0.80, "final": 0.85}, {"float": 2, "finetune": 2, "qat": 2})
    assert len(w) == 1 and "85.00 % exceeds the float one 80.00 %" in w[0]
    assert "the float stage was trained less (2 epochs; the fine-tune and QAT add 4 more)" in w[0]
    assert accuracy_warnings({"float": 0.85, "final": 0.85}, {}) == []
    assert accuracy_warnings({"float": 0.90, "final": 0.85}, {}) == []
    assert accuracy_warnings({"float": None, "final": 0.85}, {}) == []

"""The PIM image in WMEM (model.pim_image, docs/design.md §15): the golden chip runs PIM from it.

Random convolution (stride, padding, dilation, groups, signed inputs) and linear layers, on a core small
enough that they take several segments, and the demo network's real layers: the golden chip's ACC after the
PIM instruction equals :func:`model.layer.run_conv2d` / :func:`model.layer.run_layer`; the core cycles it
counts from the decoded image equal the core twin's (:func:`model.core.run_core`, from the compiled layer);
a bad image or input is a one-line error.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from dbpim.model import isa
from dbpim.model.chip import ChipError, GoldenChip
from dbpim.model.chip import program_cycles
from dbpim.model.chip_timing import instruction_cycles
from dbpim.model.config import load_config
from dbpim.model.core import CoreParams, compile_program, run_core
from dbpim.model.layer import im2col
from dbpim.model.pim_image import PimImageError, band_plan, read_block, run_pim
from dbpim.model.window import WindowLayer
from dbpim.model.pim_programs import core_config, group_layer, pim_program, random_banded, random_pim

HW = core_config(load_config("small"))
PARAMS = CoreParams.from_config(HW)


def _im2col_rows(case, j, s):
    """One sample's im2col inputs (P, K) of layer j of ``case``."""
    d = case.desc
    if case.linear:
        return case.x[s].reshape(d["H"], d["C"])
    cg = d["C"] // d["groups"]
    xm = case.x[s].reshape(d["C"], d["H"], d["W"])[j * cg:(j + 1) * cg]
    kh, kw = isa.unpack_pair(d["kernel"])
    return im2col(xm[None], kh, kw, isa.unpack_pair(d["stride"]), isa.unpack_pair(d["padding"]),
                  isa.unpack_pair(d["dilation"])).reshape(-1, cg * kh * kw)


def _golden_run(case, prog, src: int, dst: int):
    """The golden chip (4 lanes) on ``prog`` with the case's input at ACT ``src``: ACC from ``dst`` equals the
    case's reference sums and the words around them keep their 7s; returns (chip, ACT, ACC)."""
    act = np.zeros((2, src + case.x.shape[1] + 5), np.int64)
    act[:, src:src + case.x.shape[1]] = case.x
    acc = np.full((2, dst + case.want.shape[1] + 5), 7, np.int64)
    chip = GoldenChip.from_program(prog, 4)
    chip.execute(act, acc)
    np.testing.assert_array_equal(acc[:, dst:dst + case.want.shape[1]], case.want, err_msg=str(case.desc))
    assert (acc[:, :dst] == 7).all() and (acc[:, dst + case.want.shape[1]:] == 7).all()
    return chip, act, acc


@pytest.mark.parametrize("kind", ["conv2d", "linear", None])
def test_golden_pim_from_image_equals_layer_model(kind, rng):
    for _ in range(4):
        case = random_pim(rng, HW.macro, samples=2, kind=kind)
        src, dst = int(rng.integers(0, 50)), int(rng.integers(0, 30))
        prog = pim_program(case, PARAMS, src=src, dst=dst, table_pad=int(rng.integers(0, 3)))
        chip, act, acc = _golden_run(case, prog, src, dst)
        # the core cycles counted from the decoded image are the core twin's, START by START
        r = run_pim(prog.wmem, dict(case.desc, layer=prog.dmem[2]), act, src, acc.copy(), dst, PARAMS)
        for j, c in enumerate(case.layers):
            for s in range(2):
                x = _im2col_rows(case, j, s)
                twin = run_core(compile_program(c, x.shape[0], PARAMS, bool(case.desc["signed"])), x)
                np.testing.assert_array_equal(r.core_cycles[j][s], twin.cycles)
        # the golden chip's cycles are chip_timing's, per sample
        d = isa.unpack_descriptor("PIM", prog.dmem)
        per = [instruction_cycles("PIM", d, 4, pim=(r.blocks, [c[s] for c in r.core_cycles])) for s in range(2)]
        assert chip.pim_cycles == sum(per) and chip.simd_cycles == 2 * 2  # HALT: 2 cycles a sample
        assert program_cycles(prog, 4, act[0]) == per[0] + 2


@pytest.mark.parametrize("kind", ["conv2d", "linear", None])
def test_row_bands_equal_layer_model(kind, rng):
    """Layers split into 2+ row bands (an input buffer smaller than their input): ACC equals model.layer's, the
    core cycles of each band's STARTs equal the core twin's on the band's pixels, the cycles chip_timing's."""
    for _ in range(4):
        case, buf, bands = random_banded(rng, HW.macro, samples=2, kind=kind)
        src, dst = int(rng.integers(0, 50)), int(rng.integers(0, 30))
        prog = pim_program(case, PARAMS, src=src, dst=dst, buffer_inputs=buf)
        chip, act, acc = _golden_run(case, prog, src, dst)
        r = run_pim(prog.wmem, dict(case.desc, layer=0), act, src, acc.copy(), dst, PARAMS, buffer_inputs=buf)
        Wo = group_layer(case).out_w
        for j, c in enumerate(case.layers):
            blk = r.blocks[j]
            assert len(blk.bands) == len(bands) >= 2 and max(b.count for b in blk.bands) <= buf
            for s in range(2):
                x = _im2col_rows(case, j, s)
                twin = np.concatenate([run_core(compile_program(c, (r1 - r0) * Wo, PARAMS, bool(case.desc["signed"])),
                                                x[r0 * Wo:r1 * Wo]).cycles for r0, r1, _, _ in bands])
                np.testing.assert_array_equal(r.core_cycles[j][s], twin)
        d = isa.unpack_descriptor("PIM", prog.dmem)
        per = [instruction_cycles("PIM", d, 4, pim=(r.blocks, [c[s] for c in r.core_cycles])) for s in range(2)]
        assert chip.pim_cycles == sum(per)
        assert program_cycles(prog, 4, act[0]) == per[0] + 2
        with pytest.raises(PimImageError, match="do not fit the input buffer"):
            run_pim(prog.wmem, dict(case.desc, layer=0), act, src, acc.copy(), dst, PARAMS, buffer_inputs=buf - 1
                    if max(b.count for b in r.blocks[0].bands) == buf else 0)


def test_band_plan_halo_and_refusal():
    """Each band reads exactly the input rows its output rows' windows touch (clipped to the map), bands cover
    the output rows once, and a row whose inputs pass the buffer is refused in one line."""
    wl = WindowLayer.of(2, 9, 5, 3, 3, stride=(2, 1), padding=(2, 1), dilation=(2, 1))
    assert wl.out_h == 5
    bands = band_plan(wl, 2 * 5 * 5)
    assert [b[:2] for b in bands] == [(0, 2), (2, 3), (3, 5)]  # the last row needs no row the band lacks
    for r0, r1, a, b in bands:
        ys = [r * 2 - 2 + i * 2 for r in range(r0, r1) for i in range(3)]
        assert (a, b) == (max(0, min(ys)), min(9, max(ys) + 1))
    assert band_plan(wl, None) == [(0, 5, 0, 9)] == band_plan(wl, wl.elements)
    with pytest.raises(PimImageError, match=r"^conv: output row 1 reads 2 x 5 x 5 inputs, more than the input "
                                            r"buffer's 49$"):
        band_plan(wl, 49, name="conv")


def test_several_segments_and_zero_entries_are_drawn(rng):
    """The shrunken core makes the random layers span several STARTs, and some have a filter no tile holds (a
    zero entry): the tests above cover both."""
    most = zeros = 0
    for _ in range(200):  # 20 draws held no zero entry with DBPIM_SEED=1231970791: draw until both are seen
        case = random_pim(rng, HW.macro, kind="conv2d")
        prog = pim_program(case, PARAMS, src=0, dst=0)
        blocks = [read_block(prog.wmem, j) for j in range(len(case.layers))]
        most = max(most, max(len(b.segments) for b in blocks))
        zeros += sum(len(b.zeros) for b in blocks)
        if most >= 2 and zeros >= 1:
            break
    assert most >= 2 and zeros >= 1


def test_real_layers_from_image(real_artifacts):
    from dbpim.model.artifact import load
    art = load(real_artifacts[0])
    chip = GoldenChip(art)
    x = np.random.default_rng(0).random((2,) + chip.plan.input_shape).astype(np.float32)
    from dbpim.model.layer import run_conv2d, run_layer
    p = chip.program
    recs = [r for r in art.layers if r.mapped]
    rng = np.random.default_rng(1)
    for w in p.imem:
        ins = isa.decode(int(w))
        if ins["op"] != "PIM":
            continue
        d = isa.unpack_descriptor("PIM", p.dmem[ins["desc"] * isa.DESC_WORDS:(ins["desc"] + 1) * isa.DESC_WORDS])
        C, H, W, sg = d["C"], d["H"], d["W"], bool(d["signed"])
        lo, hi = (-128, 127) if sg else (0, 255)
        xi = rng.integers(lo, hi + 1, (2, C * H * W))
        act = np.zeros((2, C * H * W), np.int64)
        act[:] = xi
        acc = np.zeros((2, p.acc_words), np.int64)
        r = run_pim(p.wmem, d, act, 0, acc, 0, p.core, cores=p.cores)
        c = recs[d["layer"]].compiled
        if d["kind"] == isa.PIM_KINDS["linear"]:
            res = run_layer(xi.reshape(2 * H, C), c, sg)
            want = res.out.reshape(2, -1)
        else:
            want, res = run_conv2d(xi.reshape(2, C, H, W), c, isa.unpack_pair(d["kernel"]), isa.unpack_pair(d["stride"]),
                                   isa.unpack_pair(d["padding"]), sg, isa.unpack_pair(d["dilation"]))
            want = want.reshape(2, -1)
        np.testing.assert_array_equal(acc[:, :want.shape[1]], want)
        assert int(r.macro_cycles.sum()) == res.cycles_dbpim  # the macro-cycle figure is unchanged
    chip.run(x)


def test_real_network_in_row_bands(real_artifacts):
    """The demo network compiled for a 0.2 KiB input buffer (convolutions in 2+ row bands): the golden chip's
    outputs equal those of the program compiled for the configuration's buffer (one band a layer); a buffer too
    small for one output row's inputs is refused in one line naming the layer."""
    import dataclasses

    from dbpim.model.artifact import load

    def with_buffer(art, kib):
        return dataclasses.replace(art, hw=dataclasses.replace(
            art.hw, system=dataclasses.replace(art.hw.system, input_buffer_kib=kib)))

    art = load(real_artifacts[0])
    chip, banded = GoldenChip(art), GoldenChip(with_buffer(art, 0.2))
    p = banded.program
    bands = [len(read_block(p.wmem, i).bands) for i in range(int(p.wmem[0]))]
    assert max(bands) >= 2 and all(len(read_block(chip.program.wmem, i).bands) == 1 for i in range(len(bands)))
    x = np.random.default_rng(0).random((2,) + chip.plan.input_shape).astype(np.float32)
    np.testing.assert_array_equal(banded.run(x), chip.run(x))
    with pytest.raises(ChipError, match=r"^op '\w+': [\w.]+: output row \d+ reads \d+ x \d+ x \d+ inputs, more than "
                                        r"the input buffer's \d+$"):
        GoldenChip(with_buffer(art, 0.1))


def test_bad_input_and_image_are_one_line_errors(rng):
    case = random_pim(rng, HW.macro, kind="linear")
    prog = pim_program(case, PARAMS, src=0, dst=0)
    lo, hi = (-128, 127) if case.desc["signed"] else (0, 255)
    act = np.zeros((1, case.x.shape[1]), np.int64)
    act[0, 0] = hi + 1
    acc = np.zeros((1, case.want.shape[1]), np.int64)
    with pytest.raises(ChipError, match="range"):
        GoldenChip.from_program(prog, 4).execute(act, acc)
    bad = prog.wmem.copy()
    bad[bad[1]] += 1  # the block's word count
    with pytest.raises(PimImageError, match="WMEM layer 0"):
        read_block(bad, 0)
    with pytest.raises(PimImageError, match="not in the layer table"):
        read_block(prog.wmem, 3)
    with pytest.raises(ValueError, match="PIM"):
        program_cycles(prog, 4)


def test_a_sum_past_acc_elements_is_a_range_error(rng, monkeypatch):
    """A core whose partial sums are wider than ACC's elements (``paper``: 33 bits into 32): a sum that does not
    fit the signed element stops the golden chip (the RTL chip's ERROR_CODE 4, tests/test_hw_chip.py). ACC is
    narrowed here so that a small layer's sums pass it; at full width the same layer runs."""
    from dataclasses import replace
    for _ in range(50):  # a draw can prune or zero every product (DBPIM_SEED=4051960198): draw a layer with sums
        case = random_pim(rng, HW.macro, samples=1, kind="linear")
        top = int(np.abs(case.want).max())
        if top >= 4:
            break
    assert top >= 4, "the layer's sums must need more than 2 bits"
    prog = pim_program(case, PARAMS, src=0, dst=0)
    act = case.x.astype(np.int64).copy()
    acc = np.zeros((1, case.want.shape[1]), np.int64)
    GoldenChip.from_program(prog, 4).execute(act.copy(), acc)
    np.testing.assert_array_equal(acc, case.want)
    bits = (top - 1).bit_length()  # 2**(bits - 1) < top: the sum +-top does not fit the signed element
    monkeypatch.setitem(isa.BUFFERS, "ACC", replace(isa.BUFFERS["ACC"], elem_bits=bits))
    want = rf"^instruction 0 \(PIM\), layer \d+, band \d+, segment \d+: a sum does not fit ACC's signed {bits}-bit elements"
    with pytest.raises(ChipError, match=want + r" \(range\)$"):
        GoldenChip.from_program(prog, 4).execute(act.copy(), np.zeros_like(acc))


@pytest.mark.parametrize("cores", [2, 3])
def test_several_cores_share_the_layer(cores, rng):
    """``system.cores`` PIM cores: the block deals the filter tiles round-robin to min(cores, filter tiles) cores
    (``cores`` in its header), their segments interleaved into rounds; the golden chip's ACC is the layer model's,
    each segment's core cycles are the core twin's on its core's share, and a round costs its longest core."""
    from dataclasses import replace

    from dbpim.model.chip_timing import pim_cycles
    from dbpim.model.core_timing import filter_tiles_of
    seen = 0
    for _ in range(40):  # until three drawn layers ran a round of several cores
        if seen >= 3:
            break
        case = random_pim(rng, HW.macro, samples=2)
        prog = pim_program(case, PARAMS, src=0, dst=0, cores=cores)
        act = case.x.astype(np.int64).copy()
        acc = np.zeros((2, case.want.shape[1]), np.int64)
        chip = GoldenChip.from_program(prog, 4)
        chip.execute(act.copy(), acc)
        np.testing.assert_array_equal(acc, case.want, err_msg=str(case.desc))
        r = run_pim(prog.wmem, case.desc | {"layer": 0}, act, 0, acc.copy(), 0, PARAMS, cores=cores)
        total = 0
        for j, c in enumerate(case.layers):
            fts = filter_tiles_of(c.tiles)
            k = max(1, min(cores, len(fts)))
            blk = r.blocks[j]
            band, = blk.bands  # one band: the whole layer (no input buffer size)
            assert blk.cores == band.cores == k
            assert [i for rd in band.rounds for i in rd] == list(range(len(band.segments)))
            assert all(len(rd) <= k for rd in band.rounds)
            seen += any(len(rd) > 1 for rd in band.rounds)
            for s in range(2):
                x = _im2col_rows(case, j, s)
                twins = [run_core(compile_program(replace(c, tiles=[c.tiles[i] for f in fts[q::k] for i in f[2]]),
                                                  x.shape[0], PARAMS, bool(case.desc["signed"])), x).cycles
                         for q in range(k)]
                inter = [int(t[n]) for n in range(max(len(t) for t in twins)) for t in twins if n < len(t)]
                np.testing.assert_array_equal(r.core_cycles[j][s], inter)
        for s in range(2):
            one = pim_cycles(case.desc, r.blocks, [cc[s] for cc in r.core_cycles])
            total += one
            # a round of several segments costs its longest START (and one cycle to see them DONE), not their sum,
            # but its cores 1 .. read all their pass descriptors first (four cycles each) and their results are
            # drained into ACC after it (one cycle a result, two more a core)
            seq = pim_cycles(case.desc, [replace(b, bands=[replace(bd, cores=1) for bd in b.bands])
                                         for b in r.blocks], [cc[s] for cc in r.core_cycles])
            segs = [b.bands[0].segments for b in r.blocks]
            rounds = sum(sum(int(cc[s][i]) + 1 for i in rd) - max(int(cc[s][i]) for i in rd) - 1
                         - sum(4 * max(0, len(sg[i].passes) - 1) + sg[i].beats + 2 for i in rd[1:])
                         for b, sg, cc in zip(r.blocks, segs, r.core_cycles) for rd in b.bands[0].rounds)
            assert seq - one == rounds
        assert chip.pim_cycles == total
        if any(b.cores > 1 for b in r.blocks):  # an image for more cores than the chip has: one line
            with pytest.raises(ChipError, match=r"^instruction 0 \(PIM\), layer \d+: its rounds run \d+ segments "
                                                r"at once, the chip has 1 PIM cores$"):
                GoldenChip.from_program(replace(prog, cores=1), 4).execute(act.copy(), acc.copy())
    assert seen, "no drawn layer ran a round of several cores"


def test_several_cores_in_row_bands(rng):
    """Two PIM cores on a layer in row bands: each band's segments are dealt to the cores in rounds (every band
    the same round size, the block's ``cores``); the golden chip's ACC is the layer model's and its PIM cycles
    are :func:`model.chip_timing.pim_cycles` of the blocks, a band's round costing its longest core."""
    from dataclasses import replace

    from dbpim.model.chip_timing import pim_cycles
    case, buf, bands = random_banded(rng, HW.macro, samples=2)
    prog = pim_program(case, PARAMS, src=0, dst=0, buffer_inputs=buf, cores=2)
    act = case.x.astype(np.int64).copy()
    acc = np.zeros((2, case.want.shape[1]), np.int64)
    chip = GoldenChip.from_program(prog, 4)
    chip.execute(act.copy(), acc)
    np.testing.assert_array_equal(acc, case.want, err_msg=str(case.desc))
    r = run_pim(prog.wmem, case.desc | {"layer": 0}, act, 0, acc.copy(), 0, PARAMS, buffer_inputs=buf, cores=2)
    for blk in r.blocks:
        assert len(blk.bands) == len(bands) and all(b.cores == blk.cores for b in blk.bands)
        assert all([i for rd in b.rounds for i in rd] == list(range(len(b.segments))) for b in blk.bands)
    total = sum(pim_cycles(case.desc, r.blocks, [cc[s] for cc in r.core_cycles]) for s in range(2))
    assert chip.pim_cycles == total


def test_result_buffers_bound_the_bands(rng):
    """A result buffer smaller than a core 1 segment's results: the compiler cuts the layer into more row bands
    until every core 1 .. segment fits (the golden chip's ACC is still the layer model's); one output row that
    does not fit is refused in one line, and the golden chip refuses an image that overflows the buffer."""
    from dataclasses import replace
    for _ in range(40):
        case = random_pim(rng, HW.macro, samples=1, kind="conv2d")
        if case.desc["groups"] == 1 and case.desc["Ho"] >= 2:
            prog = pim_program(case, PARAMS, src=0, dst=0, cores=2)
            blk = read_block(prog.wmem, 0)
            most = max([s.beats for b in blk.bands for r in b.rounds for s in [b.segments[i] for i in r[1:]]]
                       or [0])
            if most >= 2 * case.desc["Wo"]:
                break
    else:
        pytest.fail("no drawn convolution has a core 1 segment of two rows' results")
    words = most - 1
    tight = pim_program(case, PARAMS, src=0, dst=0, cores=2, result_words=words)
    blk2 = read_block(tight.wmem, 0)
    assert len(blk2.bands) > len(blk.bands)
    assert all(b.segments[i].beats <= words for b in blk2.bands for r in b.rounds for i in r[1:])
    acc = np.zeros((1, case.want.shape[1]), np.int64)
    GoldenChip.from_program(tight, 4).execute(case.x.astype(np.int64), acc)
    np.testing.assert_array_equal(acc, case.want)
    with pytest.raises(ChipError, match=r"segment \d+ streams \d+ results into a result buffer of \d+ words$"):
        GoldenChip.from_program(replace(prog, result_words=words), 4).execute(
            case.x.astype(np.int64), np.zeros((1, case.want.shape[1]), np.int64))
    try:  # a buffer of one word: one result a core 1 segment, or one line naming the row that does not fit
        one = read_block(pim_program(case, PARAMS, src=0, dst=0, cores=2, result_words=1).wmem, 0)
    except PimImageError as e:
        assert re.match(r"^layer: output row \d+ streams \d+ results on one PIM core, more than its result "
                        r"buffer's 1 words \(system.result_buffer_words\)$", str(e)), str(e)
    else:
        assert all(b.segments[i].beats <= 1 for b in one.bands for r in b.rounds for i in r[1:])

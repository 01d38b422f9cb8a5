"""Hardware YAML validation and the compiled artifact's save/load."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from dbpim.model import artifact, examples
from dbpim.model.config import ConfigError, load_config


def test_shipped_configs():
    p = load_config("paper")
    assert (p.macro.n_comp, p.macro.n_col, p.macro.n_row, p.macro.group_size) == (16, 16, 16, 8)
    assert load_config("small").macro.n_comp == 4


#: digest of hw/configs/paper-throughput.yaml, as docs/perf_model.md ("The throughput core") states it
THROUGHPUT_DIGEST = "84274a381a7b71c3e5cda37d985e91ae0c73be82f32ffc0dd754175c20e2875c"


def test_shipped_throughput_config():
    """paper-throughput = paper with the core's four throughput options, nothing else; named and digested as
    docs/perf_model.md says; its cells twice the paper's 16 KB."""
    from dbpim.commands._common import with_core_overrides
    t, p = load_config("paper-throughput"), load_config("paper")
    assert t.name == "paper-throughput" and t.defaulted == ()
    assert (t.core.tile_banks, t.core.out_banks, t.core.in_windows, t.core.result_lanes) == (2, 2, 2, 2)
    same = with_core_overrides(p, {"tile_banks": 2, "out_banks": 2, "in_windows": 2, "result_lanes": 2})
    assert same.name == "paper+tile_banks=2+out_banks=2+in_windows=2+result_lanes=2"
    assert {**same.to_dict(), "name": t.name} == t.to_dict()
    assert (p.pim_bytes, t.pim_bytes) == (16384, 32768)
    doc = (Path(__file__).parents[1] / "docs" / "perf_model.md").read_text()
    assert t.digest() == THROUGHPUT_DIGEST and THROUGHPUT_DIGEST in doc
    assert "hw/configs/paper-throughput.yaml" in doc and "`paper-throughput`" in doc


@pytest.mark.parametrize("edit,msg", [
    ({"macro": {"n_comp": 12}}, "macro.n_comp: must be a power of two"),
    ({"macro": {"n_col": 7}}, "macro.n_col: must be an even integer"),
    ({"macro": {"phi_max": 9}}, r"macro.phi_max: must be an integer from 1 to 4"),
    ({"macro": {"pipeline": "yes"}}, "macro.pipeline: must be true or false"),
    ({"macro": {"n_rows": 16}}, "macro.n_rows: unknown key"),
    ({"extra": 1}, "extra: unknown key"),
    ({"core": {"result_lanes": 3}}, r"core.result_lanes: must divide system.macros_per_core=2, got 3"),
    ({"core": {"result_lanes": 0}}, r"core.result_lanes: must be an integer from 1 to 16 dividing"),
])
def test_bad_yaml_is_one_clear_line(tmp_path, edit, msg):
    doc = yaml.safe_load(Path(load_config("small").path).read_text())
    for k, v in edit.items():
        if isinstance(v, dict):
            doc[k].update(v)
        else:
            doc[k] = v
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=msg) as e:
        load_config(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def _with_chip(tmp_path, chip, name="chip.yaml"):
    doc = yaml.safe_load(Path(load_config("small").path).read_text())
    doc["chip"] = chip
    f = tmp_path / name
    f.write_text(yaml.safe_dump(doc))
    return f


def test_chip_section_sizes_every_buffer(tmp_path):
    """chip: the words of each RTL chip buffer (model.config.ChipConfig, HwConfig.chip_words); left out, the values
    before the section (ACT / ACC from the system's buffers) and no digest change; each range what the hardware
    addresses (model.isa.DEPTH_MAX), a bad value one line naming the key and its range."""
    from dbpim.model import isa
    small = load_config("small")
    assert small.chip_words() == {"IMEM": 256, "DMEM": 4096, "CMEM": 4096, "WMEM": 65536, "ACT": 2048, "ACC": 1024}
    assert "chip" not in small.to_dict()
    spelt = load_config(_with_chip(tmp_path, {"imem_words": 256, "act_words": 2048, "acc_words": 1024}))
    assert spelt.digest() == small.digest() and spelt.chip_words() == small.chip_words()
    zoo = load_config(Path(__file__).parent / "zoo-chip.yaml")
    assert zoo.chip_words() == {"IMEM": 256, "DMEM": 4096, "CMEM": 32768, "WMEM": 720896, "ACT": 65536, "ACC": 40960}
    assert zoo.to_dict()["chip"] == {"cmem_words": 32768, "wmem_words": 720896, "act_words": 65536,
                                     "acc_words": 40960}
    assert zoo.replace(chip={"cmem_words": 4096, "wmem_words": 65536, "act_words": None, "acc_words": None}).to_dict() \
        == {**small.to_dict(), "name": "zoo-chip"}
    top = {f"{b.lower()}_words": n for b, n in isa.DEPTH_MAX.items()}
    assert load_config(_with_chip(tmp_path, top)).chip_words() == isa.DEPTH_MAX
    assert isa.DEPTH_MAX == {"IMEM": 65536, "DMEM": 131072, "CMEM": 1 << 24, "ACT": 65536, "ACC": 65536,
                             "WMEM": 1 << 24}
    for key, bad in [*((k, v + 1) for k, v in top.items()), ("wmem_words", 0), ("act_words", 1.5),
                     ("imem_words", True)]:
        f = _with_chip(tmp_path, {key: bad})
        with pytest.raises(ConfigError) as e:
            load_config(f)
        msg = str(e.value)
        assert msg.startswith(f"{f}: chip.{key}: must be an integer from 1 to {top[key]} (") and "\n" not in msg
        assert ", got " in msg
    with pytest.raises(ConfigError, match=r"chip\.rom_words: unknown key; allowed: imem_words, dmem_words"):
        load_config(_with_chip(tmp_path, {"rom_words": 1}))
    with pytest.raises(ConfigError, match=r": chip: required mapping with keys imem_words"):
        load_config(_with_chip(tmp_path, 7))


def test_missing_config():
    with pytest.raises(ConfigError, match="shipped configurations: .*paper"):
        load_config("nope")


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    macro = load_config("small").macro
    path = tmp_path_factory.mktemp("a") / "art"
    artifact.save(path, "digits-mlp", macro, examples.to_records(examples.real_layers(macro)))
    return path


def test_round_trip(art):
    a = artifact.load(art)
    assert a.network == "digits-mlp" and len(a.mapped_layers()) == 2
    fc1 = a.mapped_layers()[0]
    assert fc1.w.shape == (64, 32) and fc1.x.dtype == np.uint8
    assert [layer.kind for layer in a.layers] == ["linear", "simd", "linear", "simd"]


def test_save_refuses_to_clobber_and_leaves_nothing_on_failure(art, tmp_path):
    with pytest.raises(artifact.ArtifactError, match="already exists"):
        artifact.save(art, "x", load_config("small").macro, [])
    bad = [artifact.LayerRecord(name="l", kind="conv3d", in_shape=(1,), out_shape=(1,))]
    with pytest.raises(artifact.ArtifactError, match="kind must be one of"):
        artifact.save(tmp_path / "new", "x", load_config("small").macro, bad)
    assert list(tmp_path.iterdir()) == []


def _corrupt(art, tmp_path, fn):
    dst = tmp_path / "c"
    shutil.copytree(art, dst)
    fn(dst)
    return dst


def _edit_manifest(key_path, value):
    def fn(d):
        m = yaml.safe_load((d / "manifest.yaml").read_text())
        node = m
        for k in key_path[:-1]:
            node = node[k]
        node[key_path[-1]] = value
        (d / "manifest.yaml").write_text(yaml.safe_dump(m))
    return fn


def _edit_npz(key, fn_arr):
    def fn(d):
        f = sorted((d / "layers").glob("*.npz"))[0]
        z = dict(np.load(f))
        z[key] = fn_arr(z[key])
        np.savez(f, **z)
        artifact.reseal(d)  # the digests agree again: the array checks are what is tested
    return fn


def _first_layer_file(d):
    return d / "layers" / sorted(p.name for p in (d / "layers").iterdir())[0]


def _flip_weight(w):
    w = w.copy()
    k, n = np.argwhere(w != 0)[0]
    w[k, n] = -w[k, n] if w[k, n] != -128 else 64
    return w


@pytest.mark.parametrize("fn,msg", [
    (_edit_manifest(["version"], 5), "field 'version' must be one of 1, 2, 3, 4"),
    (_edit_manifest(["format"], "onnx"), "field 'format' must be 'dbpim-artifact'"),
    (_edit_manifest(["hw", "n_comp"], 3), "field 'hw': macro.n_comp"),
    (_edit_manifest(["layers", 0, "kind"], "conv3d"), "field 'kind' must be one of"),
    (_edit_manifest(["layers", 0, "K"], 65), r"in_shape \[64\] must end with K=65"),
    (_edit_manifest(["layers", 1, "op"], "sqrt"), "field 'op' must be one of"),
    (_edit_manifest(["layers", 1, "simd_ops"], 7), r"field 'simd_ops' = 7 must equal macs \+ cost"),
    (_edit_manifest(["layers", 0, "in_shape"], [2, 32]), r"in_shape \[2, 32\] must end with K=64"),
    (_edit_manifest(["layers", 0, "out_shape"], [31]), r"out_shape \[31\] must be in_shape with the last axis"),
    (_edit_npz("phi", lambda a: a * 0 + 3), r"array 'phi' must lie in \[0, 2\]"),
    (_edit_npz("w", lambda a: a.astype(np.int16)), "array 'w' must be int8"),
    (_edit_npz("w", _flip_weight), "packed tiles do not reproduce"),
    (_edit_npz("tiles_idx", lambda a: a + 4), r"array 'tiles_idx' must lie in \[0, 3\]"),
    (lambda d: _first_layer_file(d).write_text("x") and artifact.reseal(d), "not a readable .npz"),
    (lambda d: _first_layer_file(d).write_text("x"),
     r"layers/000_fc1.npz: digest does not match manifest.yaml \(file changed after it was written\)"),
    (lambda d: (d / "manifest.yaml").unlink(), "manifest.yaml: not found"),
])
def test_load_rejects_malformed(art, tmp_path, fn, msg):
    with pytest.raises(artifact.ArtifactError, match=msg):
        artifact.load(_corrupt(art, tmp_path, fn))

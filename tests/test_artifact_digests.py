"""The artifact checks itself (docs/design.md §8): every file's SHA-256 in manifest.yaml, verified on load,
and the hardware configuration it was compiled for (hw.yaml, Artifact.hw)."""

from __future__ import annotations

import shutil

import pytest
import yaml

from dbpim.model import artifact, examples
from dbpim.model.artifact import ArtifactError
from dbpim.model.config import HwConfig, load_config

SMALL = load_config("small")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("d") / "art"
    artifact.save(path, "digits-mlp", SMALL.macro, examples.to_records(examples.real_layers(SMALL.macro)), hw=SMALL)
    return path


@pytest.fixture
def work(saved, tmp_path):
    d = tmp_path / "a"
    shutil.copytree(saved, d)
    return d


def _manifest(d):
    return yaml.safe_load((d / "manifest.yaml").read_text())


def _write_manifest(d, doc):
    (d / "manifest.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def _refused(d, needle):
    with pytest.raises(ArtifactError) as e:
        artifact.load(d)
    msg = str(e.value)
    assert "\n" not in msg and needle in msg, msg
    return msg


def test_manifest_lists_every_other_file_with_its_digest(saved):
    doc = _manifest(saved)
    assert doc["version"] == artifact.VERSION == 4
    files = {p.relative_to(saved).as_posix() for p in saved.rglob("*") if p.is_file()}
    assert set(doc["files"]) == files - {"manifest.yaml", ".dbpim-outputs"}
    assert set(doc["files"]) == {"hw.yaml", "layers/000_fc1.npz", "layers/002_fc2.npz"}
    for rel, dig in doc["files"].items():
        assert dig == artifact.file_digest(saved / rel) and len(dig) == 64


@pytest.mark.parametrize("rel", ["layers/000_fc1.npz", "layers/002_fc2.npz", "hw.yaml"])
@pytest.mark.parametrize("where", [0, "middle", -1])
def test_a_flipped_byte_is_refused_naming_the_file(work, rel, where):
    f = work / rel
    raw = bytearray(f.read_bytes())
    i = len(raw) // 2 if where == "middle" else where
    raw[i] ^= 0x01
    f.write_bytes(bytes(raw))
    msg = _refused(work, "digest does not match manifest.yaml (file changed after it was written)")
    assert msg.startswith(f"{work / rel}: ")


def test_missing_unlisted_and_bad_entries_are_refused(saved, work):
    (work / "layers" / "002_fc2.npz").unlink()
    _refused(work, "002_fc2.npz not found")
    shutil.rmtree(work)
    shutil.copytree(saved, work)
    doc = _manifest(work)
    del doc["files"]["layers/000_fc1.npz"]  # a file the manifest reads, with no digest
    _write_manifest(work, doc)
    _refused(work, "layers/000_fc1.npz is not listed in manifest.yaml field 'files'")
    doc["files"]["layers/000_fc1.npz"] = "0" * 63
    _write_manifest(work, doc)
    _refused(work, "field 'files.layers/000_fc1.npz' must be a SHA-256 digest")
    doc["files"]["layers/000_fc1.npz"] = artifact.file_digest(work / "layers" / "000_fc1.npz")
    doc["files"]["../outside.npz"] = "0" * 64
    _write_manifest(work, doc)
    _refused(work, "'../outside.npz' must be a path inside the artifact")
    del doc["files"]["../outside.npz"]
    doc["files"]["layers/009_gone.npz"] = "0" * 64  # listed, not there
    _write_manifest(work, doc)
    _refused(work, "009_gone.npz not found")
    del doc["files"]
    _write_manifest(work, doc)
    _refused(work, "missing field 'files'")


def test_hw_round_trips(saved):
    a = artifact.load(saved)
    assert isinstance(a.hw, HwConfig) and a.hw.to_dict() == SMALL.to_dict() and a.hw.digest() == SMALL.digest()
    again = load_config(saved / "hw.yaml")  # re-loadable by model.config on its own
    assert again.to_dict() == SMALL.to_dict() and again.macro == a.macro
    assert _manifest(saved)["hw_config"] == {"file": "hw.yaml", "digest": SMALL.digest()}


def test_hw_yaml_edited_and_resealed_is_still_refused(work):
    doc = yaml.safe_load((work / "hw.yaml").read_text())
    doc["system"]["cores"] = doc["system"]["cores"] + 1
    (work / "hw.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    _refused(work, "hw.yaml: digest does not match manifest.yaml")
    artifact.reseal(work)  # the file digest agrees; the configuration is still not what it was compiled for
    _refused(work, "hw.yaml: configuration digest")
    doc["system"]["cores"] -= 1
    doc["macro"]["n_col"] = doc["macro"]["n_col"] * 2
    (work / "hw.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    m = _manifest(work)
    m["hw_config"]["digest"] = load_config(work / "hw.yaml").digest()
    _write_manifest(work, m)
    artifact.reseal(work)
    _refused(work, "is not manifest.yaml field 'hw'")


def test_save_refuses_a_configuration_for_another_macro(tmp_path):
    other = load_config("paper")
    recs = examples.to_records(examples.real_layers(SMALL.macro))
    with pytest.raises(ArtifactError, match="is not the macro the layers were compiled for"):
        artifact.save(tmp_path / "a", "n", SMALL.macro, recs, hw=other)
    with pytest.raises(ArtifactError, match="hw must be a model.config.HwConfig"):
        artifact.save(tmp_path / "a", "n", SMALL.macro, recs, hw=SMALL.macro)
    assert list(tmp_path.iterdir()) == []


def test_without_hw_the_artifact_has_no_hw_yaml(tmp_path):
    p = artifact.save(tmp_path / "a", "n", SMALL.macro, examples.to_records(examples.real_layers(SMALL.macro)))
    assert not (p / "hw.yaml").exists() and "hw_config" not in _manifest(p)
    assert artifact.load(p).hw is None


@pytest.mark.parametrize("version", [1, 2])
def test_older_versions_load_without_digests(work, version):
    """Artifacts written before digests (version 2, and version 1) keep loading; hw is None."""
    doc = _manifest(work)
    del doc["files"], doc["hw_config"]
    doc["version"] = version
    if version == 1:
        for rec in doc["layers"]:
            if rec["kind"] == "simd":
                rec.pop("macs"), rec.pop("elements")
    _write_manifest(work, doc)
    (work / "hw.yaml").unlink()
    a = artifact.load(work)
    assert a.hw is None and len(a.mapped_layers()) == 2


def test_digest_of_a_configuration():
    assert SMALL.digest() == load_config("small").digest() != load_config("paper").digest()
    assert SMALL.replace(system={"cores": SMALL.system.cores + 1}).digest() != SMALL.digest()
    assert len(SMALL.digest()) == 64 and int(SMALL.digest(), 16) >= 0

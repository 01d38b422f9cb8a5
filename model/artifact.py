"""The compiled artifact (docs/design.md §8): what the front-end hands to the golden
model, the performance model and the testbenches.

Format version 3 is a directory::

    manifest.yaml              format, version, network, hw (macro), hw_config, files, layers, program
    layers/<i>_<name>.npz      arrays of each layer mapped on the macros
    hw.yaml                    the hardware configuration it was compiled for (optional)
    program.npz                arrays of the network program (version 4, optional)

``files`` records the SHA-256 digest of every other file; :func:`load`
checks each one before reading it. The network program (:mod:`model.program`)
says how the layers connect, so :meth:`Artifact.predict` runs new inputs from
the artifact alone. See ``docs/design.md §8`` for every field and for how
version 1, 2 and 3 artifacts are read (:data:`READ_VERSIONS`).
:func:`save` stages the files in a temporary sibling directory
(:func:`model.outdir.output_dir`): the artifact appears or is replaced as a
whole folder, a failure never leaves a half-written artifact, and a folder
holding files :func:`save` did not write is never overwritten. :func:`load`
validates everything and raises only :class:`ArtifactError`, naming the file,
the field and what is allowed.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from dbpim.model import csd, simd
from dbpim.model import program as gprog
from dbpim.model.compile import TILE_ARRAYS, CompiledLayer, mapping_error
from dbpim.model.config import ConfigError, HwConfig, MacroConfig, load_config, read_yaml
from dbpim.model.layer import _pair, conv_out_size, weights_of
from dbpim.model.outdir import output_dir, write_file
from dbpim.model.prune import expand_mask, n_groups

__all__ = ["ArtifactError", "Artifact", "LayerRecord", "save", "load", "reseal", "file_digest", "FORMAT", "VERSION",
           "READ_VERSIONS", "MAPPED_KINDS", "SIMD_OPS", "HW_FILE"]

FORMAT = "dbpim-artifact"
VERSION = 4
READ_VERSIONS = (1, 2, 3, 4)  # versions 1 to 3: read as docs/design.md §8 "Versioning" says
DIGESTS_SINCE = 3  # the first version whose manifest records every file's digest (field ``files``)
PROGRAM_SINCE = gprog.PROGRAM_SINCE  # the first version with a network program (field ``program``, program.npz)
HW_FILE = "hw.yaml"
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAPPED_KINDS = ("conv2d", "linear")
SIMD_OPS = simd.SIMD_OPS
SAVE_COMMAND = "model.artifact.save"


class ArtifactError(ValueError):
    """A malformed or inconsistent artifact; the message names file and field."""


@dataclass
class LayerRecord:
    """One layer of the network.

    ``kind`` is ``conv2d`` or ``linear`` for layers mapped onto the macros
    (then ``compiled``, ``w``, ``scale`` are set) or ``simd`` for everything
    else (then ``op``, ``macs``, ``elements`` and ``simd_ops`` describe the
    work of the SIMD core, :mod:`model.simd`).

    A ``linear`` layer's ``in_shape`` is ``(*tokens, K)``: every leading axis
    is a token axis and each token is one input vector of the sample. A
    ``conv2d`` has ``kernel``, ``stride``, ``padding`` and ``dilation`` as
    (height, width) pairs (a Conv1d is a conv2d with height 1); one group of a
    grouped convolution is its own record with ``group = (j, groups)`` and
    the group's input channels as ``in_shape[0]``.
    """

    name: str
    kind: str
    in_shape: tuple
    out_shape: tuple
    op: str | None = None
    kernel: tuple | None = None
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    group: tuple | None = None
    signed_input: bool = False
    simd_ops: int = 0
    macs: int = 0
    elements: int = 0
    w: np.ndarray | None = None
    scale: np.ndarray | None = None
    compiled: CompiledLayer | None = None
    x: np.ndarray | None = None
    x_scale: float | None = None
    w_float: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.in_shape, self.out_shape = tuple(self.in_shape), tuple(self.out_shape)
        self.stride, self.padding = _pair(self.stride, "stride", 1), _pair(self.padding, "padding", 0)
        self.dilation = _pair(self.dilation, "dilation", 1)
        if self.kernel is not None:
            self.kernel = tuple(int(v) for v in self.kernel)
        if self.kind == "simd" and self.op in simd.OP_COST:
            if not (self.macs or self.elements) and self.simd_ops:
                self.macs, self.elements = _counts_of(self.op, int(self.simd_ops))
            self.simd_ops = simd.simd_ops(self.op, self.macs, self.elements)

    @property
    def mapped(self) -> bool:
        return self.kind in MAPPED_KINDS

    @property
    def vectors(self) -> int:
        """Input vectors per sample: tokens of a linear layer, output pixels of a conv."""
        if self.kind == "linear":
            return int(np.prod(self.in_shape[:-1], dtype=np.int64))
        if self.kind == "conv2d":
            return int(np.prod(self.out_shape[1:], dtype=np.int64))
        return 0

    def mac_count(self) -> int:
        """Multiply-accumulates per sample: K x N x vectors (dense) when mapped, else ``macs``."""
        if self.mapped:
            return int(self.compiled.K) * int(self.compiled.N) * self.vectors
        return int(self.macs)

    def im2col_inputs(self) -> np.ndarray | None:
        """Recorded inputs as im2col rows (S * vectors, K), or None if none were recorded.

        Rows are sample-major: the vectors (tokens, output pixels) of sample 0 first.
        """
        if self.x is None:
            return None
        from dbpim.model.layer import im2col
        if self.kind == "conv2d":
            kh, kw = self.kernel
            return im2col(self.x, kh, kw, self.stride, self.padding, self.dilation)
        return self.x.reshape(-1, self.x.shape[-1])


def _counts_of(op: str, ops: int) -> tuple[int, int]:
    """(macs, elements) of a record that gives only ``simd_ops`` (version 1, old callers)."""
    if op in simd.MAC_OPS and op != "module":
        return ops, 0
    return 0, ops // max(1, simd.OP_COST[op])


@dataclass
class Artifact:
    """A loaded artifact; ``hw`` is the hardware configuration it was compiled for (None before version 3
    or when :func:`save` was not given one)."""

    network: str
    macro: MacroConfig
    layers: list[LayerRecord]
    path: str | None = None
    meta: dict = field(default_factory=dict)
    hw: HwConfig | None = None
    #: the network program (:mod:`model.program`), None when the artifact has none (version < 4)
    program: dict | None = None
    #: the manifest's format version (the writer's :data:`VERSION` until saved and loaded)
    version: int = VERSION

    def mapped_layers(self) -> list[LayerRecord]:
        return [layer for layer in self.layers if layer.mapped]

    def predict(self, x: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        """The network's output (logits, float32) on inputs ``x`` (S, *input shape), computed from
        the artifact alone, bit-exact with the frozen integer-path network (:mod:`model.predict`).

        Raises
        ------
        model.predict.PredictError
            Bad ``x`` or ``batch_size``, or an artifact without a runnable program (one line).
        """
        from dbpim.model.predict import predict
        return predict(self, x, batch_size=batch_size)


def _layer_file(i: int, name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
    return f"layers/{i:03d}_{safe}.npz"


def file_digest(path) -> str:
    """SHA-256 of a file's bytes as 64 lower-case hex digits (the ``files`` field of the manifest)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save(path, network: str, macro: MacroConfig, layers: list[LayerRecord], meta: dict | None = None,
         overwrite: bool = False, compress: bool = True, hw: HwConfig | None = None,
         program: dict | None = None) -> Path:
    """Write an artifact directory atomically.

    Parameters
    ----------
    path : str or Path
        Target directory; must not exist unless ``overwrite``.
    network : str
    macro : MacroConfig
    layers : list of LayerRecord
    meta : dict, optional
        Free-form provenance (seed, sparsity, accuracies...), YAML-serialisable.
    overwrite : bool
        Replace an existing artifact written by :func:`save` (only after the new
        one is complete, as a whole folder: one atomic swap, docs/design.md §10).
    compress : bool
        Deflate the layer files (default); off for throw-away artifacts.
    hw : HwConfig, optional
        The hardware configuration the layers were compiled for: written as
        ``hw.yaml`` (re-loadable by :func:`model.config.load_config` to the
        same :meth:`HwConfig.digest`); its macro must be ``macro``.
    program : dict, optional
        The network program (:mod:`model.program`); written to ``program.npz`` and the manifest.

    Raises
    ------
    ArtifactError
        ``path`` exists and not ``overwrite``, a layer's kind is unknown, or
        ``hw`` is not an HwConfig for ``macro``.
    model.outdir.OutputError
        ``path`` holds files :func:`save` did not write, or cannot be written.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ArtifactError(f"{path}: already exists; choose another path or pass overwrite")
    if hw is not None and not isinstance(hw, HwConfig):
        raise ArtifactError(f"{path}: hw must be a model.config.HwConfig, got {type(hw).__name__}")
    if hw is not None and hw.macro.to_dict() != macro.to_dict():
        raise ArtifactError(f"{path}: hw: the configuration's macro {hw.macro.to_dict()} is not the macro the "
                            f"layers were compiled for {macro.to_dict()}")
    with output_dir(path, SAVE_COMMAND, adopt=_manifest_files) as tmp:
        (tmp / "layers").mkdir()
        records = []
        for i, layer in enumerate(layers):
            rec = {"name": layer.name, "kind": layer.kind, "in_shape": [int(v) for v in layer.in_shape],
                   "out_shape": [int(v) for v in layer.out_shape]}
            if layer.kind == "simd":
                op = layer.op or "other"
                if op not in SIMD_OPS:
                    raise ArtifactError(f"layer {layer.name}: op must be one of {', '.join(SIMD_OPS)}, got {op!r}")
                rec.update(op=op, simd_ops=simd.simd_ops(op, layer.macs, layer.elements), macs=int(layer.macs),
                           elements=int(layer.elements))
            elif layer.mapped:
                c = layer.compiled
                rec.update(file=_layer_file(i, layer.name), K=int(c.K), N=int(c.N), group_size=int(c.group_size),
                           signed_input=bool(layer.signed_input))
                if layer.kind == "conv2d":
                    rec.update(kernel=[int(v) for v in layer.kernel], stride=list(layer.stride),
                               padding=list(layer.padding), dilation=list(layer.dilation))
                    if layer.group is not None:
                        rec.update(group=[int(v) for v in layer.group])
                arrays = {"w": np.asarray(layer.w, np.int8), "scale": np.asarray(layer.scale, np.float32),
                          "phi": np.asarray(c.phi, np.uint8), "mask": np.asarray(c.mask, bool), **c.stacked()}
                if layer.x is not None:
                    arrays["x"] = np.asarray(layer.x, np.int8 if layer.signed_input else np.uint8)
                    arrays["x_scale"] = np.float32(layer.x_scale if layer.x_scale is not None else 1.0)
                if layer.w_float is not None:
                    arrays["w_float"] = np.asarray(layer.w_float, np.float32)
                (np.savez_compressed if compress else np.savez)(tmp / rec["file"], **arrays)
            else:
                raise ArtifactError(f"layer {layer.name}: kind must be one of {', '.join(MAPPED_KINDS + ('simd',))}, "
                                    f"got {layer.kind!r}")
            if layer.extra:
                rec["extra"] = layer.extra
            records.append(rec)
        manifest = {"format": FORMAT, "version": VERSION, "network": network, "hw": macro.to_dict()}
        if hw is not None:
            (tmp / HW_FILE).write_text(yaml.safe_dump(hw.to_dict(), sort_keys=False))
            try:
                again = load_config(tmp / HW_FILE).digest()
            except ConfigError as e:
                raise ArtifactError(f"{path}: hw: does not re-load ({e})") from None
            if again != hw.digest():
                raise ArtifactError(f"{path}: hw: {HW_FILE} does not re-load to the same configuration")
            manifest["hw_config"] = {"file": HW_FILE, "digest": hw.digest()}
        prog = None if program is None else _write_program(tmp, program, compress)
        manifest.update(meta=meta or {}, files=_digests(tmp, [r["file"] for r in records if "file" in r]
                                                        + ([HW_FILE] if hw is not None else [])
                                                        + ([gprog.FILE] if prog is not None else [])),
                        layers=records)
        if prog is not None:
            manifest["program"] = prog
        (tmp / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def _write_program(tmp: Path, program: dict, compress: bool) -> dict:
    """Write the program's arrays to ``program.npz``; return its manifest mapping."""
    doc, arrays = gprog.to_manifest(program)
    (np.savez_compressed if compress else np.savez)(tmp / gprog.FILE, **arrays)
    return doc


def _digests(root: Path, files) -> dict:
    """``{relative path: SHA-256}`` of ``files`` under ``root``, sorted by path."""
    return {rel: file_digest(root / rel) for rel in sorted(files)}


def reseal(path) -> Path:
    """Record the present digests of the files a version 3 manifest lists (after editing them on purpose).

    For tests and hand repairs only: :func:`load` refuses any file that changed
    after :func:`save` wrote it, and this makes the manifest agree again. The
    manifest is rewritten atomically (:func:`model.outdir.write_file`).
    """
    root = Path(path)
    mf = root / "manifest.yaml"
    doc = _read_manifest(mf)
    files = _need(doc, "files", str(mf), dict, "a mapping of file paths to SHA-256 digests")
    doc["files"] = _digests(root, [str(rel) for rel in files])
    write_file(mf, yaml.safe_dump(doc, sort_keys=False))
    return root


def _manifest_files(folder: Path) -> set[str]:
    """Files an artifact's own manifest names (an artifact written before output markers existed)."""
    try:
        doc = read_yaml(folder / "manifest.yaml", "a YAML manifest")
        if doc.get("format") != FORMAT:
            return set()
        listed = doc.get("files") if isinstance(doc.get("files"), dict) else {}
        return ({"manifest.yaml"} | {str(r["file"]) for r in doc["layers"] if isinstance(r, dict) and "file" in r}
                | {str(rel) for rel in listed} | ({gprog.FILE} if isinstance(doc.get("program"), dict) else set()))
    except (ConfigError, AttributeError, KeyError, TypeError):
        return set()


def _need(rec: dict, key: str, where: str, types, allowed: str):
    if key not in rec:
        raise ArtifactError(f"{where}: missing field '{key}' ({allowed})")
    v = rec[key]
    if not isinstance(v, types) or isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ArtifactError(f"{where}: field '{key}' must be {allowed}, got {v!r}")
    return v


def _int(rec: dict, key: str, where: str, lo: int, allowed: str) -> int:
    """A required integer field (not a bool) that is at least ``lo``."""
    v = _need(rec, key, where, int, allowed)
    if v < lo:
        raise ArtifactError(f"{where}: field '{key}' must be {allowed}, got {v}")
    return v


def _shape(rec: dict, key: str, where: str) -> tuple:
    """A required shape field: a list of non-negative integers."""
    v = _need(rec, key, where, list, "a list of non-negative integers")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v):
        raise ArtifactError(f"{where}: field '{key}' must be a list of non-negative integers, got {v!r}")
    return tuple(v)


def _optional(rec: dict, key: str, where: str, types, allowed: str, default):
    """An optional field: ``default`` when absent or null, else checked like :func:`_need`."""
    if rec.get(key) is None:
        return default
    return _need(rec, key, where, types, allowed)


def _arr(z, key: str, where: str, shape, dtype) -> np.ndarray:
    if key not in z:
        raise ArtifactError(f"{where}: missing array '{key}'")
    a = z[key]
    if a.dtype != np.dtype(dtype):
        raise ArtifactError(f"{where}: array '{key}' must be {np.dtype(dtype)}, got {a.dtype}")
    if shape is not None and a.shape != tuple(shape):
        raise ArtifactError(f"{where}: array '{key}' must have shape {tuple(shape)}, got {a.shape}")
    return a


def _in_range(a: np.ndarray, key: str, where: str, lo: int, hi: int) -> None:
    if a.size and (a.min() < lo or a.max() > hi):
        raise ArtifactError(f"{where}: array '{key}' must lie in [{lo}, {hi}]")


def _read_manifest(mf: Path) -> dict:
    """The parsed ``manifest.yaml``: a mapping with the right format and version."""
    if not mf.is_file():
        raise ArtifactError(f"{mf}: not found (an artifact is a directory with manifest.yaml)")
    try:
        doc = read_yaml(mf, "a YAML manifest")
    except ConfigError as e:
        raise ArtifactError(str(e)) from None
    if not isinstance(doc, dict):
        raise ArtifactError(f"{mf}: top level must be a mapping")
    fmt, ver = doc.get("format"), doc.get("version")
    if not (isinstance(fmt, str) and fmt == FORMAT):
        raise ArtifactError(f"{mf}: field 'format' must be '{FORMAT}', got {fmt!r}")
    if not (type(ver) is int and ver in READ_VERSIONS):
        raise ArtifactError(f"{mf}: field 'version' must be one of {', '.join(map(str, READ_VERSIONS))} "
                            f"(this reader), got {ver!r}")
    return doc


def _macro_of(doc: dict, mf: Path) -> MacroConfig:
    """The ``hw`` mapping as a :class:`MacroConfig`; every macro parameter is required."""
    keys = list(MacroConfig().to_dict())
    hw = _need(doc, "hw", str(mf), dict, f"a mapping with keys {', '.join(keys)}")
    for k in hw:
        if k not in keys:
            raise ArtifactError(f"{mf}: field 'hw.{k}': unknown key; allowed: {', '.join(keys)}")
    missing = [k for k in keys if k not in hw]
    if missing:
        raise ArtifactError(f"{mf}: field 'hw.{missing[0]}': required key missing")
    try:
        return MacroConfig(**hw)
    except (ConfigError, TypeError, ValueError) as e:
        raise ArtifactError(f"{mf}: field 'hw': {str(e).splitlines()[0]}") from None


def _check_files(root: Path, doc: dict, mf: Path) -> dict:
    """Check every file the version 3 field ``files`` lists against its digest; return the field.

    (Every layer record's ``file`` and ``hw_config.file`` must be listed:
    :func:`_listed`, where they are read.) Every listed file must be a file
    inside the artifact with exactly the recorded
    SHA-256 (so a file changed, truncated or swapped after :func:`save` is
    refused before it is read).
    """
    files = _need(doc, "files", str(mf), dict, "a mapping of file paths to SHA-256 digests (version 3)")
    for rel, dig in files.items():
        if not isinstance(rel, str) or not rel:
            raise ArtifactError(f"{mf}: field 'files': key {rel!r} must be a path relative to the artifact")
        if not (isinstance(dig, str) and _SHA256.fullmatch(dig)):
            raise ArtifactError(f"{mf}: field 'files.{rel}' must be a SHA-256 digest (64 lower-case hex digits), "
                                f"got {dig!r}")
        fpath = _layer_path(root, rel, f"{mf}: field 'files'", field_name="files")
        if file_digest(fpath) != dig:
            raise ArtifactError(f"{root / rel}: digest does not match manifest.yaml (file changed after it was "
                                f"written)")
    return files


def _listed(root: Path, fname: str, where: str, listed) -> None:
    """Refuse a file the manifest reads but ``files`` (version 3) does not list; ``listed`` None: no digests."""
    if listed is not None and fname not in listed:
        raise ArtifactError(f"{where}: {root / fname} is not listed in manifest.yaml field 'files' (no digest to "
                            f"check it against)")


def _hw_config(root: Path, doc: dict, mf: Path, macro: MacroConfig, listed) -> HwConfig | None:
    """The optional ``hw_config`` (version 3): ``hw.yaml`` loaded, its digest and macro checked."""
    if "hw_config" not in doc:
        return None
    where = f"{mf}: field 'hw_config'"
    hwc = _need(doc, "hw_config", str(mf), dict, "a mapping with keys file, digest")
    fname = _need(hwc, "file", where, str, "a path relative to the artifact")
    dig = _need(hwc, "digest", where, str, "a SHA-256 digest (64 lower-case hex digits)")
    if not _SHA256.fullmatch(dig):
        raise ArtifactError(f"{where}: field 'digest' must be a SHA-256 digest (64 lower-case hex digits), "
                            f"got {dig!r}")
    fpath = _layer_path(root, fname, where)
    _listed(root, fname, where, listed)
    try:
        cfg = load_config(fpath)
    except ConfigError as e:
        raise ArtifactError(f"{where}: {str(e).splitlines()[0]}") from None
    if cfg.digest() != dig:
        raise ArtifactError(f"{root / fname}: configuration digest {cfg.digest()} does not match manifest.yaml "
                            f"field 'hw_config.digest' {dig}")
    if cfg.macro.to_dict() != macro.to_dict():
        raise ArtifactError(f"{root / fname}: macro {cfg.macro.to_dict()} is not manifest.yaml field 'hw' "
                            f"{macro.to_dict()}")
    return cfg


def _layer_path(root: Path, fname: str, where: str, field_name: str = "file") -> Path:
    """The layer file ``fname``, which must be a file inside the artifact (symlinks resolved)."""
    inside = root.resolve()
    try:
        fpath = (root / fname).resolve()
    except (OSError, RuntimeError, ValueError) as e:
        raise ArtifactError(f"{where}: field '{field_name}': {fname!r} cannot be resolved "
                            f"({type(e).__name__})") from None
    if Path(fname).is_absolute() or inside not in fpath.parents:
        raise ArtifactError(f"{where}: field '{field_name}': {fname!r} must be a path inside the artifact")
    if not fpath.is_file():
        raise ArtifactError(f"{where}: field '{field_name}': {root / fname} not found")
    return fpath


def _read_npz(fpath: Path, fw: str) -> dict:
    try:
        with np.load(fpath, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise ValueError("a single array, not an archive")
            return dict(z)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same error to the user
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ArtifactError(f"{fw}: not a readable .npz ({msg})") from None


def _weights(z: dict, fw: str, K: int, N: int, G: int, macro: MacroConfig):
    """``w``, ``scale``, ``phi``, ``mask`` of a layer file, checked against each other (§8)."""
    w = _arr(z, "w", fw, (K, N), np.int8)
    scale = _arr(z, "scale", fw, (N,), np.float32)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ArtifactError(f"{fw}: array 'scale' must be finite and > 0")
    phi = _arr(z, "phi", fw, (N,), np.uint8)
    if phi.max(initial=0) > macro.phi_max:
        raise ArtifactError(f"{fw}: array 'phi' must lie in [0, {macro.phi_max}] (hw.phi_max), "
                            f"found {int(phi.max())}")
    mask = _arr(z, "mask", fw, (K, n_groups(N, G)), bool)
    full = expand_mask(mask, N, G)
    if np.any(w[~full] != 0):
        raise ArtifactError(f"{fw}: array 'w' has non-zero pruned weights (mask = 0)")
    nz = csd.nnz(w)
    bad = full & (nz != phi[None, :])
    if bad.any():
        k, n = np.argwhere(bad)[0]
        raise ArtifactError(f"{fw}: array 'w'[{k}, {n}] = {int(w[k, n])} has {int(nz[k, n])} non-zero CSD "
                            f"digits, but phi[{n}] = {int(phi[n])}")
    return w, scale, phi, mask


def _tile_arrays(z: dict, fw: str, K: int, N: int, G: int, macro: MacroConfig) -> dict:
    """The ``tiles_*`` arrays of a layer file with their dtypes, shapes and ranges."""
    meta = _arr(z, "tiles_meta", fw, None, np.int32)
    if meta.ndim != 2 or meta.shape[1] != 4:
        raise ArtifactError(f"{fw}: array 'tiles_meta' must have shape (T, 4), got {meta.shape}")
    T = meta.shape[0]
    arrays = {f"tiles_{k}": _arr(z, f"tiles_{k}", fw, (T,) + shape(macro), dtype)
              for k, (dtype, shape) in TILE_ARRAYS.items()}
    for k, lo, hi in (("tiles_cells", 0, 1), ("tiles_idx", 0, 3), ("tiles_sign", 0, 1), ("tiles_rows", -1, K - 1),
                      ("tiles_filters", -1, N - 1), ("tiles_col_filter", -1, macro.n_col - 1)):
        _in_range(arrays[k], k, fw, lo, hi)
    for j, (what, lo, hi) in enumerate((("group", 0, n_groups(N, G) - 1), ("row_tile", 0, K), ("col_tile", 0, N),
                                        ("n_rows_used", 1, macro.n_row))):
        col = meta[:, j]
        if col.size and (col.min() < lo or col.max() > hi):
            raise ArtifactError(f"{fw}: array 'tiles_meta'[:, {j}] ({what}) must lie in [{lo}, {hi}]")
    return arrays


def _w_float(z: dict, fw: str, K: int, N: int):
    """The optional float weights ``w_float`` (float32 (K, N), finite)."""
    if "w_float" not in z:
        return None
    wf = _arr(z, "w_float", fw, (K, N), np.float32)
    if not np.all(np.isfinite(wf)):
        raise ArtifactError(f"{fw}: array 'w_float' must be finite")
    return wf


def _inputs(z: dict, fw: str, signed: bool, in_shape: tuple):
    """The optional recorded inputs ``x`` and their scale ``x_scale``."""
    x = z.get("x")
    if x is not None:
        want = np.int8 if signed else np.uint8
        if x.dtype != want:
            raise ArtifactError(f"{fw}: array 'x' must be {np.dtype(want)} (signed_input={signed}), got {x.dtype}")
        if x.ndim != len(in_shape) + 1 or tuple(x.shape[1:]) != in_shape or x.shape[0] < 1:
            raise ArtifactError(f"{fw}: array 'x' must have shape (S, {', '.join(map(str, in_shape))}) with "
                                f"S >= 1 recorded samples, got {x.shape}")
    x_scale = None
    if "x_scale" in z:
        xs = _arr(z, "x_scale", fw, (), np.float32)
        if not (np.isfinite(xs) and xs > 0):
            raise ArtifactError(f"{fw}: array 'x_scale' must be finite and > 0, got {float(xs)}")
        x_scale = float(xs)
    return x, x_scale


def _ints(rec: dict, key: str, where: str, n: int, lo: int, default=None) -> tuple:
    """Field ``key``: a list of ``n`` integers >= ``lo`` (an integer means all equal: version 1)."""
    if key not in rec and default is not None:
        return default
    v = rec.get(key)
    t = [v] * n if type(v) is int else v
    if not isinstance(t, list) or len(t) != n or any(type(a) is not int or a < lo for a in t):
        raise ArtifactError(f"{where}: field '{key}' must be a list of {n} integers >= {lo}, got {v!r}")
    return tuple(t)


def _check_geometry(kind: str, rec: dict, where: str, in_shape: tuple, out_shape: tuple, K: int, N: int) -> dict:
    """Check a mapped layer's shape fields against each other; return its geometry as LayerRecord fields.

    linear: ``in_shape`` = (*tokens, K), ``out_shape`` = (*tokens, N). conv2d:
    ``kernel``, ``stride``, ``padding``, ``dilation`` are [h, w] pairs (kernel,
    stride, dilation >= 1, padding >= 0), ``in_shape`` is (C, H, W) with
    ``C * kh * kw = K``, and ``out_shape`` is (N, Ho, Wo) with PyTorch's
    ``Ho = (H + 2 ph - dh (kh - 1) - 1) // sh + 1 >= 1``; ``group`` (optional)
    is [j, groups] with j < groups.
    """
    if kind == "linear":
        if len(in_shape) < 1 or in_shape[-1] != K:
            raise ArtifactError(f"{where}: in_shape {list(in_shape)} must end with K={K} (leading axes are tokens)")
        if out_shape != in_shape[:-1] + (N,):
            raise ArtifactError(f"{where}: out_shape {list(out_shape)} must be in_shape with the last axis N={N}, "
                                f"i.e. {list(in_shape[:-1] + (N,))}")
        return {}
    kernel = _ints(rec, "kernel", where, 2, 1)
    stride = _ints(rec, "stride", where, 2, 1)
    padding = _ints(rec, "padding", where, 2, 0)
    dilation = _ints(rec, "dilation", where, 2, 1, default=(1, 1))
    if len(in_shape) != 3 or in_shape[0] * kernel[0] * kernel[1] != K:
        raise ArtifactError(f"{where}: in_shape {list(in_shape)} and kernel {list(kernel)} do not give K={K}")
    ho, wo = (conv_out_size(in_shape[i + 1], kernel[i], stride[i], padding[i], dilation[i]) for i in (0, 1))
    if min(ho, wo) < 1 or out_shape != (N, ho, wo):
        raise ArtifactError(f"{where}: out_shape {list(out_shape)} does not match in_shape, kernel, stride, padding "
                            f"and dilation, which give {[N, ho, wo]}")
    group = None
    if "group" in rec:
        group = _ints(rec, "group", where, 2, 0)
        if not group[0] < group[1]:
            raise ArtifactError(f"{where}: field 'group' must be [j, groups] with 0 <= j < groups, got {list(group)}")
    return dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation, group=group)


def _simd_layer(rec: dict, where: str, common: dict, version: int) -> LayerRecord:
    op = _need(rec, "op", where, str, f"one of {', '.join(SIMD_OPS)}")
    if op not in SIMD_OPS:
        raise ArtifactError(f"{where}: field 'op' must be one of {', '.join(SIMD_OPS)}, got {op!r}")
    ops = _int(rec, "simd_ops", where, 0, "a non-negative integer")
    if version == 1:
        macs, elements = _counts_of(op, ops)
    else:
        macs = _int(rec, "macs", where, 0, "a non-negative integer")
        elements = _int(rec, "elements", where, 0, "a non-negative integer")
        if ops != simd.simd_ops(op, macs, elements):
            raise ArtifactError(f"{where}: field 'simd_ops' = {ops} must equal macs + cost('{op}') x elements = "
                                f"{simd.simd_ops(op, macs, elements)} (model/simd.py)")
    out = LayerRecord(op=op, macs=macs, elements=elements, **common)
    out.simd_ops = ops  # version 1 keeps its own count
    return out


def _mapped_layer(root: Path, rec: dict, where: str, common: dict, macro: MacroConfig,
                  check_tiles: bool, version: int = VERSION, listed=None) -> LayerRecord:
    K = _int(rec, "K", where, 1, "a positive integer")
    N = _int(rec, "N", where, 1, "a positive integer")
    G = _int(rec, "group_size", where, 1, "a positive integer")
    signed = _optional(rec, "signed_input", where, bool, "true or false", False)
    if version == 1 and common["kind"] == "linear" and math.prod(common["in_shape"]) == K:
        # version 1: a linear layer's in_shape was its flattened input, one vector per sample
        v1_shape, common = common["in_shape"], {**common, "in_shape": (K,)}
    geometry = _check_geometry(common["kind"], rec, where, common["in_shape"], common["out_shape"], K, N)
    fname = _need(rec, "file", where, str, "a path relative to the artifact")
    fw = str(root / fname)
    fpath = _layer_path(root, fname, where)
    _listed(root, fname, f"{where}: field 'file'", listed)
    z = _read_npz(fpath, fw)
    w, scale, phi, mask = _weights(z, fw, K, N, G, macro)
    arrays = _tile_arrays(z, fw, K, N, G, macro)
    compiled = CompiledLayer.from_stacked(K, N, macro, G, phi, mask, arrays)
    if check_tiles:
        bad = mapping_error(compiled)
        if bad is not None:
            raise ArtifactError(f"{fw}: tiles: {bad}")
        if not np.array_equal(weights_of(compiled), w.astype(np.int64)):
            raise ArtifactError(f"{fw}: packed tiles do not reproduce array 'w' (inconsistent artifact)")
    if version == 1 and common["kind"] == "linear" and "x" in z and z["x"].ndim > 2 \
            and math.prod(z["x"].shape[1:]) == K and tuple(z["x"].shape[1:]) == v1_shape:
        z = {**z, "x": z["x"].reshape(len(z["x"]), K)}
    x, x_scale = _inputs(z, fw, signed, common["in_shape"])
    return LayerRecord(signed_input=signed, w=w, scale=scale, compiled=compiled, x=x, x_scale=x_scale,
                       w_float=_w_float(z, fw, K, N), **geometry, **common)


def _layer(root: Path, rec, where: str, macro: MacroConfig, check_tiles: bool, version: int = VERSION,
           listed=None) -> LayerRecord:
    """One manifest record (``where`` names it in errors) as a checked :class:`LayerRecord`."""
    if not isinstance(rec, dict):
        raise ArtifactError(f"{where}: must be a mapping")
    name = _need(rec, "name", where, str, "a string")
    where = f"{where} ({name})"
    kind = _need(rec, "kind", where, str, f"one of {', '.join(MAPPED_KINDS + ('simd',))}")
    if kind not in MAPPED_KINDS + ("simd",):
        raise ArtifactError(f"{where}: field 'kind' must be one of {', '.join(MAPPED_KINDS + ('simd',))}, "
                            f"got {kind!r}")
    common = {"name": name, "kind": kind, "in_shape": _shape(rec, "in_shape", where),
              "out_shape": _shape(rec, "out_shape", where),
              "extra": _optional(rec, "extra", where, dict, "a mapping", {})}
    if kind == "simd":
        return _simd_layer(rec, where, common, version)
    return _mapped_layer(root, rec, where, common, macro, check_tiles, version, listed)


def load(path, check_tiles: bool = True) -> Artifact:
    """Read and validate an artifact directory.

    Checks the manifest (format, version, every field's type and range, the
    geometry of each layer, layer files inside the artifact), from version 3
    the SHA-256 of every file against the manifest's ``files`` and the
    hardware configuration ``hw.yaml`` (``Artifact.hw``), every layer file
    (arrays, dtypes, shapes, ranges), that pruned weights are 0, that every kept
    weight has exactly its filter's phi non-zero CSD digits, and (with
    ``check_tiles``) that the tiles follow the mapping rules
    (:func:`model.compile.mapping_error`) and reproduce ``w`` exactly.

    Raises
    ------
    ArtifactError
        The only exception for any malformed artifact; one line naming the
        file, the field and what is allowed.
    """
    root = Path(path)
    mf = root / "manifest.yaml"
    doc = _read_manifest(mf)
    macro = _macro_of(doc, mf)
    hw = listed = None
    if doc["version"] >= DIGESTS_SINCE:
        listed = _check_files(root, doc, mf)
        hw = _hw_config(root, doc, mf, macro, listed)
    network = _optional(doc, "network", str(mf), str, "a string", root.name)
    meta = _optional(doc, "meta", str(mf), dict, "a mapping", {})
    layers_doc = _need(doc, "layers", str(mf), list, "a list of layer records")
    layers = []
    for i, rec in enumerate(layers_doc):
        where = f"{mf}: layers[{i}]"
        try:
            layers.append(_layer(root, rec, where, macro, check_tiles, doc["version"], listed))
        except ArtifactError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError, RecursionError) as e:
            msg = str(e).splitlines()[0] if str(e) else ""
            raise ArtifactError(f"{where}: malformed ({type(e).__name__}: {msg})") from None
    program = _read_program(root, doc, layers, mf, listed)
    return Artifact(network=network, macro=macro, layers=layers, path=str(root), meta=meta, hw=hw, program=program,
                    version=doc["version"])


def _read_program(root: Path, doc: dict, layers: list[LayerRecord], mf: Path, listed) -> dict | None:
    """The validated network program (version 4; None when absent; versions 1 to 3 have none)."""
    if doc["version"] < PROGRAM_SINCE or doc.get("program") is None:
        return None
    _listed(root, gprog.FILE, f"{mf}: field 'program'", listed)
    try:
        return gprog.read(root, doc["program"], layers, str(mf), ArtifactError)
    except ArtifactError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        raise ArtifactError(f"{mf}: field 'program': malformed ({type(e).__name__}: {msg})") from None

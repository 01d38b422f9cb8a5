"""The compiled artifact (docs/design.md §8): what the front-end hands to the golden
model, the performance model and the testbenches.

Format version 1 is a directory::

    manifest.yaml              format, version, network, hw (macro), layers
    layers/<i>_<name>.npz      arrays of each layer mapped on the macros

See ``docs/contracts.md`` for every field. :func:`save` stages the files in a
temporary sibling directory (:func:`model.outdir.output_dir`): a new artifact
appears by one rename, a failure never leaves a half-written artifact, and a
folder holding files :func:`save` did not write is never overwritten.
:func:`load` validates everything and raises only :class:`ArtifactError`,
naming the file, the field and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from model import csd
from model.compile import TILE_ARRAYS, CompiledLayer
from model.config import ConfigError, MacroConfig, read_yaml
from model.layer import conv_out_size, weights_of
from model.outdir import output_dir
from model.prune import expand_mask, n_groups

__all__ = ["ArtifactError", "Artifact", "LayerRecord", "save", "load", "FORMAT", "VERSION",
           "MAPPED_KINDS", "SIMD_OPS"]

FORMAT = "dbpim-artifact"
VERSION = 1
MAPPED_KINDS = ("conv2d", "linear")
SIMD_OPS = ("depthwise", "pool", "relu", "add", "mul", "other")
SAVE_COMMAND = "model.artifact.save"


class ArtifactError(ValueError):
    """A malformed or inconsistent artifact; the message names file and field."""


@dataclass
class LayerRecord:
    """One layer of the network.

    ``kind`` is ``conv2d`` or ``linear`` for layers mapped onto the macros
    (then ``compiled``, ``w``, ``scale`` are set) or ``simd`` for everything
    else (then ``op`` and ``simd_ops`` describe the work of the SIMD core).
    """

    name: str
    kind: str
    in_shape: tuple
    out_shape: tuple
    op: str | None = None
    kernel: tuple | None = None
    stride: int = 1
    padding: int = 0
    signed_input: bool = False
    simd_ops: int = 0
    w: np.ndarray | None = None
    scale: np.ndarray | None = None
    compiled: CompiledLayer | None = None
    x: np.ndarray | None = None
    x_scale: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def mapped(self) -> bool:
        return self.kind in MAPPED_KINDS

    def im2col_inputs(self) -> np.ndarray | None:
        """Recorded inputs as im2col rows (P_total, K), or None if none were recorded."""
        if self.x is None:
            return None
        from model.layer import im2col
        if self.kind == "conv2d":
            kh, kw = self.kernel
            return im2col(self.x, kh, kw, self.stride, self.padding)
        return self.x.reshape(self.x.shape[0], -1)


@dataclass
class Artifact:
    network: str
    macro: MacroConfig
    layers: list[LayerRecord]
    path: str | None = None
    meta: dict = field(default_factory=dict)

    def mapped_layers(self) -> list[LayerRecord]:
        return [layer for layer in self.layers if layer.mapped]


def _layer_file(i: int, name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
    return f"layers/{i:03d}_{safe}.npz"


def save(path, network: str, macro: MacroConfig, layers: list[LayerRecord], meta: dict | None = None,
         overwrite: bool = False) -> Path:
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
        one is complete; its files are moved in one by one, ``manifest.yaml`` last).

    Raises
    ------
    ArtifactError
        ``path`` exists and not ``overwrite``, or a layer's kind is unknown.
    model.outdir.OutputError
        ``path`` holds files :func:`save` did not write, or cannot be written.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ArtifactError(f"{path}: already exists; choose another --out or pass overwrite")
    with output_dir(path, SAVE_COMMAND, adopt=_manifest_files) as tmp:
        (tmp / "layers").mkdir()
        records = []
        for i, layer in enumerate(layers):
            rec = {"name": layer.name, "kind": layer.kind, "in_shape": [int(v) for v in layer.in_shape],
                   "out_shape": [int(v) for v in layer.out_shape]}
            if layer.kind == "simd":
                rec.update(op=layer.op or "other", simd_ops=int(layer.simd_ops))
            elif layer.mapped:
                c = layer.compiled
                rec.update(file=_layer_file(i, layer.name), K=int(c.K), N=int(c.N), group_size=int(c.group_size),
                           signed_input=bool(layer.signed_input))
                if layer.kind == "conv2d":
                    rec.update(kernel=[int(v) for v in layer.kernel], stride=int(layer.stride),
                               padding=int(layer.padding))
                arrays = {"w": np.asarray(layer.w, np.int8), "scale": np.asarray(layer.scale, np.float32),
                          "phi": np.asarray(c.phi, np.uint8), "mask": np.asarray(c.mask, bool), **c.stacked()}
                if layer.x is not None:
                    arrays["x"] = np.asarray(layer.x, np.int8 if layer.signed_input else np.uint8)
                    arrays["x_scale"] = np.float32(layer.x_scale if layer.x_scale is not None else 1.0)
                np.savez_compressed(tmp / rec["file"], **arrays)
            else:
                raise ArtifactError(f"layer {layer.name}: kind must be one of {', '.join(MAPPED_KINDS + ('simd',))}, "
                                    f"got {layer.kind!r}")
            if layer.extra:
                rec["extra"] = layer.extra
            records.append(rec)
        manifest = {"format": FORMAT, "version": VERSION, "network": network, "hw": macro.to_dict(),
                    "meta": meta or {}, "layers": records}
        (tmp / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def _manifest_files(folder: Path) -> set[str]:
    """Files an artifact's own manifest names (an artifact written before output markers existed)."""
    try:
        doc = read_yaml(folder / "manifest.yaml", "a YAML manifest")
        if doc.get("format") != FORMAT:
            return set()
        return {"manifest.yaml"} | {str(r["file"]) for r in doc["layers"] if isinstance(r, dict) and "file" in r}
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
    if not (type(ver) is int and ver == VERSION):
        raise ArtifactError(f"{mf}: field 'version' must be {VERSION} (this reader), got {ver!r}")
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


def _layer_path(root: Path, fname: str, where: str) -> Path:
    """The layer file ``fname``, which must be a file inside the artifact (symlinks resolved)."""
    inside = root.resolve()
    try:
        fpath = (root / fname).resolve()
    except (OSError, RuntimeError, ValueError) as e:
        raise ArtifactError(f"{where}: field 'file': {fname!r} cannot be resolved ({type(e).__name__})") from None
    if Path(fname).is_absolute() or inside not in fpath.parents:
        raise ArtifactError(f"{where}: field 'file': {fname!r} must be a path inside the artifact")
    if not fpath.is_file():
        raise ArtifactError(f"{where}: field 'file': {root / fname} not found")
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
    for j, (what, hi) in enumerate((("group", n_groups(N, G) - 1), ("row_tile", K), ("col_tile", N),
                                    ("n_rows_used", macro.n_row))):
        col = meta[:, j]
        if col.size and (col.min() < 0 or col.max() > hi):
            raise ArtifactError(f"{fw}: array 'tiles_meta'[:, {j}] ({what}) must lie in [0, {hi}]")
    return arrays


def _inputs(z: dict, fw: str, signed: bool, in_shape: tuple):
    """The optional recorded inputs ``x`` and their scale ``x_scale``."""
    x = z.get("x")
    if x is not None:
        want = np.int8 if signed else np.uint8
        if x.dtype != want:
            raise ArtifactError(f"{fw}: array 'x' must be {np.dtype(want)} (signed_input={signed}), got {x.dtype}")
        if x.ndim != len(in_shape) + 1 or tuple(x.shape[1:]) != in_shape:
            raise ArtifactError(f"{fw}: array 'x' must have shape (S, {', '.join(map(str, in_shape))}), "
                                f"got {x.shape}")
    x_scale = None
    if "x_scale" in z:
        xs = _arr(z, "x_scale", fw, (), np.float32)
        if not (np.isfinite(xs) and xs > 0):
            raise ArtifactError(f"{fw}: array 'x_scale' must be finite and > 0, got {float(xs)}")
        x_scale = float(xs)
    return x, x_scale


def _check_geometry(kind: str, rec: dict, where: str, in_shape: tuple, out_shape: tuple, K: int, N: int) -> dict:
    """Check a mapped layer's shape fields against each other; return its ``kernel``/``stride``/``padding``.

    conv2d: ``kernel`` is two positive integers, ``stride >= 1``, ``padding >=
    0``, ``in_shape`` is (C, H, W) with ``C * kh * kw = K``, and ``out_shape``
    is (N, Ho, Wo) with ``Ho = (H + 2 padding - kh) // stride + 1 >= 1`` (and
    likewise Wo). linear: ``prod(in_shape) = K`` and ``out_shape = [N]``.
    """
    if kind == "linear":
        if math.prod(in_shape) != K:
            raise ArtifactError(f"{where}: in_shape {list(in_shape)} does not give K={K}")
        if out_shape != (N,):
            raise ArtifactError(f"{where}: out_shape must be [{N}] (N), got {list(out_shape)}")
        return {}
    kernel = _need(rec, "kernel", where, list, "[kh, kw], two positive integers")
    if len(kernel) != 2 or not all(type(v) is int and v >= 1 for v in kernel):
        raise ArtifactError(f"{where}: field 'kernel' must be [kh, kw], two positive integers, got {kernel!r}")
    stride = _int(rec, "stride", where, 1, "an integer >= 1")
    padding = _int(rec, "padding", where, 0, "an integer >= 0")
    kh, kw = kernel
    if len(in_shape) != 3 or in_shape[0] * kh * kw != K:
        raise ArtifactError(f"{where}: in_shape {list(in_shape)} and kernel {kernel} do not give K={K}")
    ho, wo = (conv_out_size(h, k, stride, padding) for h, k in zip(in_shape[1:], kernel))
    if min(ho, wo) < 1 or out_shape != (N, ho, wo):
        raise ArtifactError(f"{where}: out_shape must be [{N}, {ho}, {wo}] (N and the conv of in_shape "
                            f"{list(in_shape)} by kernel {kernel}, stride {stride}, padding {padding}), "
                            f"got {list(out_shape)}")
    return {"kernel": (kh, kw), "stride": stride, "padding": padding}


def _simd_layer(rec: dict, where: str, common: dict) -> LayerRecord:
    op = _need(rec, "op", where, str, f"one of {', '.join(SIMD_OPS)}")
    if op not in SIMD_OPS:
        raise ArtifactError(f"{where}: field 'op' must be one of {', '.join(SIMD_OPS)}, got {op!r}")
    ops = _int(rec, "simd_ops", where, 0, "a non-negative integer")
    return LayerRecord(op=op, simd_ops=ops, **common)


def _mapped_layer(root: Path, rec: dict, where: str, common: dict, macro: MacroConfig,
                  check_tiles: bool) -> LayerRecord:
    K = _int(rec, "K", where, 1, "a positive integer")
    N = _int(rec, "N", where, 1, "a positive integer")
    G = _int(rec, "group_size", where, 1, "a positive integer")
    signed = _optional(rec, "signed_input", where, bool, "true or false", False)
    geometry = _check_geometry(common["kind"], rec, where, common["in_shape"], common["out_shape"], K, N)
    fname = _need(rec, "file", where, str, "a path relative to the artifact")
    fw = str(root / fname)
    z = _read_npz(_layer_path(root, fname, where), fw)
    w, scale, phi, mask = _weights(z, fw, K, N, G, macro)
    arrays = _tile_arrays(z, fw, K, N, G, macro)
    compiled = CompiledLayer.from_stacked(K, N, macro, G, phi, mask, arrays)
    if check_tiles and not np.array_equal(weights_of(compiled), w.astype(np.int64)):
        raise ArtifactError(f"{fw}: packed tiles do not reproduce array 'w' (inconsistent artifact)")
    x, x_scale = _inputs(z, fw, signed, common["in_shape"])
    return LayerRecord(signed_input=signed, w=w, scale=scale, compiled=compiled, x=x, x_scale=x_scale,
                       **geometry, **common)


def _layer(root: Path, rec, where: str, macro: MacroConfig, check_tiles: bool) -> LayerRecord:
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
        return _simd_layer(rec, where, common)
    return _mapped_layer(root, rec, where, common, macro, check_tiles)


def load(path, check_tiles: bool = True) -> Artifact:
    """Read and validate an artifact directory.

    Checks the manifest (format, version, every field's type and range, the
    geometry of each layer, layer files inside the artifact), every layer file
    (arrays, dtypes, shapes, ranges), that pruned weights are 0, that every kept
    weight has exactly its filter's phi non-zero CSD digits, and (with
    ``check_tiles``) that the packed tiles reproduce ``w`` exactly.

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
    network = _optional(doc, "network", str(mf), str, "a string", root.name)
    meta = _optional(doc, "meta", str(mf), dict, "a mapping", {})
    layers_doc = _need(doc, "layers", str(mf), list, "a list of layer records")
    layers = []
    for i, rec in enumerate(layers_doc):
        where = f"{mf}: layers[{i}]"
        try:
            layers.append(_layer(root, rec, where, macro, check_tiles))
        except ArtifactError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError, RecursionError) as e:
            msg = str(e).splitlines()[0] if str(e) else ""
            raise ArtifactError(f"{where}: malformed ({type(e).__name__}: {msg})") from None
    return Artifact(network=network, macro=macro, layers=layers, path=str(root), meta=meta)

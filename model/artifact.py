"""The compiled artifact (docs/design.md §8): what the front-end hands to the golden
model, the performance model and the testbenches.

Format version 1 is a directory::

    manifest.yaml              format, version, network, hw (macro), layers
    layers/<i>_<name>.npz      arrays of each layer mapped on the macros

See ``docs/contracts.md`` for every field. :func:`save` writes into a temporary
sibling directory and renames it into place, so a failure never leaves a
half-written artifact and never clobbers an existing one. :func:`load`
validates everything and raises :class:`ArtifactError` naming the file, the
field and what is allowed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from model import csd
from model.compile import CompiledLayer
from model.config import ConfigError, MacroConfig
from model.layer import weights_of
from model.prune import expand_mask, n_groups

__all__ = ["ArtifactError", "Artifact", "LayerRecord", "save", "load", "FORMAT", "VERSION",
           "MAPPED_KINDS", "SIMD_OPS"]

FORMAT = "dbpim-artifact"
VERSION = 1
MAPPED_KINDS = ("conv2d", "linear")
SIMD_OPS = ("depthwise", "pool", "relu", "add", "mul", "other")
_TILE_FIELDS = ("tiles_cells", "tiles_idx", "tiles_sign", "tiles_rows", "tiles_col_filter", "tiles_filters",
                "tiles_meta")


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
        Replace an existing artifact (only after the new one is complete).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ArtifactError(f"{path}: already exists; choose another --out or pass overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
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
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _need(rec: dict, key: str, where: str, types, allowed: str):
    if key not in rec:
        raise ArtifactError(f"{where}: missing field '{key}' ({allowed})")
    v = rec[key]
    if not isinstance(v, types) or isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ArtifactError(f"{where}: field '{key}' must be {allowed}, got {v!r}")
    return v


def _arr(z, key: str, where: str, shape, dtype) -> np.ndarray:
    if key not in z:
        raise ArtifactError(f"{where}: missing array '{key}'")
    a = z[key]
    if a.dtype != np.dtype(dtype):
        raise ArtifactError(f"{where}: array '{key}' must be {np.dtype(dtype)}, got {a.dtype}")
    if shape is not None and a.shape != tuple(shape):
        raise ArtifactError(f"{where}: array '{key}' must have shape {tuple(shape)}, got {a.shape}")
    return a


def load(path, check_tiles: bool = True) -> Artifact:
    """Read and validate an artifact directory.

    Checks the manifest (format, version, fields, types), every layer file
    (arrays, dtypes, shapes, ranges), that pruned weights are 0, that every kept
    weight has exactly its filter's phi non-zero CSD digits, and (with
    ``check_tiles``) that the packed tiles reproduce ``w`` exactly.

    Raises
    ------
    ArtifactError
    """
    root = Path(path)
    mf = root / "manifest.yaml"
    if not mf.is_file():
        raise ArtifactError(f"{mf}: not found (an artifact is a directory with manifest.yaml)")
    try:
        doc = yaml.safe_load(mf.read_text())
    except yaml.YAMLError as e:
        raise ArtifactError(f"{mf}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise ArtifactError(f"{mf}: top level must be a mapping")
    if doc.get("format") != FORMAT:
        raise ArtifactError(f"{mf}: field 'format' must be '{FORMAT}', got {doc.get('format')!r}")
    if doc.get("version") != VERSION:
        raise ArtifactError(f"{mf}: field 'version' must be {VERSION} (this reader), got {doc.get('version')!r}")
    hw = _need(doc, "hw", str(mf), dict, "a mapping of macro parameters")
    try:
        macro = MacroConfig(**hw)
    except (ConfigError, TypeError) as e:
        raise ArtifactError(f"{mf}: field 'hw': {e}") from None
    layers_doc = _need(doc, "layers", str(mf), list, "a list of layer records")
    layers = []
    for i, rec in enumerate(layers_doc):
        where = f"{mf}: layers[{i}]"
        if not isinstance(rec, dict):
            raise ArtifactError(f"{where}: must be a mapping")
        name = _need(rec, "name", where, str, "a string")
        where = f"{mf}: layers[{i}] ({name})"
        kind = _need(rec, "kind", where, str, f"one of {', '.join(MAPPED_KINDS + ('simd',))}")
        in_shape = tuple(_need(rec, "in_shape", where, list, "a list of ints"))
        out_shape = tuple(_need(rec, "out_shape", where, list, "a list of ints"))
        if kind == "simd":
            op = _need(rec, "op", where, str, f"one of {', '.join(SIMD_OPS)}")
            if op not in SIMD_OPS:
                raise ArtifactError(f"{where}: field 'op' must be one of {', '.join(SIMD_OPS)}, got {op!r}")
            ops = _need(rec, "simd_ops", where, int, "a non-negative integer")
            if ops < 0:
                raise ArtifactError(f"{where}: field 'simd_ops' must be >= 0, got {ops}")
            layers.append(LayerRecord(name=name, kind=kind, in_shape=in_shape, out_shape=out_shape, op=op,
                                      simd_ops=ops, extra=rec.get("extra") or {}))
            continue
        if kind not in MAPPED_KINDS:
            raise ArtifactError(f"{where}: field 'kind' must be one of {', '.join(MAPPED_KINDS + ('simd',))}, "
                                f"got {kind!r}")
        K = _need(rec, "K", where, int, "a positive integer")
        N = _need(rec, "N", where, int, "a positive integer")
        G = _need(rec, "group_size", where, int, "a positive integer")
        if min(K, N, G) < 1:
            raise ArtifactError(f"{where}: K, N and group_size must be positive, got {K}, {N}, {G}")
        fname = _need(rec, "file", where, str, "a path relative to the artifact")
        fpath = root / fname
        if not fpath.is_file():
            raise ArtifactError(f"{where}: field 'file': {fpath} not found")
        fw = str(fpath)
        try:
            with np.load(fpath, allow_pickle=False) as z:
                z = dict(z)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same error to the user
            raise ArtifactError(f"{fw}: not a readable .npz ({e})") from None
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
        T = len(z.get("tiles_meta", ()))
        shp = {"tiles_cells": (T, macro.n_row, macro.n_comp, macro.n_col), "tiles_rows": (T, macro.n_row, macro.n_comp),
               "tiles_col_filter": (T, macro.n_col), "tiles_filters": (T, macro.n_col), "tiles_meta": (T, 4)}
        shp["tiles_idx"] = shp["tiles_sign"] = shp["tiles_cells"]
        dt = {"tiles_cells": np.uint8, "tiles_idx": np.uint8, "tiles_sign": np.uint8, "tiles_rows": np.int32,
              "tiles_col_filter": np.int16, "tiles_filters": np.int32, "tiles_meta": np.int32}
        arrays = {k: _arr(z, k, fw, shp[k], dt[k]) for k in _TILE_FIELDS}
        for k, hi in (("tiles_cells", 1), ("tiles_idx", 3), ("tiles_sign", 1)):
            if arrays[k].max(initial=0) > hi:
                raise ArtifactError(f"{fw}: array '{k}' must lie in [0, {hi}]")
        if arrays["tiles_rows"].min(initial=-1) < -1 or arrays["tiles_rows"].max(initial=-1) >= K:
            raise ArtifactError(f"{fw}: array 'tiles_rows' must lie in [-1, {K - 1}]")
        if arrays["tiles_filters"].min(initial=-1) < -1 or arrays["tiles_filters"].max(initial=-1) >= N:
            raise ArtifactError(f"{fw}: array 'tiles_filters' must lie in [-1, {N - 1}]")
        if arrays["tiles_col_filter"].min(initial=-1) < -1 or arrays["tiles_col_filter"].max(initial=-1) >= macro.n_col:
            raise ArtifactError(f"{fw}: array 'tiles_col_filter' must lie in [-1, {macro.n_col - 1}]")
        compiled = CompiledLayer.from_stacked(K, N, macro, G, phi, mask, arrays)
        if check_tiles and not np.array_equal(weights_of(compiled), w.astype(np.int64)):
            raise ArtifactError(f"{fw}: packed tiles do not reproduce array 'w' (inconsistent artifact)")
        signed = bool(rec.get("signed_input", False))
        x = z.get("x")
        if x is not None:
            want = np.int8 if signed else np.uint8
            if x.dtype != want:
                raise ArtifactError(f"{fw}: array 'x' must be {np.dtype(want)} (signed_input={signed}), got {x.dtype}")
            if tuple(x.shape[1:]) != in_shape:
                raise ArtifactError(f"{fw}: array 'x' must have shape (S, {', '.join(map(str, in_shape))}), "
                                    f"got {x.shape}")
        kernel, stride, padding = None, 1, 0
        if kind == "conv2d":
            kernel = tuple(_need(rec, "kernel", where, list, "[kh, kw]"))
            stride = _need(rec, "stride", where, int, "a positive integer")
            padding = _need(rec, "padding", where, int, "a non-negative integer")
            if len(in_shape) != 3 or in_shape[0] * kernel[0] * kernel[1] != K:
                raise ArtifactError(f"{where}: in_shape {list(in_shape)} and kernel {list(kernel)} do not give K={K}")
        elif int(np.prod(in_shape)) != K:
            raise ArtifactError(f"{where}: in_shape {list(in_shape)} does not give K={K}")
        layers.append(LayerRecord(name=name, kind=kind, in_shape=in_shape, out_shape=out_shape, kernel=kernel,
                                  stride=stride, padding=padding, signed_input=signed, w=w, scale=scale,
                                  compiled=compiled, x=x,
                                  x_scale=float(z["x_scale"]) if "x_scale" in z else None,
                                  extra=rec.get("extra") or {}))
    return Artifact(network=str(doc.get("network", root.name)), macro=macro, layers=layers, path=str(root),
                    meta=doc.get("meta") or {})

"""The network program of a compiled artifact (docs/design.md §8 "Network program").

An artifact's layer records say what each layer is and how it is mapped; the
*network program* says how the layers connect: the operations of the frozen
integer-path network in topological order, each with its inputs, its
parameters and its quantization constants, enough to run the whole network
(:mod:`model.predict`) from the artifact alone.

In memory a program is a plain dict::

    {"input": {"shape": [...per sample...], "dtype": "float32"},
     "output": <name of the op whose value is the network's output>,
     "ops": [{"name": ..., "op": ..., "inputs": [...], "shape": [...], <parameters>}, ...]}

where a mapped op's ``bias`` is a float32 array or None. On disk the ops go
to ``manifest.yaml`` under ``program`` and the arrays to :data:`FILE`
(``np.savez``, no pickles), each op's array under the key ``<iii>_<field>``
(iii = the op's index, 3 digits) named in the manifest.

NumPy only: :func:`read` validates everything (types, names, inputs defined
before use, every op's output shape against its inputs and parameters, mapped
ops against their layer records) and raises only ``ValueError`` subclasses
given by the caller, one line naming the field.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["FILE", "OPS", "RUNNABLE", "PROGRAM_SINCE", "op_shape", "to_manifest", "read", "require_program"]

FILE = "program.npz"
#: The first artifact format version with a network program (``model.artifact.VERSION`` 4).
PROGRAM_SINCE = 4
#: Every op of a program and what it computes (float32 unless said; docs/design.md §8):
OPS = {
    "input": "the network's input (no inputs)",
    "mapped": "a mapped layer: quantize, integer conv/linear on the macros, requantize",
    "clamp": "elementwise min(max(x, lo), hi) (ReLU: lo 0, hi null; ReLU6: 0, 6)",
    "add": "elementwise sum of two inputs of the same shape",
    "reshape": "a row-major reshape to 'shape' (flatten, view)",
    "identity": "the input unchanged (Identity, Dropout in eval)",
    "maxpool2d": "2-D max pooling: kernel, stride, padding (implicit -inf), dilation; floor mode",
    "mean": "the mean over per-sample 'axes' (global average pooling), keepdim",
    "depthwise": "a depthwise convolution (groups = channels, float weights with its BatchNorm folded, bias) on "
                 "the SIMD core; model.predict runs its unfolded torch form (dw_weight, dw_bias, bn_*)",
    "batchnorm": "an eval-mode BatchNorm not folded into a mapped layer: per channel (axis 0 of a sample) "
                 "x * alpha + beta with torch's alpha, beta from mean, var, weight, bias, eps",
    "sigmoid": "elementwise 1 / (1 + exp(-x))",
    "silu": "elementwise x / (1 + exp(-x)) (SiLU, swish)",
    "mul": "elementwise product of two inputs, broadcast like NumPy (the squeeze-excitation gate)",
    "avgpool2d": "2-D average pooling: kernel, stride, padding (zeros), count_include_pad; floor mode",
    "transpose": "a permutation 'perm' of the per-sample axes (transpose, permute)",
    "scale": "elementwise x * value (a float32 constant: the attention's 1 / sqrt(head_dim))",
    "matmul": "the matrix product of two inputs over their last two axes, leading axes broadcast (attention)",
    "softmax": "softmax over the per-sample 'axis'",
    "layernorm": "LayerNorm over the last len(weight.shape) axes: (x - mean) / sqrt(var + eps) * weight + bias",
    "gelu": "elementwise GELU, 'approximate' none (erf) or tanh",
    "encoder_layer": "a whole nn.TransformerEncoderLayer (batch first, no mask; attention not decomposed) in float",
    "unsupported": "an operation model.predict cannot run ('what' names it); predict refuses the program",
}
#: The ops :mod:`model.predict` runs.
RUNNABLE = tuple(k for k in OPS if k != "unsupported")
#: The arrays of a depthwise op that :mod:`model.predict` needs (the torch network's unfolded form); a program
#: written before they were recorded has none of them and predict refuses it (recompile).
DEPTHWISE_TORCH = ("dw_weight", "dw_bias", "bn_mean", "bn_var", "bn_weight", "bn_bias")
MAPPED_KINDS = ("conv2d", "conv1d", "linear")


def require_program(artifact, *, error=ValueError, purpose: str = "") -> dict:
    """The network program of ``artifact`` (a :class:`model.artifact.Artifact`), or ``error`` in one line.

    Parameters
    ----------
    artifact : model.artifact.Artifact
    error : type of Exception
        Raised, naming the artifact, when it has no network program: its format version predates programs
        (< :data:`PROGRAM_SINCE`) or it was saved without one; either way the fix is to recompile it.
    purpose : str
        Appended to the message after "recompile it (dbpim compile)" (e.g. " to use predict").
    """
    prog = artifact.program
    if prog is None:
        why = (f"format version {artifact.version} has no network program" if artifact.version < PROGRAM_SINCE
               else "has no network program (saved without one)")
        raise error(f"artifact {artifact.path or artifact.network}: {why}; recompile it (dbpim compile){purpose}")
    return prog


def _ints(v, n=None, lo=None) -> bool:
    return (isinstance(v, list) and (n is None or len(v) == n)
            and all(type(a) is int and (lo is None or a >= lo) for a in v))


def op_shape(op: dict, ins: list[tuple], records: dict) -> tuple:
    """Per-sample output shape of ``op`` on inputs of per-sample shapes ``ins``.

    Raises ``ValueError`` (one line, no location) when the op's parameters or
    inputs are inconsistent.
    """
    kind = op["op"]
    if kind in ("clamp", "identity", "sigmoid", "silu"):
        return ins[0]
    if kind == "transpose":
        perm = op["perm"]
        if sorted(perm) != list(range(len(ins[0]))):
            raise ValueError(f"perm {perm} must be a permutation of the {len(ins[0])} per-sample axes")
        return tuple(ins[0][a] for a in perm)
    if kind in ("scale", "gelu", "layernorm"):
        return ins[0]
    if kind == "encoder_layer":
        if len(ins[0]) != 2:
            raise ValueError(f"input must be (tokens, features) per sample, got {list(ins[0])}")
        return ins[0]
    if kind == "softmax":
        if op["axis"] >= len(ins[0]):
            raise ValueError(f"axis {op['axis']} is not an axis of the per-sample shape {list(ins[0])}")
        return ins[0]
    if kind == "matmul":
        a, b = ins
        if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
            raise ValueError(f"inputs of shapes {list(a)} and {list(b)} cannot be multiplied (last axis of the "
                             "first must equal the second's next-to-last)")
        lead_a, lead_b = a[:-2], b[:-2]
        if len(lead_a) != len(lead_b) or any(u != v and 1 not in (u, v) for u, v in zip(lead_a, lead_b)):
            raise ValueError(f"leading axes {list(lead_a)} and {list(lead_b)} must broadcast (same rank)")
        return tuple(max(u, v) for u, v in zip(lead_a, lead_b)) + (a[-2], b[-1])
    if kind == "batchnorm":
        if len(ins[0]) < 1:
            raise ValueError("input must have a channel axis (C, ...) per sample")
        return ins[0]
    if kind == "mul":
        a, b = ins
        if len(a) != len(b) or any(u != v and 1 not in (u, v) for u, v in zip(a, b)):
            raise ValueError(f"inputs have shapes {list(a)} and {list(b)}; must broadcast (same rank, each axis "
                             "equal or 1)")
        return tuple(max(u, v) if 0 not in (u, v) else 0 for u, v in zip(a, b))
    if kind == "add":
        if ins[0] != ins[1]:
            raise ValueError(f"inputs have shapes {list(ins[0])} and {list(ins[1])}; must be equal")
        return ins[0]
    if kind == "reshape":
        shape = tuple(op["shape"])
        if math.prod(shape) != math.prod(ins[0]):
            raise ValueError(f"shape {list(shape)} does not hold the {math.prod(ins[0])} elements of "
                             f"{list(ins[0])}")
        return shape
    if kind == "mean":
        axes = op["axes"]
        if len(set(axes)) != len(axes) or any(a >= len(ins[0]) for a in axes):
            raise ValueError(f"axes {axes} must be distinct axes of the per-sample shape {list(ins[0])}")
        if op["keepdim"]:
            return tuple(1 if i in axes else d for i, d in enumerate(ins[0]))
        return tuple(d for i, d in enumerate(ins[0]) if i not in axes)
    if kind == "depthwise":
        if len(ins[0]) != 3:
            raise ValueError(f"input must be (C, H, W) per sample, got {list(ins[0])}")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = op["kernel"], op["stride"], op["padding"], op["dilation"]
        c, h, w = ins[0]
        ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if min(ho, wo) < 1:
            raise ValueError(f"input {h}x{w} is smaller than the kernel")
        return c, ho, wo
    if kind == "avgpool2d":
        if len(ins[0]) != 3:
            raise ValueError(f"input must be (C, H, W) per sample, got {list(ins[0])}")
        (kh, kw), (sh, sw), (ph, pw) = op["kernel"], op["stride"], op["padding"]
        if 2 * ph > kh or 2 * pw > kw:
            raise ValueError(f"padding {op['padding']} must be at most half the kernel {op['kernel']}")
        c, h, w = ins[0]
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if min(ho, wo) < 1:
            raise ValueError(f"input {h}x{w} is smaller than the pooling window")
        return c, ho, wo
    if kind == "maxpool2d":
        if len(ins[0]) != 3:
            raise ValueError(f"input must be (C, H, W) per sample, got {list(ins[0])}")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = op["kernel"], op["stride"], op["padding"], op["dilation"]
        if 2 * ph > kh or 2 * pw > kw:
            raise ValueError(f"padding {op['padding']} must be at most half the kernel {op['kernel']}")
        c, h, w = ins[0]
        ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if min(ho, wo) < 1:
            raise ValueError(f"input {h}x{w} is smaller than the pooling window")
        return c, ho, wo
    if kind == "mapped":
        return _mapped_shape(op, ins[0], records)
    if kind == "unsupported":
        return tuple(op["shape"])
    raise ValueError(f"op {kind!r} has no shape rule")


def _mapped_shape(op: dict, x: tuple, records: dict) -> tuple:
    recs = [records[n] for n in op["layers"]]
    g = len(recs)
    kind = op["kind"]
    want_rec = "linear" if kind == "linear" else "conv2d"
    for j, r in enumerate(recs):
        if r.kind != want_rec:
            raise ValueError(f"layer {r.name!r} is a {r.kind} record; a {kind} op runs {want_rec} records")
        if g > 1 and r.group != (j, g):
            raise ValueError(f"layer {r.name!r} must be group [{j}, {g}] of the op, got {r.group}")
        if bool(r.signed_input) != op["signed_input"]:
            raise ValueError(f"layer {r.name!r}: signed_input {r.signed_input} differs from the op's")
    N = sum(int(r.compiled.N) for r in recs)
    if kind == "linear":
        if g != 1 or x != recs[0].in_shape:
            raise ValueError(f"input shape {list(x)} must equal layer {recs[0].name!r}'s in_shape "
                             f"{list(recs[0].in_shape)}")
        return recs[0].out_shape
    xin = (x[0], 1, x[1]) if kind == "conv1d" else x
    if len(xin) != 3 or any((xin[0] // g,) + xin[1:] != r.in_shape for r in recs) or xin[0] % g:
        raise ValueError(f"input shape {list(x)} does not match the in_shape of layers {op['layers']}")
    out = (N,) + recs[0].out_shape[1:]
    return (out[0], out[2]) if kind == "conv1d" else out


def to_manifest(program: dict) -> tuple[dict, dict]:
    """(manifest mapping, arrays for :data:`FILE`) of an in-memory program."""
    ops, arrays = [], {}
    for i, op in enumerate(program["ops"]):
        rec = {}
        for k, v in op.items():
            if isinstance(v, np.ndarray):
                key = f"{i:03d}_{k}"
                arrays[key] = np.asarray(v, np.float32)
                v = key
            rec[k] = v
        ops.append(rec)
    doc = {"file": FILE, "input": dict(program["input"]), "output": program["output"], "ops": ops}
    return doc, arrays


# ----------------------------------------------------------------------------- reading

_PARAMS = {  # op -> {field: (check, allowed)}
    "mapped": {"kind": (lambda v: v in MAPPED_KINDS, f"one of {', '.join(MAPPED_KINDS)}"),
               "layers": (lambda v: isinstance(v, list) and v and all(isinstance(a, str) for a in v),
                          "a non-empty list of mapped layer names"),
               "signed_input": (lambda v: isinstance(v, bool), "true or false"),
               "x_scale": (lambda v: isinstance(v, float) and math.isfinite(v) and v > 0
                           and float(np.float32(v)) == v, "a finite float32 value > 0")},
    "clamp": {"lo": (lambda v: v is None or isinstance(v, (int, float)) and not isinstance(v, bool)
                     and math.isfinite(v), "a finite number or null"),
              "hi": (lambda v: v is None or isinstance(v, (int, float)) and not isinstance(v, bool)
                     and math.isfinite(v), "a finite number or null")},
    "reshape": {},
    "mean": {"axes": (lambda v: _ints(v, lo=0) and len(v) > 0, "a non-empty list of integers >= 0"),
             "keepdim": (lambda v: isinstance(v, bool), "true or false")},
    "maxpool2d": {"kernel": (lambda v: _ints(v, 2, 1), "a list of 2 integers >= 1"),
                  "stride": (lambda v: _ints(v, 2, 1), "a list of 2 integers >= 1"),
                  "padding": (lambda v: _ints(v, 2, 0), "a list of 2 integers >= 0"),
                  "dilation": (lambda v: _ints(v, 2, 1), "a list of 2 integers >= 1")},
    "depthwise": {"kernel": (lambda v: _ints(v, 2, 1), "a list of 2 integers >= 1"),
                  "stride": (lambda v: _ints(v, 2, 1), "a list of 2 integers >= 1"),
                  "padding": (lambda v: _ints(v, 2, 0), "a list of 2 integers >= 0"),
                  "dilation": (lambda v: _ints(v, 2, 1), "a list of 2 integers >= 1")},
    "batchnorm": {"eps": (lambda v: isinstance(v, float) and math.isfinite(v) and v > 0, "a finite number > 0")},
    "avgpool2d": {"kernel": (lambda v: _ints(v, 2, 1), "a list of 2 integers >= 1"),
                  "stride": (lambda v: _ints(v, 2, 1), "a list of 2 integers >= 1"),
                  "padding": (lambda v: _ints(v, 2, 0), "a list of 2 integers >= 0"),
                  "count_include_pad": (lambda v: isinstance(v, bool), "true or false")},
    "transpose": {"perm": (lambda v: _ints(v, lo=0) and len(v) > 0, "a list of integers >= 0")},
    "scale": {"value": (lambda v: isinstance(v, float) and math.isfinite(v) and float(np.float32(v)) == v,
                        "a finite float32 value")},
    "softmax": {"axis": (lambda v: type(v) is int and v >= 0, "an integer >= 0")},
    "layernorm": {"eps": (lambda v: isinstance(v, float) and math.isfinite(v) and v > 0, "a finite number > 0")},
    "gelu": {"approximate": (lambda v: v in ("none", "tanh"), "none or tanh")},
    "encoder_layer": {"heads": (lambda v: type(v) is int and v >= 1, "an integer >= 1"),
                      "norm_first": (lambda v: isinstance(v, bool), "true or false"),
                      "activation": (lambda v: v in ("relu", "gelu"), "relu or gelu"),
                      "eps1": (lambda v: isinstance(v, float) and math.isfinite(v) and v > 0, "a finite number > 0"),
                      "eps2": (lambda v: isinstance(v, float) and math.isfinite(v) and v > 0, "a finite number > 0")},
    "unsupported": {"what": (lambda v: isinstance(v, str), "a string")},
}
_ARITY = {"input": 0, "add": 2, "mul": 2, "matmul": 2}


def read(root: Path, doc, records: list, where: str, error=ValueError) -> dict | None:
    """The validated in-memory program of a manifest's ``program`` mapping ``doc`` (None: absent).

    ``records`` are the artifact's loaded layer records; ``where`` names the
    manifest in errors, raised as ``error``.
    """
    if doc is None:
        return None
    w = f"{where}: field 'program"
    if not isinstance(doc, dict):
        raise error(f"{w}' must be a mapping with file, input, output, ops")
    for k in ("file", "input", "output", "ops"):
        if k not in doc:
            raise error(f"{w}.{k}': required key missing")
    if not isinstance(doc["file"], str) or doc["file"] != FILE:
        raise error(f"{w}.file' must be {FILE!r}, got {doc['file']!r}")
    inp = doc["input"]
    if not (isinstance(inp, dict) and _ints(inp.get("shape"), lo=1) and inp.get("dtype") == "float32"):
        raise error(f"{w}.input' must be a mapping with shape (a list of integers >= 1) and dtype float32, "
                    f"got {inp!r}")
    if not isinstance(doc["ops"], list) or not doc["ops"]:
        raise error(f"{w}.ops' must be a non-empty list of op mappings")
    fpath = root / FILE
    if not fpath.is_file():
        raise error(f"{root / FILE}: not found (named by the manifest's program)")
    try:
        with np.load(fpath, allow_pickle=False) as z:
            arrays = dict(z) if hasattr(z, "files") else None
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same error to the user
        raise error(f"{fpath}: not a readable .npz ({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
            from None
    if arrays is None:
        raise error(f"{fpath}: not a readable .npz (a single array, not an archive)")
    by_name = {r.name: r for r in records if r.mapped}
    shapes: dict[str, tuple] = {}
    ops = []
    for i, rec in enumerate(doc["ops"]):
        wo = f"{w}.ops[{i}]"
        if not isinstance(rec, dict):
            raise error(f"{wo}' must be a mapping")
        name, kind = rec.get("name"), rec.get("op")
        if not isinstance(name, str) or not name:
            raise error(f"{wo}.name' must be a non-empty string, got {name!r}")
        if name in shapes:
            raise error(f"{wo}.name' {name!r} is used twice")
        if not isinstance(kind, str) or kind not in OPS:
            raise error(f"{wo}.op' must be one of {', '.join(OPS)}, got {kind!r}")
        if (kind == "input") != (i == 0):
            raise error(f"{wo}.op': the first op and only it is the input")
        inputs = rec.get("inputs")
        if not (isinstance(inputs, list) and all(isinstance(a, str) for a in inputs)):
            raise error(f"{wo}.inputs' must be a list of op names, got {inputs!r}")
        if len(inputs) != _ARITY.get(kind, len(inputs) if kind == "unsupported" else 1):
            raise error(f"{wo}.inputs' must name {_ARITY.get(kind, 1)} ops for {kind}, got {len(inputs)}")
        for a in inputs:
            if a not in shapes:
                raise error(f"{wo}.inputs': {a!r} is not an earlier op")
        shape = rec.get("shape")
        if not _ints(shape, lo=0):
            raise error(f"{wo}.shape' must be a list of integers >= 0, got {shape!r}")
        op = {"name": name, "op": kind, "inputs": list(inputs), "shape": list(shape)}
        for k, (ok, allowed) in _PARAMS.get(kind, {}).items():
            if k not in rec or not ok(rec[k]):
                raise error(f"{wo}.{k}' must be {allowed}, got {rec.get(k)!r}")
            op[k] = rec[k]
        if "range" in rec:
            if not _range_ok(rec["range"]):
                raise error(f"{wo}.range' must be [min, max], two finite numbers with min <= max, "
                            f"got {rec['range']!r}")
            op["range"] = [float(v) for v in rec["range"]]
        if kind == "mapped":
            missing = [n for n in op["layers"] if n not in by_name]
            if missing:
                raise error(f"{wo}.layers': {missing[0]!r} is not a mapped layer record of the artifact")
            op["bias"] = _bias(rec, arrays, fpath, wo, sum(int(by_name[n].compiled.N) for n in op["layers"]), error)
        if kind == "depthwise":
            c = shapes[inputs[0]][0] if inputs and len(shapes[inputs[0]]) == 3 else 0
            op["weight"] = _array(rec, "weight", arrays, fpath, wo, (c, *op["kernel"]), error)
            op["bias"] = _array(rec, "bias", arrays, fpath, wo, (c,), error)
            present = [k for k in DEPTHWISE_TORCH if k in rec]
            if present:  # the unfolded torch form (model.predict): the conv's own weights, the BatchNorm's
                op["dw_weight"] = _array(rec, "dw_weight", arrays, fpath, wo, (c, *op["kernel"]), error)
                op["dw_bias"] = None if rec.get("dw_bias", None) is None else \
                    _array(rec, "dw_bias", arrays, fpath, wo, (c,), error)
                bn = [k for k in DEPTHWISE_TORCH[2:] if rec.get(k) is not None]
                if bn:
                    for k in DEPTHWISE_TORCH[2:]:
                        op[k] = _array(rec, k, arrays, fpath, wo, (c,), error)
                    if not np.all(op["bn_var"] >= 0):
                        raise error(f"{fpath}: array {rec['bn_var']!r} (bn_var) must be >= 0")
                    eps = rec.get("bn_eps")
                    if not (isinstance(eps, float) and math.isfinite(eps) and eps > 0):
                        raise error(f"{wo}.bn_eps' must be a finite number > 0, got {eps!r}")
                    op["bn_eps"] = eps
        if kind == "layernorm":
            key = rec.get("weight")
            nshape = arrays[key].shape if isinstance(key, str) and key in arrays else None
            xs = shapes[inputs[0]] if inputs else ()
            if nshape is None or not nshape or tuple(xs[len(xs) - len(nshape):]) != nshape:
                raise error(f"{wo}.weight' must name a float32 array of program.npz shaped like the last axes of "
                            f"the input {list(xs)}, got {key!r}")
            for k in ("weight", "bias"):
                op[k] = _array(rec, k, arrays, fpath, wo, nshape, error)
        if kind == "encoder_layer":
            xs = shapes[inputs[0]] if inputs else ()
            E = xs[-1] if len(xs) == 2 else 0
            if E % op["heads"]:
                raise error(f"{wo}.heads' must divide the {E} features, got {op['heads']}")
            key = rec.get("w1")
            F = arrays[key].shape[0] if isinstance(key, str) and key in arrays and arrays[key].ndim == 2 else 0
            for k, ashape in (("in_w", (3 * E, E)), ("in_b", (3 * E,)), ("out_w", (E, E)), ("out_b", (E,)),
                              ("w1", (F, E)), ("b1", (F,)), ("w2", (E, F)), ("b2", (E,)), ("n1_w", (E,)),
                              ("n1_b", (E,)), ("n2_w", (E,)), ("n2_b", (E,))):
                op[k] = _array(rec, k, arrays, fpath, wo, ashape, error)
        if kind == "batchnorm":
            c = shapes[inputs[0]][0] if inputs and shapes[inputs[0]] else 0
            for k in ("mean", "var", "weight", "bias"):
                op[k] = _array(rec, k, arrays, fpath, wo, (c,), error)
            if not np.all(op["var"] >= 0):
                raise error(f"{fpath}: array {rec['var']!r} (var) must be >= 0")
        if kind == "input":
            got = tuple(inp["shape"])
        else:
            try:
                got = op_shape(op, [shapes[a] for a in inputs], by_name)
            except (ValueError, KeyError, TypeError, IndexError) as e:
                raise error(f"{wo}' ({name}): {str(e).splitlines()[0]}") from None
        if got != tuple(shape):
            raise error(f"{wo}.shape' ({name}) must be {list(got)} (from its inputs and parameters), "
                        f"got {shape}")
        shapes[name] = tuple(shape)
        ops.append(op)
    if not isinstance(doc["output"], str) or doc["output"] not in shapes:
        raise error(f"{w}.output' must name an op, got {doc['output']!r}")
    return {"input": {"shape": list(inp["shape"]), "dtype": "float32"}, "output": doc["output"], "ops": ops}


def _range_ok(v) -> bool:
    return (isinstance(v, list) and len(v) == 2
            and all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in v)
            and v[0] <= v[1])


def _array(rec: dict, field: str, arrays: dict, fpath: Path, wo: str, shape: tuple, error):
    """A required finite float32 array of ``shape`` named by the op's ``field``."""
    key = rec.get(field)
    if not isinstance(key, str) or key not in arrays:
        raise error(f"{wo}.{field}' must be an array name of {FILE}, got {key!r}")
    a = arrays[key]
    if a.dtype != np.float32 or a.shape != tuple(shape) or not np.all(np.isfinite(a)):
        raise error(f"{fpath}: array {key!r} must be finite float32 of shape {tuple(shape)}, got {a.dtype} {a.shape}")
    return a


def _bias(rec: dict, arrays: dict, fpath: Path, wo: str, N: int, error):
    key = rec.get("bias")
    if key is None:
        return None
    if not isinstance(key, str) or key not in arrays:
        raise error(f"{wo}.bias' must be null or an array name of {FILE}, got {key!r}")
    b = arrays[key]
    if b.dtype != np.float32 or b.shape != (N,) or not np.all(np.isfinite(b)):
        raise error(f"{fpath}: array {key!r} must be finite float32 of shape ({N},), got {b.dtype} {b.shape}")
    return b

"""Capture a network by dataflow (docs/frontend.md "Capture").

:func:`capture` traces the network with ``torch.fx`` and decides from the
graph, never from attribute names, what maps onto the PIM macros:

* every ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` whose weight is consumed
  only through its own forward call, exactly once, and shared with no other
  module, and whose configuration the macros support (:func:`why_not_mappable`:
  zero padding; depthwise convolutions stay on the SIMD core);
* ``nn.MultiheadAttention`` is first decomposed into four Linear projections
  and explicit attention matmuls (:mod:`model.torch.attention`);
* a module whose forward cannot be traced (data-dependent control flow) is
  kept whole as one graph node (a *leaf*): it and everything inside it runs in
  float on the SIMD core and is named in the report;
* a BatchNorm is folded into its producer when that producer is a mapped
  conv/linear whose only consumer is the BatchNorm, and the BatchNorm
  normalises that layer's output channels; every other BatchNorm is left in
  place (float, SIMD) with the reason (:func:`bn_plan`).

The result is a :class:`Capture`: the ``fx.GraphModule`` the flow trains and
exports (it shares the module objects of the traced network), the mapped layer
names in execution order, the BatchNorm plan and the notes for the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.fx as fx
from torch import nn

from dbpim.model.torch.attention import decompose_attention

__all__ = ["CaptureError", "Capture", "capture", "trace", "why_not_mappable", "conv_padding", "mapped_kind",
           "bn_plan", "fold_bn", "node_label", "propagate_shapes"]

MAPPABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


class CaptureError(ValueError):
    """The network cannot be captured; the message is one line naming the place."""


# ----------------------------------------------------------------------------- what the macros can run

def conv_padding(m: nn.Module) -> tuple[int, ...] | None:
    """Symmetric zero padding of a conv per spatial axis (``'same'``/``'valid'`` resolved), or None
    when ``'same'`` needs asymmetric padding (an even dilated kernel)."""
    if not isinstance(m.padding, str):
        return tuple(int(p) for p in m.padding)
    if m.padding == "valid":
        return (0,) * len(m.kernel_size)
    total = [d * (k - 1) for k, d in zip(m.kernel_size, m.dilation)]
    return None if any(t % 2 for t in total) else tuple(t // 2 for t in total)


def why_not_mappable(m: nn.Module) -> str | None:
    """None if the macros can run module ``m``, else the one-line reason."""
    if isinstance(m, nn.Linear):
        return None
    if isinstance(m, (nn.Conv1d, nn.Conv2d)):
        if m.padding_mode != "zeros":
            return f"padding_mode={m.padding_mode!r} (only zero padding is mapped)"
        if conv_padding(m) is None:
            return "padding='same' with an even dilated kernel needs asymmetric padding"
        if m.groups > 1 and m.in_channels == m.groups:
            return f"depthwise convolution (groups={m.groups}): runs on the SIMD core"
        return None
    return f"{type(m).__name__} is not a layer the macros run"


def mapped_kind(m: nn.Module) -> str:
    """``linear``, ``conv1d`` or ``conv2d``."""
    return {nn.Linear: "linear", nn.Conv1d: "conv1d", nn.Conv2d: "conv2d"}[
        next(t for t in MAPPABLE if isinstance(m, t))]


# ----------------------------------------------------------------------------- tracing

class _Tracer(fx.Tracer):
    """Traces into every module except atomic ``torch.nn`` modules (those without
    children), modules marked ``dbpim_leaf`` (the front-end's QLayer) and the
    names in ``leaves``; remembers the innermost module a failure happened in."""

    def __init__(self, leaves: set[str]):
        super().__init__()
        self.leaves = leaves
        self.failed_in: str | None = None

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if getattr(m, "dbpim_leaf", False) or qualname in self.leaves:
            return True
        if isinstance(m, nn.MultiheadAttention):
            return True
        return type(m).__module__.startswith(("torch.nn", "torch.ao.nn")) and next(m.children(), None) is None

    def call_module(self, m, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:
                self.failed_in = self.path_of_module(m)
            raise


def trace(model: nn.Module, leaves=()) -> tuple[fx.GraphModule, list[str]]:
    """``torch.fx`` graph of ``model``; modules whose forward cannot be traced become leaves.

    Returns the GraphModule (sharing ``model``'s submodules) and the names of
    the modules that had to be kept whole. Dead code is removed.
    """
    leaves = set(leaves)
    was = model.training
    model.eval()  # the graph is traced once; Python-level `self.training` branches see eval
    try:
        for _ in range(1 + sum(1 for _ in model.modules())):
            tr = _Tracer(leaves)
            try:
                graph = tr.trace(model)
                break
            except Exception as e:  # noqa: BLE001 - any tracing failure is handled the same way
                if tr.failed_in in (None, "") or tr.failed_in in leaves:
                    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
                    raise CaptureError(f"model: its forward cannot be traced with torch.fx ({type(e).__name__}: "
                                       f"{msg[:200]}); remove data-dependent control flow from the top-level "
                                       "forward") from None
                leaves.add(tr.failed_in)
    finally:
        model.train(was)
    gm = fx.GraphModule(model, graph, class_name=type(model).__name__)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    gm.train(was)
    return gm, sorted(leaves)


def node_label(node: fx.Node) -> str:
    """Readable name of a graph node: the module path for modules, else owner path + node name."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    owner = next(reversed(stack.values()))[0] if stack else ""
    return f"{owner}.{node.name}" if owner else node.name


# ----------------------------------------------------------------------------- the capture

@dataclass
class Capture:
    """A network captured for the flow.

    Attributes
    ----------
    gm : fx.GraphModule
        The network the flow trains, quantizes and exports.
    mapped : list of str
        Module names of the mapped layers, in execution order.
    bn : list of dict
        Every BatchNorm: ``name``, ``folded`` (bool), ``into`` (mapped layer or
        None), ``reason``.
    passed : list of dict
        Weight layers and modules that are not mapped: ``name``, ``kind``,
        ``note`` (they run in float on the SIMD core).
    notes : list of str
        What the capture changed (attention decomposed, ...).
    """

    gm: fx.GraphModule
    mapped: list[str]
    bn: list[dict] = field(default_factory=list)
    passed: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def bn_pairs(self) -> dict[str, str]:
        """Mapped layer -> the BatchNorm to fold into it."""
        return {b["into"]: b["name"] for b in self.bn if b["folded"]}

    def modules(self) -> dict[str, nn.Module]:
        return dict(self.gm.named_modules())


def _module_calls(gm: fx.GraphModule) -> dict[str, list[fx.Node]]:
    calls: dict[str, list[fx.Node]] = {}
    for n in gm.graph.nodes:
        if n.op == "call_module":
            calls.setdefault(str(n.target), []).append(n)
    return calls


def _shared_params(model: nn.Module) -> dict[int, list[str]]:
    owners: dict[int, list[str]] = {}
    for mname, m in model.named_modules(remove_duplicate=False):
        for pname, p in m.named_parameters(recurse=False):
            owners.setdefault(id(p), [])
            if mname not in owners[id(p)]:
                owners[id(p)].append(mname)
    return owners


def _decide_mapped(gm: fx.GraphModule, root: nn.Module) -> tuple[list[str], list[dict]]:
    mods = dict(gm.named_modules())
    calls = _module_calls(gm)
    attrs = {str(n.target): n for n in gm.graph.nodes if n.op == "get_attr"}
    owners = _shared_params(root)
    mapped, passed = [], []
    for n in gm.graph.nodes:
        if n.op != "call_module" or not isinstance(mods[str(n.target)], MAPPABLE):
            continue
        name, m = str(n.target), mods[str(n.target)]
        if name in mapped or any(p["name"] == name for p in passed):
            continue
        why = why_not_mappable(m)
        if why is None and len(calls[name]) > 1:
            why = f"called {len(calls[name])} times (one set of weights, several inputs)"
        if why is None:
            direct = [t for t in attrs if t.startswith(name + ".")]
            if direct:
                why = f"its parameter {direct[0]!r} is also read directly"
        if why is None:
            other = [o for o in owners.get(id(m.weight), []) if o != name]
            if other:
                why = f"its weight is shared with {other[0]!r}"
        if why is None and isinstance(m, (nn.Conv1d, nn.Conv2d)) \
                and n.meta.get("in_ndim") not in (None, m.weight.dim()):
            why = "unbatched input"
        if why is None:
            mapped.append(name)
        else:
            passed.append({"name": name, "kind": mapped_kind(m), "note": why})
    return mapped, passed


def bn_plan(gm: fx.GraphModule, mapped: list[str]) -> list[dict]:
    """Which BatchNorms fold into which mapped layer (by dataflow), and why the others do not."""
    mods = dict(gm.named_modules())
    calls = _module_calls(gm)
    plan = []
    for n in gm.graph.nodes:
        if n.op != "call_module" or not isinstance(mods[str(n.target)], nn.modules.batchnorm._BatchNorm):
            continue
        bn = mods[str(n.target)]
        name = str(n.target)
        src = n.args[0] if n.args else None
        reason, into = None, None
        if len(calls[name]) > 1:
            reason = f"called {len(calls[name])} times"
        elif not isinstance(bn, _BN):
            reason = f"{type(bn).__name__} is not folded"
        elif not bn.track_running_stats or bn.running_var is None:
            reason = "no running statistics"
        elif not isinstance(src, fx.Node) or src.op != "call_module":
            label = node_label(src) if isinstance(src, fx.Node) else "a constant"
            reason = f"its input {label!r} is not a mapped conv/linear (pre-activation or functional op)"
        elif str(src.target) not in mapped:
            reason = f"its producer {str(src.target)!r} is not mapped ({type(mods[str(src.target)]).__name__})"
        elif len(src.users) != 1:
            others = [node_label(u) for u in src.users if u is not n]
            reason = f"its producer {str(src.target)!r} also feeds {others[0]!r}"
        else:
            prod = mods[str(src.target)]
            out_ch = prod.out_features if isinstance(prod, nn.Linear) else prod.out_channels
            if bn.num_features != out_ch:
                reason = f"num_features {bn.num_features} != the producer's {out_ch} output channels"
            elif isinstance(prod, nn.Linear) and src.meta.get("out_ndim", 2) != 2:
                reason = "normalises axis 1 of a token sequence, not the Linear's output features"
            elif isinstance(prod, nn.Conv2d) != isinstance(bn, nn.BatchNorm2d) and not isinstance(prod, nn.Linear):
                reason = "BatchNorm dimensionality does not match the convolution"
            else:
                into = str(src.target)
        plan.append({"name": name, "folded": into is not None, "into": into,
                     "reason": f"follows mapped layer {into!r}" if into else reason})
    return plan


@torch.no_grad()
def fold_bn(cap: Capture) -> list[str]:
    """Fold every planned BatchNorm into its mapped layer (weights scaled per output
    channel, bias shifted) and remove it from the graph; returns the folded BN names.

    Pruned (zero) weights stay zero. The folded bias stays float and is added
    after the integer accumulation.
    """
    gm = cap.gm
    mods = dict(gm.named_modules())
    done = []
    for layer, bn_name in cap.bn_pairs.items():
        if bn_name not in mods:
            continue  # already folded
        conv, bn = mods[layer], mods[bn_name]
        inv = torch.rsqrt(bn.running_var + bn.eps)
        if bn.affine:
            inv = bn.weight * inv
        conv.weight.mul_(inv.reshape(-1, *([1] * (conv.weight.dim() - 1))))
        b0 = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
        nb = (b0 - bn.running_mean) * inv + beta
        if conv.bias is None:
            conv.bias = nn.Parameter(nb.clone())
        else:
            conv.bias.copy_(nb)
        for n in list(gm.graph.nodes):
            if n.op == "call_module" and str(n.target) == bn_name:
                n.replace_all_uses_with(n.args[0])
                gm.graph.erase_node(n)
        gm.delete_submodule(bn_name)
        done.append(bn_name)
    gm.recompile()
    return done


# ----------------------------------------------------------------------------- shapes

class _ShapeRecorder(fx.Interpreter):
    def __init__(self, gm):
        super().__init__(gm)
        self.shapes: dict[str, tuple] = {}

    def run_node(self, n):
        try:
            out = super().run_node(n)
        except Exception as e:  # noqa: BLE001 - name the node that failed
            what = type(self.module.get_submodule(str(n.target))).__name__ if n.op == "call_module" else n.op
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            raise CaptureError(f"layer {node_label(n)!r} ({what}): {type(e).__name__}: {msg}") from None
        if isinstance(out, torch.Tensor):
            self.shapes[n.name] = tuple(out.shape)
        return out


@torch.no_grad()
def propagate_shapes(gm: fx.GraphModule, x: torch.Tensor) -> dict[str, tuple[tuple, int | None]]:
    """Per node: (output shape for one sample, batch axis).

    The graph is run on one sample and on two; the batch axis is the axis whose
    size changes (None for values that do not depend on the batch). Node meta
    gets ``shape1``, ``batch_axis``, ``in_ndim`` and ``out_ndim``.
    """
    was = gm.training
    gm.eval()
    try:
        x1 = x[:1]
        x2 = torch.cat([x[:1], x[1:2] if len(x) > 1 else x[:1]])
        runs = []
        for xb in (x1, x2):
            r = _ShapeRecorder(gm)
            r.run(xb)
            runs.append(r.shapes)
    finally:
        gm.train(was)
    out = {}
    for n in gm.graph.nodes:
        s1, s2 = runs[0].get(n.name), runs[1].get(n.name)
        if s1 is None:
            continue
        axis = None
        if s2 is not None and len(s1) == len(s2):
            diff = [i for i, (a, b) in enumerate(zip(s1, s2)) if a != b]
            axis = diff[0] if len(diff) == 1 else None
        out[n.name] = (s1, axis)
        n.meta["shape1"], n.meta["batch_axis"], n.meta["out_ndim"] = s1, axis, len(s1)
    for n in gm.graph.nodes:
        if n.args and isinstance(n.args[0], fx.Node) and n.args[0].name in out:
            n.meta["in_ndim"] = len(out[n.args[0].name][0])
    return out


def capture(model: nn.Module, x: torch.Tensor) -> Capture:
    """Capture ``model`` (modified in place: attention decomposed; pass a copy) on example inputs ``x``.

    Raises
    ------
    CaptureError
        The top-level forward cannot be traced, or the example does not run.
    """
    decomposed, kept = decompose_attention(model)
    gm, leaves = trace(model)
    try:
        propagate_shapes(gm, x)
    except CaptureError as e:  # fx appends the failing node's code on further lines
        raise CaptureError(f"model: does not run on inputs of shape {list(x.shape[1:])}: "
                           f"{str(e).splitlines()[0]}") from None
    mapped, passed = _decide_mapped(gm, model)
    mods = dict(gm.named_modules())
    for name in leaves:
        inner = [n for n, m in mods[name].named_modules() if isinstance(m, MAPPABLE)] if name in mods else []
        passed.append({"name": name, "kind": "module", "note": f"{type(mods[name]).__name__} cannot be traced "
                       f"(data-dependent control flow): kept whole, runs in float on the SIMD core"
                       + (f" with its {len(inner)} weight layers" if inner else "")})
    for k in kept:
        passed.append({"name": k["name"], "kind": "module", "note": k["note"] + "; runs in float on the SIMD core"})
    notes = [f"{d}: nn.MultiheadAttention decomposed into q/k/v/out Linear projections (mapped) and attention "
             "matmuls + softmax (SIMD core)" for d in decomposed]
    return Capture(gm=gm, mapped=mapped, bn=bn_plan(gm, mapped), passed=passed, notes=notes)

"""What every DB-PIM component shares: the :class:`Block` base class, payload layouts
and the :class:`Emitter` that turns sub-blocks into separate Verilog modules.

Parameters are validated against :data:`model.spec.GEOMETRY` (the same rules
as :class:`model.config.MacroConfig`), latencies come from :mod:`model.spec`,
and stream payload layouts are built from the field lists of :mod:`model.spec`
(the one description that the ``pack_*`` / ``unpack_*`` helpers also read), so
the RTL, the golden model and the testbenches cannot disagree.

**Hierarchy.** A block adds its sub-blocks with :func:`add_block`. Under the
Amaranth simulator (``platform`` is None) they are ordinary submodules. When
the Verilog generator elaborates a block it passes an :class:`Emitter` as the
platform: each sub-block then becomes an ``Instance`` of one separately
converted module ``dbpim_<NAME>`` (one module per distinct block, however
many copies the parent holds, e.g. ``n_col`` adder trees), and the emitter
keeps the Verilog of every module it converted.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from amaranth.back import rtlil
from amaranth.hdl import ClockSignal, Instance, ResetInserter, ResetSignal, Signal, Value, ValueCastable, signed, unsigned
from amaranth.lib import data, wiring

from dbpim.model.spec import check_param

__all__ = ["Block", "layout_from_fields", "Emitter", "VerilogModule", "add_block", "ports_of_verilog",
           "SRAM_MODES", "flat_ports", "same_width", "strip_initial_values", "config_prefix"]

#: How the memories of the macro and the core are emitted (``dbpim verilog --sram``, :mod:`hw.sram`):
#: ``behavioural`` = Amaranth memories inside their blocks; ``blackbox`` = instances of the wrapper
#: modules ``dbpim_sram_<kind>`` (docs/rtl.md), for compiled SRAMs.
SRAM_MODES = ("behavioural", "blackbox")


class Block(wiring.Component):
    """Base of the DB-PIM components.

    Subclasses take keyword-only parameters, validate them with
    :meth:`_param`, and say in :attr:`CONFIG_KEYS` which field of a
    :class:`model.config.MacroConfig` feeds each parameter, so
    :meth:`from_config` builds them from a configuration and the Verilog
    generator reads :attr:`parameters` and :attr:`latency` from the instance.
    """

    #: constructor parameter -> MacroConfig field
    CONFIG_KEYS: dict[str, str] = {}
    #: block name: Verilog module ``dbpim_<NAME>``, file ``dbpim_<NAME>.v``
    NAME = ""

    def _param(self, name: str, value, rule: str | None = None):
        """Validate (``model.spec.check_param``) and record one parameter; returns it."""
        value = check_param(name, value, rule or self.CONFIG_KEYS.get(name))
        self.__dict__.setdefault("_params", {})[name] = value
        return value

    @classmethod
    def from_config(cls, macro) -> "Block":
        """Build from a :class:`model.config.MacroConfig`."""
        return cls(**{p: getattr(macro, k) for p, k in cls.CONFIG_KEYS.items()})

    @property
    def parameters(self) -> dict:
        """The constructor parameters, by name."""
        return dict(self.__dict__.get("_params", {}))

    @property
    def latency(self) -> int:
        """Cycles from an accepted input to the block's output (see :data:`model.spec.LATENCY`)."""
        raise NotImplementedError

    latency_note = ""


def config_prefix(name: str) -> str:
    """The default module name prefix of a configuration named ``name`` (``dbpim verilog`` without ``--prefix``).

    ``name`` with every character other than a letter, digit or ``_`` replaced by ``_``, ``c_`` in front
    when it does not start with a letter (``small`` -> ``small``, ``28nm-x`` -> ``c_28nm_x``).
    """
    p = re.sub(r"[^A-Za-z0-9_]", "_", str(name))
    return p if p[:1].isalpha() and p.isascii() else f"c_{p}"


def layout_from_fields(fields) -> data.StructLayout:
    """A ``StructLayout`` from a :mod:`model.spec` field list (LSB first, in order)."""
    members = {}
    for name, width, count, sgn in fields:
        shape = signed(width) if sgn else unsigned(width)
        members[name] = shape if count is None else data.ArrayLayout(shape, count)
    return data.StructLayout(members)


def same_width(m, a, b, name: str):
    """``a`` and ``b`` zero-extended to one width through named signals (equal operand widths in the Verilog)."""
    a, b = Value.cast(a), Value.cast(b)
    w = max(len(a), len(b))
    out = []
    for v, tag in ((a, "a"), (b, "b")):
        if len(v) == w:
            out.append(v)
        else:
            s = Signal(w, name=f"{name}_{tag}")
            m.d.comb += s.eq(v)
            out.append(s)
    return out


_PORT_RE = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(signed\s+)?(?:\[(\d+):(\d+)\]\s+)?([^\s;]+)\s*;")


def ports_of_verilog(text: str, top: str) -> list[dict]:
    """Port list (name, dir, width) of module ``top`` in Verilog ``text``, in declaration order."""
    m = re.search(rf"^module {re.escape(top)}\(", text, re.M)
    if m is None:
        raise ValueError(f"module {top} not found")
    end = text.index("endmodule", m.end())
    ports = []
    for line in text[m.end():end].splitlines():
        pm = _PORT_RE.match(line)
        if pm:
            width = int(pm.group(3)) - int(pm.group(4)) + 1 if pm.group(3) else 1
            ports.append({"name": pm.group(5), "dir": pm.group(1), "width": width})
    return ports


#: Yosys's zero-filling ``initial`` block of a memory (Amaranth's ``init=[]``): one assignment per word
_MEM_INIT_RE = re.compile(r"^  initial begin\n(?:    [^\s\[]+ ?\[\d+\] = [^;\n]+;\n)*  end\n", re.M)
#: a register declaration with an initial value (Amaranth's reset value); Yosys's own always-block trigger
#: ``\$auto$verilog_backend...`` is kept (a simulation-only device of the writer, not a design state)
_REG_INIT_RE = re.compile(r"^(  reg (?:signed )?(?:\[\d+:\d+\] )?(?!\\\$auto\$verilog_backend)\S+ ?) = [^;\n]+;$", re.M)


def strip_initial_values(text: str, name: str = "module") -> str:
    """Verilog ``text`` without initial values: no memory ``initial`` block, no register declaration value.

    What a register or memory holds before its reset (or first write) is then the simulator's choice
    (Verilator ``--x-initial unique``: random), as in silicon; every register that matters has a reset.

    Raises
    ------
    ValueError
        When an ``initial`` block of another shape is left (the generator would ship it).
    """
    text = _REG_INIT_RE.sub(r"\1;", _MEM_INIT_RE.sub("", text))
    if re.search(r"^\s*initial\b", text, re.M):
        raise ValueError(f"{name}: an initial block is left in the generated Verilog")
    return text


def _emit_memory(self, cell_idx, cell):
    """Amaranth 0.5's ``rtlil.ModuleEmitter.emit_memory``, left out for a memory whose initial contents are all
    zero. Its ``$meminit`` cell only becomes the memory's ``initial`` block, which :func:`strip_initial_values`
    removes, so the Verilog is the same; but it costs one NIR net per bit (the chip's buffers have millions:
    more than half of the ``small`` chip's generation time)."""
    if any(cell.init):
        _EMIT_MEMORY(self, cell_idx, cell)


@contextlib.contextmanager
def _zero_memories_uninitialized():
    """Amaranth's RTLIL back end emits memories through :func:`_emit_memory` inside this context."""
    before, rtlil.ModuleEmitter.emit_memory = rtlil.ModuleEmitter.emit_memory, _emit_memory
    try:
        yield
    finally:
        rtlil.ModuleEmitter.emit_memory = before  # a nested conversion leaves the outer one's in place


_EMIT_MEMORY = rtlil.ModuleEmitter.emit_memory  # Amaranth's own, which _emit_memory calls


@dataclass
class VerilogModule:
    """One converted Verilog module: its name, text, parameters and ports."""

    name: str
    text: str
    parameters: dict
    ports: list


def flat_ports(comp) -> dict:
    """``{verilog port name: (value, is_input)}`` of a component, named as Amaranth's back end names them."""
    out = {}
    for path, member, value in comp.signature.flatten(comp):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        out["__".join(map(str, path))] = (value, member.flow == wiring.In)
    return out


class Emitter:
    """The platform the Verilog generator hands to ``elaborate()``.

    Parameters
    ----------
    sram : str
        One of :data:`SRAM_MODES`.
    prefix : str
        Module name prefix (:meth:`module_name`), empty for the plain ``dbpim_*`` names.

    Attributes
    ----------
    modules : dict of str to VerilogModule
        Every module converted so far, in conversion order (sub-blocks first).
    """

    def __init__(self, sram: str = "behavioural", prefix: str = ""):
        if sram not in SRAM_MODES:
            raise ValueError(f"sram: must be one of {', '.join(SRAM_MODES)}, got {sram!r}")
        if not isinstance(prefix, str) or (prefix and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", prefix)):
            raise ValueError(f"prefix: must be empty or a Verilog identifier (a letter, then letters, digits, _), "
                             f"got {prefix!r}")
        self.sram = sram
        #: module names are ``<prefix>_dbpim_<NAME>`` (``dbpim_<NAME>`` when empty): unique per design point
        self.prefix = prefix
        self.modules: dict[str, VerilogModule] = {}
        #: black-box module name -> its parameters (:mod:`hw.sram` wrappers)
        self.blackboxes: dict[str, dict] = {}
        #: black-box module name -> ``<instantiating module>.<instance>`` of each instance
        self.blackbox_instances: dict[str, list] = {}
        #: module name -> names of the modules it instantiates
        self.deps: dict[str, list] = {}
        self._stack: list[str] = []

    def _uses(self, name: str) -> None:
        if self._stack and name not in self.deps[self._stack[-1]]:
            self.deps[self._stack[-1]].append(name)

    def module_name(self, base: str) -> str:
        """``base`` (``dbpim_...``) with the prefix: ``<prefix>_<base>``, or ``base`` without one."""
        return f"{self.prefix}_{base}" if self.prefix else base

    def blackbox(self, name: str, parameters: dict, instance: str | None = None) -> None:
        """Record an instance (named ``instance``) of black-box module ``name`` (not converted here) in the
        current module."""
        have = self.blackboxes.setdefault(name, parameters)
        if have != parameters:
            raise ValueError(f"{name}: instantiated with parameters {parameters} and {have}")
        self.deps.setdefault(name, [])
        self._uses(name)
        if instance is not None:
            where = f"{self._stack[-1] if self._stack else '?'}.{instance}"
            have_inst = self.blackbox_instances.setdefault(name, [])
            if where not in have_inst:
                have_inst.append(where)

    def sources(self, name: str) -> list[str]:
        """Module ``name`` and every module below it, each once, sub-modules first."""
        out: list[str] = []

        def visit(n):
            for d in self.deps.get(n, ()):
                visit(d)
            if n not in out:
                out.append(n)
        visit(name)
        return out

    def cell(self, name: str, text: str) -> str:
        """Record a hand-written Verilog module, ``name`` (``dbpim_...``) with the prefix, as used by the current
        module: its text is ``text(<that name>)`` (:func:`hw.clock_gate.cell_verilog`); returns that name."""
        full = self.module_name(name)
        if full not in self.modules:
            body = text(full)
            self.modules[full] = VerilogModule(full, body, {}, ports_of_verilog(body, full))
            self.deps[full] = []
        self._uses(full)
        return full

    def convert(self, comp, name: str | None = None) -> VerilogModule:
        """Convert ``comp`` (a :class:`Block`) into module ``name`` (default ``dbpim_<NAME>``), once.

        Raises
        ------
        ValueError
            When a module of that name was already converted with other parameters.
        """
        from amaranth.back import verilog

        name = name or self.module_name(f"dbpim_{comp.NAME}")
        have = self.modules.get(name)
        if have is not None:
            if have.parameters != comp.parameters:
                raise ValueError(f"{name}: instantiated with parameters {comp.parameters} and {have.parameters}")
            comp._MustUse__silence = True  # an identical copy: its module is already converted
            return have
        self.deps[name] = []
        self._stack.append(name)
        try:
            with _zero_memories_uninitialized():
                text = strip_initial_values(verilog.convert(comp, name=name, platform=self, emit_src=False), name)
        finally:
            self._stack.pop()
        mod = VerilogModule(name, text, comp.parameters, ports_of_verilog(text, name))
        self.modules[name] = mod
        return mod

    def instance(self, comp, extra_reset=None, clock=None) -> Instance:
        """An ``Instance`` of ``comp``'s module, connected to ``comp``'s own interface signals.

        ``extra_reset`` (a 1-bit value) also resets it, besides the domain's reset; ``clock`` (a 1-bit value,
        default the domain's clock) is its clock.
        """
        mod = self.convert(comp)
        self._uses(mod.name)
        names = {p["name"] for p in mod.ports}
        conns = {("i_" if is_in else "o_") + n: v for n, (v, is_in) in flat_ports(comp).items()}
        if "clk" in names:
            conns["i_clk"] = ClockSignal() if clock is None else clock
        if "rst" in names:
            conns["i_rst"] = ResetSignal() if extra_reset is None else ResetSignal() | extra_reset
        return Instance(mod.name, **conns)


def add_block(m, name: str, comp, platform, extra_reset=None, clock=None) -> None:
    """Add sub-block ``comp`` to module ``m``: a submodule, or an instance of its own module under an :class:`Emitter`.

    ``extra_reset`` (a 1-bit value) resets the sub-block too, besides the domain's reset (the PIM core
    aborts a run this way). ``clock`` (a 1-bit value; an :class:`Emitter` only: a ValueError otherwise) clocks it
    instead of the domain's clock (the chip's gated PIM cores, :mod:`hw.clock_gate`).
    """
    if isinstance(platform, Emitter):
        m.submodules[name] = platform.instance(comp, extra_reset, clock)
    elif clock is not None:
        raise ValueError(f"{name}: a clock of its own is emitted in Verilog only (hw.generate), not elaborated here")
    elif extra_reset is None:
        m.submodules[name] = comp
    else:
        m.submodules[name] = ResetInserter(extra_reset)(comp)

"""The hardware configuration: one typed design point read from one YAML file.

A design point (``hw/configs/<name>.yaml``) has these sections, each a frozen
dataclass whose defaults (the paper's design point) are written here once:

* ``macro`` (:class:`MacroConfig`): the macro geometry shared by the golden
  model, the RTL and the performance model. Every key is required (a design
  point must say what hardware it is); the allowed values are
  :data:`model.spec.GEOMETRY`.
* ``system`` (:class:`SystemConfig`): cores, macros per core, clock, buffers,
  bandwidths, read by the performance model.
* ``energy`` (:class:`EnergyConfig`): energy per event, read by the
  performance model.
* ``core`` (:class:`CoreConfig`): the capacities of one PIM core's memories
  (tile store, descriptors, mask register file, output register file), read
  by the core's RTL and its golden twin (docs/design.md §11).
* ``chip`` (:class:`ChipConfig`): the words of the RTL chip's buffers (``IMEM``,
  ``DMEM``, ``CMEM``, ``WMEM``, ``ACT``, ``ACC``; docs/design.md §15), read by
  ``hw.chip.DBPIMChip.from_config`` and the fit checks through
  :meth:`HwConfig.chip_words`.

``system``, ``energy``, ``core`` and ``chip`` keys that a file leaves out take the defaults below;
the first three are listed in :attr:`HwConfig.defaulted` (reports print them). Unknown
keys, missing macro keys and bad values are :class:`ConfigError`\\ s whose
message is one line ``<file>: <section>.<key>: <what is allowed>``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dbpim.model import jsonio
from dbpim.model.isa import BUFFERS, DEPTH_MAX
from dbpim.model._check import is_int, is_real, show
from dbpim.model.spec import CORE_GEOMETRY, DIGIT_BITS, GEOMETRY, geometry_error

__all__ = ["ConfigError", "MacroConfig", "SystemConfig", "CoreConfig", "ChipConfig", "EnergyConfig", "HwConfig",
           "load_config",
           "config_path", "read_yaml", "CONFIG_DIR", "SECTIONS"]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "hw" / "configs"


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message is one line."""


def _key(default, check, allowed: str, source: str = "", assumed: bool = False):
    """A dataclass field with its validation rule (``check``, ``allowed`` words) as metadata.

    ``source`` says where the default value comes from; ``assumed`` marks a
    default that no published figure backs (reports list them).
    """
    return field(default=default, metadata={"check": check, "allowed": allowed, "source": source,
                                            "assumed": assumed})


def _validate(obj, section: str) -> None:
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if not f.metadata["check"](v):
            raise ConfigError(f"{section}.{f.name}: must be {f.metadata['allowed']}, got {show(v)}")


@dataclass(frozen=True)
class MacroConfig:
    """Geometry of one DB-PIM macro (docs/design.md §5).

    Parameters
    ----------
    n_comp : int
        Compartments per macro: inputs processed in parallel (power of two).
    n_col : int
        DBMU columns per compartment: CSD digit slots (even, >= ``phi_max``).
    n_row : int
        6T cells per DBMU (power of two).
    in_bits : int
        Activation width in bits (8).
    phi_max : int
        FTA threshold ceiling, 1..4.
    lanes : int
        Outputs per cycle of the sparse allocation switch (power of two, <= n_comp).
    pipeline : bool
        Register stage in the CSD adder tree.
    """

    n_comp: int = 16
    n_col: int = 16
    n_row: int = 16
    in_bits: int = 8
    phi_max: int = 2
    lanes: int = 4
    pipeline: bool = True

    def __post_init__(self):
        bad = geometry_error(self.to_dict())
        if bad is not None:
            raise ConfigError(f"macro.{bad[0]}: {bad[1]}")

    @property
    def group_size(self) -> int:
        """Filters per pruning group G = n_col // phi_max (docs/design.md §4)."""
        return self.n_col // self.phi_max

    @property
    def capacity_rows(self) -> int:
        """Kept im2col rows one macro tile holds: n_comp * n_row."""
        return self.n_comp * self.n_row

    @property
    def tile_bytes(self) -> float:
        """Bytes of one full tile: every cell with its idx/sign metadata."""
        return self.n_row * self.n_comp * self.n_col * DIGIT_BITS / 8

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_BOOL = (lambda v: isinstance(v, bool), "true or false")


def _int_in(lo: int, hi: int, what: str):
    """``(check, allowed)`` of an integer field in ``[lo, hi]`` (``what``: its meaning and unit)."""
    return (lambda v: is_int(v) and lo <= v <= hi), f"an integer from {lo} to {hi} ({what})"


def _real_in(lo: float, hi: float, what: str, lo_open: bool = False):
    """``(check, allowed)`` of a finite number field in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""
    def check(v):
        return is_real(v) and (v > lo if lo_open else v >= lo) and v <= hi and math.isfinite(v)
    return check, f"a finite number in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}] ({what})"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


#: Ceilings of the per-event energies (pJ) and of the static power (mW): far above any SRAM-PIM event
#: (a 28 nm 8-bit MAC is ~0.1 pJ, an LPDDR4 byte ~40 pJ) and any chip's leakage, low enough that no
#: energy sum of a report overflows a float.
PJ_MAX = 1e4
MW_MAX = 1e6
#: Ceilings that studies use as "no limit" (a 1 TiB buffer, 1 TB per cycle off chip); every figure derived
#: from them stays a finite float and every cycle count an exact int64.
BUFFER_KIB_MAX = 1e9
DRAM_BYTES_PER_CYCLE_MAX = 1e12


def _pj(what: str):
    return _real_in(0, PJ_MAX, what)


@dataclass(frozen=True)
class SystemConfig:
    """The accelerator around the macros (docs/design.md §7), read by the performance model.

    Every limit here is always modelled (docs/perf_model.md) on top of the
    core's own timing (``model.core_timing``, the RTL's: switch lanes, write
    port, output register file port): the shared off-chip bandwidth and the
    output buffer's capacity. Every number is finite and bounded (the range
    is each field's ``allowed`` text, written next to it).
    """

    cores: int = _key(8, *_int_in(1, 4096, "PIM cores"), "paper Sec. V-A")
    macros_per_core: int = _key(4, CORE_GEOMETRY["macros"].ok, CORE_GEOMETRY["macros"].allowed,
                                "paper Sec. V-A, Fig. 6")
    tech_nm: int = _key(28, *_int_in(1, 1000, "technology node in nm"), "paper Sec. VI-A")
    freq_mhz: float = _key(500, *_real_in(0, 10000, "clock in MHz", lo_open=True),
                           "paper Tab. II: 333-500 MHz, upper end")
    input_buffer_kib: float = _key(64, *_real_in(0, BUFFER_KIB_MAX, "KiB", lo_open=True),
                                   "paper Sec. VI-A (size lost in extraction)", True)
    output_buffer_kib: float = _key(64, *_real_in(0, BUFFER_KIB_MAX, "KiB; holds the partial sums of every core",
                                                  lo_open=True),
                                    "paper Sec. VI-A (size lost in extraction)", True)
    simd_lanes: int = _key(16, *_int_in(1, 65536, "SIMD core operations per cycle"), "", True)
    dram_bytes_per_cycle: float = _key(25.6, *_real_in(0.01, DRAM_BYTES_PER_CYCLE_MAX,
                                                       "off-chip weight bandwidth in bytes per cycle, shared "
                                                       "by all cores"),
                                       "LPDDR4-3200 x32 = 12.8 GB/s at 500 MHz", True)
    replicate_idle_cores: bool = _key(False, *_BOOL)
    result_buffer_words: int = _key(4096, *_int_in(1, 65536, "words of each extra PIM core's result buffer "
                                                   "(the chip's cores 1 ..; docs/design.md §15)"), "", True)

    def __post_init__(self):
        _validate(self, "system")


_R20 = "scaled from the paper's ref. 20 (28 nm digital SRAM-CIM, 73 fJ per 8b x 8b MAC)"


@dataclass(frozen=True)
class EnergyConfig:
    """Energy per event in pJ (static power in mW), each default with its source (field metadata)."""

    cell_and_pj: float = _key(0.0002, *_pj("pJ per activated 6T cell per issued bit column"), _R20)
    adder_input_pj: float = _key(0.0008, *_pj("pJ per adder-tree input per cycle, dense tree"), _R20)
    csd_adder_input_pj: float = _key(0.0012, *_pj("pJ per CSD adder-tree input per cycle"),
                                     "1.5 x the dense tree input (idx shift + sign)", True)
    accumulate_pj: float = _key(0.005, *_pj("pJ per column shift-and-add per cycle"), _R20)
    ipu_pj: float = _key(0.05, *_pj("pJ per bit column issued by the IPU"),
                         "16-input OR + leading-one detect + select", True)
    switch_pj: float = _key(0.02, *_pj("pJ per input extracted by the sparse allocation switch"),
                            "leading-one detector + 8-bit mux per input", True)
    input_buffer_byte_pj: float = _key(1.0, *_pj("pJ per byte read from the input buffer"),
                                       "28 nm 64 KiB SRAM read, ~0.12 pJ/bit (memory-compiler class)", True)
    output_buffer_byte_pj: float = _key(1.0, *_pj("pJ per byte read or written, output buffer"),
                                        "28 nm 64 KiB SRAM access, ~0.12 pJ/bit (memory-compiler class)", True)
    weight_load_byte_pj: float = _key(2.0, *_pj("pJ per byte of weights moved on chip to a core"),
                                      "on-chip weight path per byte", True)
    weight_write_byte_pj: float = _key(0.5, *_pj("pJ per byte written into one macro"),
                                       "SRAM cell / meta RF write per byte", True)
    dram_byte_pj: float = _key(0.0, *_pj("pJ per byte of weights fetched off chip; 0 = excluded"),
                               "excluded, like the paper's energy figures (LPDDR4 is ~40 pJ/B)")
    simd_op_pj: float = _key(0.5, *_pj("pJ per SIMD core element operation"),
                             "28 nm 8-bit ALU op incl. operand fetch", True)
    static_mw: float = _key(2.0, *_real_in(0, MW_MAX, "static power in mW, charged over the execution time"),
                            "leakage + clock tree (paper Tab. II total power 28.92-281.26 mW)", True)

    def __post_init__(self):
        _validate(self, "energy")

    @classmethod
    def sources(cls) -> dict:
        """``key -> (source of the default, assumed?)`` of every energy constant."""
        return {f.name: (f.metadata["source"], f.metadata["assumed"]) for f in dataclasses.fields(cls)}


def _core_key(default, name):
    rule = CORE_GEOMETRY[name]
    return _key(default, rule.ok, rule.allowed)


@dataclass(frozen=True)
class CoreConfig:
    """Capacities of one PIM core (docs/design.md §11); its macro count is ``system.macros_per_core``.

    A layer whose program needs more than these is split into several starts
    (:func:`model.core.compile_program`).
    """

    tile_slots: int = _core_key(32, "tile_slots")
    descriptors: int = _core_key(256, "descriptors")
    mask_windows: int = _core_key(1024, "mask_windows")
    out_pixels: int = _core_key(256, "out_pixels")
    max_row_tiles: int = _core_key(32, "max_row_tiles")
    tile_banks: int = _core_key(1, "tile_banks")
    out_banks: int = _core_key(1, "out_banks")
    in_windows: int = _core_key(1, "in_windows")
    result_lanes: int = _core_key(1, "result_lanes")

    def __post_init__(self):
        _validate(self, "core")


def _words_or_derived(hi: int, what: str, derived: str):
    """``(check, allowed)`` of a buffer's words: an integer in ``[1, hi]``, or null (absent) for ``derived``."""
    check, allowed = _int_in(1, hi, what)
    return (lambda v: v is None or check(v)), f"{allowed}, or absent ({derived})"


@dataclass(frozen=True)
class ChipConfig:
    """Words of each buffer of the RTL chip (docs/design.md §15; ``hw.chip.DBPIMChip``), each range what the
    hardware addresses (:data:`model.isa.DEPTH_MAX`). ``act_words`` / ``acc_words`` left out follow ``system.input_buffer_kib`` /
    ``output_buffer_kib`` (:meth:`HwConfig.chip_words`)."""

    imem_words: int = _key(256, *_int_in(1, DEPTH_MAX["IMEM"], "IMEM instructions; the 16-bit program counter"))
    dmem_words: int = _key(4096, *_int_in(1, DEPTH_MAX["DMEM"], "DMEM words; 4096 descriptors of the 12-bit desc "
                                                                "field, 32 words each"))
    cmem_words: int = _key(4096, *_int_in(1, DEPTH_MAX["CMEM"], "CMEM words; the host port's 24-bit reach"))
    wmem_words: int = _key(65536, *_int_in(1, DEPTH_MAX["WMEM"], "WMEM words; the host port's 24-bit reach"))
    act_words: int | None = _key(None, *_words_or_derived(
        DEPTH_MAX["ACT"], "ACT elements; the ISA's 16-bit addresses",
        "system.input_buffer_kib of 16-bit elements, at most 65536"))
    acc_words: int | None = _key(None, *_words_or_derived(
        DEPTH_MAX["ACC"], "ACC elements; the ISA's 16-bit addresses and the result entries' 16-bit offsets",
        "system.output_buffer_kib of 32-bit elements, at most 65536"))

    def __post_init__(self):
        _validate(self, "chip")


#: core keys added after design points were recorded -> the value that keeps the former behaviour: left out of
#: :meth:`HwConfig.to_dict` (and so of the digest) at that value, so a recorded design point keeps its digest
CORE_KEYS_SINCE = {"in_windows": 1, "result_lanes": 1}
#: the same for ``system`` keys
SYSTEM_KEYS_SINCE = {"result_buffer_words": 4096}

#: YAML section -> its dataclass
SECTIONS = {"macro": MacroConfig, "system": SystemConfig, "energy": EnergyConfig, "core": CoreConfig,
            "chip": ChipConfig}
TOP_KEYS = ("name", "description") + tuple(SECTIONS)


@dataclass(frozen=True)
class HwConfig:
    """A whole design point.

    Attributes
    ----------
    name : str
    macro : MacroConfig
    system : SystemConfig
    energy : EnergyConfig
    core : CoreConfig
    chip : ChipConfig
    path : str or None
        The YAML file it was read from.
    defaulted : tuple of str
        ``section.key`` of every system/energy/core key the file left out (default used; ``chip`` keys, which
        size the RTL chip alone, are not listed).
    """

    name: str
    macro: MacroConfig = field(default_factory=MacroConfig)
    system: SystemConfig = field(default_factory=SystemConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    core: CoreConfig = field(default_factory=CoreConfig)
    chip: ChipConfig = field(default_factory=ChipConfig)
    path: str | None = None
    defaulted: tuple = ()

    @property
    def n_macros(self) -> int:
        return self.system.cores * self.system.macros_per_core

    @property
    def pim_bytes(self) -> int:
        """Cell capacity of all macros in bytes (one bit per 6T cell; ``core.tile_banks`` tiles per macro)."""
        m = self.macro
        return self.n_macros * self.core.tile_banks * m.n_row * m.n_comp * m.n_col // 8

    def __post_init__(self):
        if self.system.macros_per_core % self.core.in_windows:
            raise ConfigError(f"core.in_windows: must divide system.macros_per_core="
                              f"{self.system.macros_per_core}, got {self.core.in_windows}")
        if self.system.macros_per_core % self.core.result_lanes:
            raise ConfigError(f"core.result_lanes: must divide system.macros_per_core="
                              f"{self.system.macros_per_core}, got {self.core.result_lanes}")

    def chip_words(self) -> dict:
        """Words of each buffer of the RTL chip, by :data:`model.isa.BUFFERS` name: ``chip``'s, ``ACT`` / ``ACC``
        left out taken from ``system.input_buffer_kib`` / ``output_buffer_kib`` (bytes / the element's bytes, at
        most 65536)."""
        c, s = self.chip, self.system
        words = {"IMEM": c.imem_words, "DMEM": c.dmem_words, "CMEM": c.cmem_words, "WMEM": c.wmem_words}
        for name, n, kib in (("ACT", c.act_words, s.input_buffer_kib), ("ACC", c.acc_words, s.output_buffer_kib)):
            words[name] = n if n is not None else min(DEPTH_MAX[name], int(kib * 1024) // (BUFFERS[name].elem_bits // 8))
        return words

    def to_dict(self) -> dict:
        """The design point as plain data; ``core.in_windows`` and ``core.result_lanes`` only when they are not 1
        (:data:`CORE_KEYS_SINCE`), ``system.result_buffer_words`` only when it is not 4096 (:data:`SYSTEM_KEYS_SINCE`),
        ``chip`` only with its keys whose words differ from the defaults' (``act_words`` / ``acc_words``: from
        the system's buffers; none: no ``chip``), so a design point recorded before these keys keeps its digest
        and one chip spelt two ways has one."""
        core, system = dataclasses.asdict(self.core), dataclasses.asdict(self.system)
        for sec, since in ((core, CORE_KEYS_SINCE), (system, SYSTEM_KEYS_SINCE)):
            for k, v in since.items():
                if sec[k] == v:
                    del sec[k]
        out = {"name": self.name, "macro": self.macro.to_dict(), "system": system,
               "energy": dataclasses.asdict(self.energy), "core": core}
        derived = dataclasses.replace(self, chip=ChipConfig()).chip_words()  # ACT / ACC from the system
        chip = {k: v for k, v in dataclasses.asdict(self.chip).items()
                if v is not None and v != derived[k.split("_")[0].upper()]}
        if chip:
            out["chip"] = chip
        return out

    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON of :meth:`to_dict`: ``model.jsonio.dumps(..., indent=None,
        sort_keys=True)`` (one line, sorted keys, strict), UTF-8.

        Equal digests mean the same design point, whatever file or spelling it came from
        (``path`` and ``defaulted`` are not part of it); artifacts record it (§8).
        """
        text = jsonio.dumps(self.to_dict(), what="configuration digest", indent=None, sort_keys=True, compact=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def replace(self, **sections) -> "HwConfig":
        """A copy with some fields of some sections changed: ``cfg.replace(macro={"n_col": 8})``."""
        new = {k: dataclasses.replace(getattr(self, k), **v) for k, v in sections.items()}
        return dataclasses.replace(self, **new)


def config_path(name_or_path: str | Path) -> Path:
    """Resolve a shipped configuration name (``paper``, ``small``) or a path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    shipped = CONFIG_DIR / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    names = sorted(q.stem for q in CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(f"{name_or_path}: no such configuration file; shipped configurations: {', '.join(names)}")


def _section(p: Path, doc: dict, name: str, required: bool):
    cls = SECTIONS[name]
    sec = doc.get(name)
    keys = [f.name for f in dataclasses.fields(cls)]
    if sec is None and not required:
        return cls(), [f"{name}.{k}" for k in keys]
    if not isinstance(sec, dict):
        raise ConfigError(f"{p}: {name}: required mapping with keys {', '.join(keys)}")
    for k in sec:
        if k not in keys:
            raise ConfigError(f"{p}: {name}.{k}: unknown key; allowed: {', '.join(keys)}")
    missing = [k for k in keys if k not in sec]
    bad = geometry_error(sec) if name == "macro" else None
    if bad is not None:  # a wrong value is named before a missing key
        raise ConfigError(f"{p}: macro.{bad[0]}: {bad[1]}")
    if required and missing:
        rule = GEOMETRY.get(missing[0])
        what = f" ({rule.allowed})" if rule else ""
        raise ConfigError(f"{p}: {name}.{missing[0]}: required key missing{what}")
    try:
        return cls(**sec), [f"{name}.{k}" for k in missing]
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None


#: libyaml's safe loader where PyYAML was built with it (same tags and resolver as ``yaml.SafeLoader``, several
#: times faster), else the pure-Python one.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(p: Path, expected: str):
    """Parse the YAML file ``p`` (``expected`` names what it should be, for the messages).

    Raises
    ------
    ConfigError
        One line ``<file>: <why>`` for an unreadable file, a binary file
        (not UTF-8, or a NUL byte) or invalid YAML.
    """
    try:
        text = Path(p).read_bytes().decode("utf-8")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", b"", 0, 1, "NUL byte")
        return yaml.load(text, Loader=_SAFE_LOADER)
    except OSError as e:
        raise ConfigError(f"{p}: cannot be read ({e.strerror or type(e).__name__})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text file ({expected} is expected)") from None
    except (yaml.YAMLError, RecursionError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{p}: not valid YAML ({why})") from None


def load_config(path: str | Path) -> HwConfig:
    """Read and validate a hardware YAML file.

    Parameters
    ----------
    path : str or Path
        A YAML file, or the name of a shipped configuration (``paper``, ``small``).

    Returns
    -------
    HwConfig

    Raises
    ------
    ConfigError
        One line ``<file>: <key>: <what is allowed>`` for a missing or
        unreadable file, a binary file, bad YAML, an unknown or missing key, a
        wrong type or a value out of range.
    """
    p = config_path(path)
    if not p.exists():
        raise ConfigError(f"{p}: file not found")
    if not p.is_file():
        raise ConfigError(f"{p}: not a file (a hardware YAML file or a shipped name is expected)")
    doc = read_yaml(p, "a hardware YAML file")
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: top level must be a mapping with keys {', '.join(TOP_KEYS)}")
    for k in doc:
        if k not in TOP_KEYS:
            raise ConfigError(f"{p}: {k}: unknown key; allowed top-level keys: {', '.join(TOP_KEYS)}")
    macro, _ = _section(p, doc, "macro", required=True)
    system, d_sys = _section(p, doc, "system", required=False)
    energy, d_en = _section(p, doc, "energy", required=False)
    core, d_core = _section(p, doc, "core", required=False)
    chip, _ = _section(p, doc, "chip", required=False)  # sizes the RTL chip alone: not a perf-model default
    try:
        return HwConfig(name=str(doc.get("name", p.stem)), macro=macro, system=system, energy=energy, core=core,
                        chip=chip, path=str(p), defaulted=tuple(d_sys + d_en + d_core))
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None

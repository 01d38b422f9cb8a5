"""Strict validation of the ``system`` and ``energy`` sections of a hardware YAML.

``model.config.load_config`` validates the ``macro`` section and only checks
that ``system`` and ``energy`` are mappings; the performance model owns those
two sections and validates them here with the same one-line error style
``<file>: <key>: <what is allowed>`` (:class:`model.config.ConfigError`).

Every key has a default (the paper's design point, DESIGN.md 6); a YAML file
may leave any of them out. Unknown keys are errors (a typo must not silently
fall back to a default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from model.config import ConfigError, HwConfig, MacroConfig, load_config

__all__ = ["SystemConfig", "EnergyConfig", "BenchConfig", "load_bench_config", "bench_config_from",
           "SYSTEM_RULES", "ENERGY_KEYS"]


def _pos_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _pos_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def _nonneg_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


# key -> (default, check, allowed)
SYSTEM_RULES = {
    "cores": (8, _pos_int, "a positive integer (PIM cores)"),
    "macros_per_core": (4, _pos_int, "a positive integer (macros sharing weights in a core)"),
    "tech_nm": (28, _pos_int, "a positive integer (technology node in nm)"),
    "freq_mhz": (500, _pos_num, "a positive number (clock in MHz)"),
    "input_buffer_kib": (64, _pos_num, "a positive number (KiB)"),
    "output_buffer_kib": (64, _pos_num, "a positive number (KiB)"),
    "simd_lanes": (16, _pos_int, "a positive integer (SIMD core operations per cycle)"),
    "weight_load_bytes_per_cycle": (64, _pos_num, "a positive number (bytes per cycle into one core's macros)"),
    "switch_bound": (False, lambda v: isinstance(v, bool), "true or false (sparse allocation switch throughput "
                                                            "limits a tile's wall cycles)"),
    "replicate_idle_cores": (False, lambda v: isinstance(v, bool),
                             "true or false (when a layer has fewer filter tiles than cores, idle cores hold "
                             "copies and split the output pixels)"),
}

# energy key -> allowed (all non-negative numbers in pJ, or mW for static power)
ENERGY_KEYS = {
    "cell_and_pj": "pJ per activated 6T cell per issued bit column (LPU AND pair)",
    "adder_input_pj": "pJ per adder-tree input per cycle, dense two's-complement tree",
    "csd_adder_input_pj": "pJ per adder-tree input per cycle, CSD adder tree (shift/sign per input)",
    "accumulate_pj": "pJ per column shift-and-add per cycle",
    "ipu_pj": "pJ per bit column issued by the IPU (zero detect + leading-one + select)",
    "switch_pj": "pJ per input element extracted by the sparse allocation switch",
    "input_buffer_byte_pj": "pJ per byte read from the input buffer",
    "output_buffer_byte_pj": "pJ per byte read or written in the output buffer (partial sums)",
    "weight_load_byte_pj": "pJ per byte of weights/metadata read from the on-chip weight store",
    "weight_write_byte_pj": "pJ per byte written into one macro's cells or metadata RF",
    "dram_byte_pj": "pJ per byte of weights fetched off chip (0 = excluded, like the paper)",
    "simd_op_pj": "pJ per SIMD core element operation (operand fetch included)",
    "static_mw": "static (leakage + clock) power in mW, charged over the execution time",
}
ENERGY_DEFAULTS = {
    "cell_and_pj": 0.0002, "adder_input_pj": 0.0008, "csd_adder_input_pj": 0.0012, "accumulate_pj": 0.005,
    "ipu_pj": 0.05, "switch_pj": 0.02, "input_buffer_byte_pj": 1.0, "output_buffer_byte_pj": 1.0,
    "weight_load_byte_pj": 2.0, "weight_write_byte_pj": 0.5, "dram_byte_pj": 0.0, "simd_op_pj": 0.5,
    "static_mw": 2.0,
}


@dataclass(frozen=True)
class SystemConfig:
    cores: int = 8
    macros_per_core: int = 4
    tech_nm: int = 28
    freq_mhz: float = 500
    input_buffer_kib: float = 64
    output_buffer_kib: float = 64
    simd_lanes: int = 16
    weight_load_bytes_per_cycle: float = 64
    switch_bound: bool = False
    replicate_idle_cores: bool = False


@dataclass(frozen=True)
class EnergyConfig:
    cell_and_pj: float = ENERGY_DEFAULTS["cell_and_pj"]
    adder_input_pj: float = ENERGY_DEFAULTS["adder_input_pj"]
    csd_adder_input_pj: float = ENERGY_DEFAULTS["csd_adder_input_pj"]
    accumulate_pj: float = ENERGY_DEFAULTS["accumulate_pj"]
    ipu_pj: float = ENERGY_DEFAULTS["ipu_pj"]
    switch_pj: float = ENERGY_DEFAULTS["switch_pj"]
    input_buffer_byte_pj: float = ENERGY_DEFAULTS["input_buffer_byte_pj"]
    output_buffer_byte_pj: float = ENERGY_DEFAULTS["output_buffer_byte_pj"]
    weight_load_byte_pj: float = ENERGY_DEFAULTS["weight_load_byte_pj"]
    weight_write_byte_pj: float = ENERGY_DEFAULTS["weight_write_byte_pj"]
    dram_byte_pj: float = ENERGY_DEFAULTS["dram_byte_pj"]
    simd_op_pj: float = ENERGY_DEFAULTS["simd_op_pj"]
    static_mw: float = ENERGY_DEFAULTS["static_mw"]


@dataclass(frozen=True)
class BenchConfig:
    """Everything the performance model needs from a hardware YAML."""

    name: str
    macro: MacroConfig
    system: SystemConfig = field(default_factory=SystemConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    path: str | None = None

    @property
    def n_macros(self) -> int:
        return self.system.cores * self.system.macros_per_core

    @property
    def pim_bytes(self) -> int:
        m = self.macro
        return self.n_macros * m.n_row * m.n_comp * m.n_col // 8

    def to_dict(self) -> dict:
        import dataclasses
        return {"name": self.name, "macro": self.macro.to_dict(), "system": dataclasses.asdict(self.system),
                "energy": dataclasses.asdict(self.energy)}


def _validate(where: str, system: dict, energy: dict) -> tuple[SystemConfig, EnergyConfig]:
    sysv = {}
    for k, v in system.items():
        if k not in SYSTEM_RULES:
            raise ConfigError(f"{where}: system.{k}: unknown key; allowed: {', '.join(SYSTEM_RULES)}")
        _, check, allowed = SYSTEM_RULES[k]
        if not check(v):
            raise ConfigError(f"{where}: system.{k}: must be {allowed}, got {v!r}")
        sysv[k] = v
    env = {}
    for k, v in energy.items():
        if k not in ENERGY_KEYS:
            raise ConfigError(f"{where}: energy.{k}: unknown key; allowed: {', '.join(ENERGY_KEYS)}")
        if not _nonneg_num(v):
            raise ConfigError(f"{where}: energy.{k}: must be a non-negative number ({ENERGY_KEYS[k]}), got {v!r}")
        env[k] = float(v)
    return SystemConfig(**sysv), EnergyConfig(**env)


def bench_config_from(hw: HwConfig) -> BenchConfig:
    """Validate the ``system``/``energy`` sections of an already loaded :class:`HwConfig`."""
    where = hw.path or hw.name
    s, e = _validate(where, hw.system or {}, hw.energy or {})
    return BenchConfig(name=hw.name, macro=hw.macro, system=s, energy=e, path=hw.path)


def load_bench_config(path: str | Path = "paper") -> BenchConfig:
    """Read a hardware YAML (file or shipped name) strictly, all three sections.

    Raises
    ------
    model.config.ConfigError
        One line ``<file>: <key>: <what is allowed>``.
    """
    return bench_config_from(load_config(path))

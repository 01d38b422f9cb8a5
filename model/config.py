"""Hardware configuration: the macro geometry shared by the golden model and the RTL.

A design point is one YAML file (``hw/configs/<name>.yaml``) with a strict
``macro`` section read here, and ``system`` / ``energy`` sections that the
performance model (``sim_bench``) validates itself. See ``docs/contracts.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["ConfigError", "MacroConfig", "HwConfig", "load_config", "config_path"]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "hw" / "configs"
TOP_KEYS = ("name", "description", "macro", "system", "energy")


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message is one line."""


def _is_pow2(v: int) -> bool:
    return v > 0 and (v & (v - 1)) == 0


# key -> (check, description of the allowed values)
_MACRO_RULES = {
    "n_comp": (lambda v: _is_pow2(v) and 2 <= v <= 256, "a power of two from 2 to 256"),
    "n_col": (lambda v: v % 2 == 0 and 2 <= v <= 256, "an even integer from 2 to 256"),
    "n_row": (lambda v: _is_pow2(v) and 1 <= v <= 1024, "a power of two from 1 to 1024"),
    "in_bits": (lambda v: v == 8, "8 (the network is int8)"),
    "phi_max": (lambda v: 1 <= v <= 4, "an integer from 1 to 4"),
    "lanes": (lambda v: _is_pow2(v) and 1 <= v <= 64, "a power of two from 1 to 64"),
    "pipeline": (lambda v: isinstance(v, bool), "true or false"),
}


@dataclass(frozen=True)
class MacroConfig:
    """Geometry of one DB-PIM macro (DESIGN.md 5).

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
        Outputs per cycle of the sparse allocation switch (power of two).
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
        for key, (check, allowed) in _MACRO_RULES.items():
            v = getattr(self, key)
            if key == "pipeline":
                ok = isinstance(v, bool)
            else:
                ok = isinstance(v, int) and not isinstance(v, bool) and check(v)
            if not ok:
                raise ConfigError(f"macro.{key}: must be {allowed}, got {v!r}")
        if self.n_col < self.phi_max:
            raise ConfigError(
                f"macro.n_col: must be >= phi_max ({self.phi_max}) so one filter fits, got {self.n_col}")
        if self.lanes > self.n_comp:
            raise ConfigError(f"macro.lanes: must be <= n_comp ({self.n_comp}), got {self.lanes}")

    @property
    def group_size(self) -> int:
        """Filters per pruning group G = n_col // phi_max (DESIGN.md 4)."""
        return self.n_col // self.phi_max

    @property
    def capacity_rows(self) -> int:
        """Kept im2col rows one macro tile holds: n_comp * n_row."""
        return self.n_comp * self.n_row

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class HwConfig:
    """A whole design point read from YAML."""

    name: str
    macro: MacroConfig
    system: dict = field(default_factory=dict)
    energy: dict = field(default_factory=dict)
    path: str | None = None


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
        One line ``<file>: <key>: <what is allowed>`` for a missing file, bad
        YAML, an unknown key, a wrong type or a value out of range.
    """
    p = config_path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: file not found")
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: top level must be a mapping with keys {', '.join(TOP_KEYS)}")
    for k in doc:
        if k not in TOP_KEYS:
            raise ConfigError(f"{p}: {k}: unknown key; allowed top-level keys: {', '.join(TOP_KEYS)}")
    macro = doc.get("macro")
    if not isinstance(macro, dict):
        raise ConfigError(f"{p}: macro: required mapping with keys {', '.join(_MACRO_RULES)}")
    for k in macro:
        if k not in _MACRO_RULES:
            raise ConfigError(f"{p}: macro.{k}: unknown key; allowed: {', '.join(_MACRO_RULES)}")
    try:
        mc = MacroConfig(**macro)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None
    for sec in ("system", "energy"):
        if doc.get(sec) is not None and not isinstance(doc[sec], dict):
            raise ConfigError(f"{p}: {sec}: must be a mapping")
    return HwConfig(name=str(doc.get("name", p.stem)), macro=mc,
                    system=dict(doc.get("system") or {}), energy=dict(doc.get("energy") or {}),
                    path=str(p))

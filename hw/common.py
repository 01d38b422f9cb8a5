"""What every DB-PIM component shares: the :class:`Block` base class and payload layouts.

Parameters are validated against :data:`model.spec.GEOMETRY` (the same rules
as :class:`model.config.MacroConfig`), latencies come from :mod:`model.spec`,
and stream payload layouts are built from the field lists of :mod:`model.spec`
(the one description that the ``pack_*`` / ``unpack_*`` helpers also read), so
the RTL, the golden model and the testbenches cannot disagree.
"""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, wiring

from model.spec import check_param

__all__ = ["Block", "layout_from_fields"]


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


def layout_from_fields(fields) -> data.StructLayout:
    """A ``StructLayout`` from a :mod:`model.spec` field list (LSB first, in order)."""
    members = {}
    for name, width, count, sgn in fields:
        shape = signed(width) if sgn else unsigned(width)
        members[name] = shape if count is None else data.ArrayLayout(shape, count)
    return data.StructLayout(members)

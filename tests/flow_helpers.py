"""Test support: :func:`run_flow` with the options as keywords (the tests' short schedules read best so)."""

from __future__ import annotations


def run_flow_kw(model, data, sparsity: float = 0.5, *, out, hw="paper", on_frozen=None, **options):
    """``run_flow(model, data, load_config(hw), FlowOptions(sparsity=sparsity, **options), out=out)``."""
    from dbpim.model.config import HwConfig, load_config
    from dbpim.model.torch.flow import FlowOptions, run_flow
    cfg = hw if isinstance(hw, HwConfig) else load_config(hw)
    return run_flow(model, data, cfg, FlowOptions(sparsity=sparsity, **options), out=out, on_frozen=on_frozen)

"""Test support: :func:`run_flow` with the options as keywords (the tests' short schedules read best so)."""

from __future__ import annotations


def run_flow_kw(model, data, sparsity: float = 0.5, *, out, hw="paper", on_frozen=None, **options):
    """``run_flow(model, data, load_config(hw), FlowOptions(sparsity=sparsity, **options), out=out)``."""
    from dbpim.model.config import HwConfig, load_config
    from dbpim.model.torch.flow import FlowOptions, run_flow
    cfg = hw if isinstance(hw, HwConfig) else load_config(hw)
    return run_flow(model, data, cfg, FlowOptions(sparsity=sparsity, **options), out=out, on_frozen=on_frozen)


def flow_with_test_logits(model, data, out, **options) -> dict:
    """The flow on ``model`` (small hw, 50 % sparsity, seed 0, no compare / plots / progress): its report, the
    artifact's path and the frozen network's test inputs ``x``, labels ``y`` and ``logits`` (256 at a time)."""
    import torch
    torch.set_num_threads(2)
    seen = {}

    def frozen(net, ds):
        net.eval()
        with torch.no_grad():
            seen["logits"] = torch.cat([net(ds.x_test[i:i + 256]) for i in range(0, len(ds.x_test), 256)]).numpy()
        seen["x"], seen["y"] = ds.x_test.numpy(), ds.y_test.numpy()

    rep = run_flow_kw(model, data, 0.5, out=out, hw="small", on_frozen=frozen, seed=0, compare=False, plots=False,
                      progress=False, **options)
    return {**rep.report, "artifact": str(rep.artifact), **seen}

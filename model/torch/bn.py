"""BatchNorm folding: a BatchNorm2d that directly follows a convolution becomes part of it.

The folded weights are what the macros store (block scores use them, see
:func:`model.torch.prune.effective_weight`); the folded bias stays float and is
added after the integer accumulation.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["bn_partners", "fold_bn"]


def bn_partners(model: nn.Module) -> dict[str, nn.BatchNorm2d]:
    """Mapped conv name -> the BatchNorm2d that directly follows it (ConvBNAct-style
    modules with ``.conv`` / ``.bn`` attributes, or consecutive entries of an nn.Sequential)."""
    out = {}
    for pname, p in model.named_modules():
        pre = pname + "." if pname else ""
        conv, bn = getattr(p, "conv", None), getattr(p, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and conv.out_channels == bn.num_features:
            out[pre + "conv"] = bn
        if isinstance(p, nn.Sequential):
            items = list(p.named_children())
            for (n1, a), (_, b) in zip(items, items[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d) and a.out_channels == b.num_features:
                    out[pre + n1] = b
    return out


@torch.no_grad()
def fold_bn(model: nn.Module) -> list[str]:
    """Fold every BatchNorm2d that directly follows a conv into it; the BN becomes Identity.

    Works for mapped and depthwise convs; masks (zeros) are preserved. Returns
    the names of the folded convolutions.
    """
    partners = bn_partners(model)
    bn_names = {id(m): n for n, m in model.named_modules()}
    mods = dict(model.named_modules())
    done = []
    for cname, bn in partners.items():
        conv = mods[cname]
        inv = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1.0 / torch.sqrt(
            bn.running_var + bn.eps)
        conv.weight.mul_(inv.reshape(-1, 1, 1, 1))
        b0 = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
        nb = (b0 - bn.running_mean) * inv + beta
        if conv.bias is None:
            conv.bias = nn.Parameter(nb.clone())
        else:
            conv.bias.copy_(nb)
        model.set_submodule(bn_names[id(bn)], nn.Identity())
        done.append(cname)
    return done

"""One ISAAC-like ReRAM crossbar cost model for the dense mapping and the three bit-sparsity schemes.

The weight transforms are :mod:`model.reram`'s; this module maps a layer's
(transformed) int8 weights onto crossbars and counts what a ReRAM accelerator
spends per inference: cells and metadata stored, crossbars and operation units
(OUs) occupied, OU activations, ADC conversions, energy and OU-cycles.
``docs/perf_model.md`` ("ReRAM bit-sparsity schemes") gives the model, the
source of every constant and every assumption.

Common to all schemes (:class:`ReramConfig`): sign-magnitude weights, positive
and negative parts in separate columns, ``cell_bits`` per cell, inputs fed one
bit per cycle through 1-bit DACs (``in_bits`` cycles per input vector), an OU
of ``ou_rows x ou_cols`` cells activated at a time, one ADC conversion per OU
column per activation. Time is counted *iso-area*: every layer may use as many
crossbars as its dense mapping occupies (freed crossbars hold replicas), each
crossbar activates one OU per cycle, so a layer costs
``ceil(OU activations / dense crossbars)`` OU-cycles per inference.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from dbpim.model import reram
from dbpim.model.spec import input_bits

__all__ = ["ReramConfig", "Mapping", "SCHEMES", "SCHEME_LABELS", "map_dense", "map_sme", "map_era_bs",
           "map_sharing", "map_layer", "layer_cost", "input_activity", "era_bs_input_bits", "transformed_weights"]

SCHEMES = ("dense", "sme", "era_bs", "sharing")
SCHEME_LABELS = {
    "dense": "ReRAM dense (ISAAC-like, own baseline)",
    "sme": "SME / SoBS-X (slice pattern + squeeze-out)",
    "era_bs": "ERA-BS (exponent quant. + bit flip + activation pruning, zero-input OU skip)",
    "sharing": "ReRAM-Sharing (OU-level k-means sharing)",
}


@dataclass(frozen=True)
class ReramConfig:
    """Crossbar, OU, ADC and energy constants (sources in docs/perf_model.md).

    ISAAC = Shafiee et al., ISCA 2016, Table I, IMA rows (8 crossbars, 8 ADCs,
    8 x 128 DACs, 4 shift-and-add units per IMA; powers are totals per IMA) and
    its 100 ns crossbar read cycle; docs/perf_model.md names where each figure
    was checked. Everything marked "assumed" is our choice where no source
    gives one.
    """

    xbar_rows: int = 128  # ISAAC: 128 x 128 crossbars
    xbar_cols: int = 128
    cell_bits: int = 2  # ISAAC: 2 bits per ReRAM cell
    in_bits: int = 8  # our activations are 8 bit; ISAAC feeds inputs 1 bit per cycle (1-bit DACs)
    ou_rows: int = 8  # assumed: a small OU typical of OU-based designs; the abstracts give no size
    ou_cols: int = 8  # assumed, idem
    adc_pj_8bit: float = 1.5625  # ISAAC: 16 mW / 8 ADCs = 2 mW at 1.28 GS/s (128 columns per 100 ns)
    xbar_read_pj: float = 30.0  # ISAAC: 2.4 mW / 8 crossbars = 0.3 mW over a 100 ns read, all cells
    dac_pj: float = 0.390625  # ISAAC: 4 mW / (8 x 128) 1-bit DACs over 100 ns, per row and input bit
    shift_add_pj: float = 0.01953125  # ISAAC: 0.2 mW for 4 S+A units / (8 ADCs x 1.28 GS/s), per conversion
    index_pj: float = 0.05  # assumed: one index-table (SRAM) read per OU activation of a sparse scheme
    mantissa_bits: int = 4  # ERA-BS, assumed: mantissa width of the exponent-based quantization
    exponent_bits: int = 3  # ERA-BS, assumed: exponent per OU segment (0 .. 8 - mantissa_bits)
    flip_tol: int = 1  # ERA-BS, assumed: largest bit-flip error in mantissa steps
    act_prune: int = 16  # ERA-BS, assumed: largest activation-pruning threshold (|x| codes) tried by the calibration
    act_prune_drop: float = 0.01  # ERA-BS, assumed: training-accuracy drop the calibrated threshold may cost
    sme_max_slices: int = 2  # SME, assumed: non-zero slices kept per weight
    share_ratio: float = 4.0  # ReRAM-Sharing, assumed: non-zero OU blocks per shared block
    seed: int = 0  # ReRAM-Sharing k-means seed

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            energy = "_pj" in f.name
            lo = 0 if energy or f.name in ("seed", "act_prune", "act_prune_drop") else 1
            kind = (int, float) if energy or f.name in ("share_ratio", "act_prune_drop") else int
            if isinstance(v, bool) or not isinstance(v, kind) or v < lo:
                what = "a number" if kind != int else "an integer"
                raise ValueError(f"ReramConfig: {f.name} must be {what} >= {lo}, got {v!r}")
        reram.n_slices(self.cell_bits)
        if self.ou_rows > self.xbar_rows or self.ou_cols > self.xbar_cols:
            raise ValueError(f"ReramConfig: the OU ({self.ou_rows}x{self.ou_cols}) must fit a crossbar "
                             f"({self.xbar_rows}x{self.xbar_cols})")

    @property
    def slices(self) -> int:
        """Cells per weight magnitude (one sign)."""
        return reram.n_slices(self.cell_bits)

    @property
    def adc_bits(self) -> int:
        """ADC resolution an OU column sum needs: ``ou_rows`` cells of ``2**cell_bits - 1``, 1-bit inputs."""
        return max(1, math.ceil(math.log2(self.ou_rows * ((1 << self.cell_bits) - 1) + 1)))

    @property
    def adc_pj(self) -> float:
        """Energy per conversion at :attr:`adc_bits`: ISAAC's 8-bit figure scaled by 2**(bits - 8) (assumed)."""
        return self.adc_pj_8bit * 2.0 ** (self.adc_bits - 8)

    @property
    def ou_read_pj(self) -> float:
        """Crossbar read energy of one OU activation (ISAAC's full read scaled by the cells used, assumed)."""
        return self.xbar_read_pj * self.ou_rows * self.ou_cols / (self.xbar_rows * self.xbar_cols)

    @property
    def ous_per_xbar(self) -> int:
        return (self.xbar_rows // self.ou_rows) * (self.xbar_cols // self.ou_cols)

    def to_dict(self) -> dict:
        return {**asdict(self), "adc_bits": self.adc_bits, "adc_pj": self.adc_pj, "ou_read_pj": self.ou_read_pj}


@dataclass
class Mapping:
    """One layer on crossbars.

    ``ou_acts`` are OU activations per input vector and input bit (a
    fraction where zero-input skipping is credited on recorded inputs).
    """

    scheme: str
    storage_bits: int  # cells x cell_bits + metadata bits
    meta_bits: int
    crossbars: int
    ous: int  # OUs holding weights
    ou_acts: float
    indexed: bool = False  # every OU activation reads an index table


def _ceil(a, b):
    return -(-a // b)


def _sign_split(w: np.ndarray) -> np.ndarray:
    """(2, K, N) magnitudes of the positive and the negative parts."""
    w = reram.check_int8(w)
    return np.stack([np.maximum(w, 0), np.maximum(-w, 0)])


def _cell_matrix(w: np.ndarray, cfg: ReramConfig, bits: int = reram.MAG_BITS) -> np.ndarray:
    """Cells in crossbar layout: K rows, columns (filter, sign, slice): (K, N * 2 * slices)."""
    mags = _sign_split(w)  # (2, K, N)
    sl = reram.magnitude_slices(mags, cfg.cell_bits, bits)  # (S, 2, K, N)
    K, N = w.shape
    return sl.transpose(2, 3, 1, 0).reshape(K, N * 2 * sl.shape[0])


def _ou_grid(cells: np.ndarray, cfg: ReramConfig) -> np.ndarray:
    """Whether each OU (ou_rows x ou_cols tile) of a cell matrix holds a non-zero cell: (row OUs, col OUs)."""
    R, C = cells.shape
    pr, pc = _ceil(R, cfg.ou_rows) * cfg.ou_rows, _ceil(C, cfg.ou_cols) * cfg.ou_cols
    pad = np.zeros((pr, pc), bool)
    pad[:R, :C] = cells != 0
    return pad.reshape(pr // cfg.ou_rows, cfg.ou_rows, pc // cfg.ou_cols, cfg.ou_cols).any((1, 3))


def _index_bits(n: int) -> int:
    return max(1, math.ceil(math.log2(max(2, n))))


def map_dense(w, cfg: ReramConfig) -> Mapping:
    """ISAAC-like dense mapping: every cell of K x (N * 2 * slices) is stored and every OU activated."""
    cells = _cell_matrix(np.asarray(w), cfg)
    K, C = cells.shape
    ous = _ceil(K, cfg.ou_rows) * _ceil(C, cfg.ou_cols)
    return Mapping("dense", storage_bits=K * C * cfg.cell_bits, meta_bits=0,
                   crossbars=_ceil(K, cfg.xbar_rows) * _ceil(C, cfg.xbar_cols), ous=ous, ou_acts=float(ous))


def map_sme(w, cfg: ReramConfig) -> Mapping:
    """SME: the slice pattern, each (sign, slice) plane on its own crossbars, all-zero rows squeezed out.

    Per plane (K x N cells of one slice of one sign) and per band of
    ``xbar_cols`` columns, the rows holding a non-zero cell are packed
    together (a row index per kept row, ``ceil(log2 K)`` bits); a band with no
    such row occupies no crossbar.
    """
    wq = reram.sme_pattern(w, cfg.sme_max_slices, cfg.cell_bits)
    sl = reram.magnitude_slices(_sign_split(wq), cfg.cell_bits)  # (S, 2, K, N)
    K, N = wq.shape
    xb = ous = cells = meta = 0
    for plane in sl.reshape(-1, K, N):
        for c0 in range(0, N, cfg.xbar_cols):
            band = plane[:, c0:c0 + cfg.xbar_cols]
            rows = int(np.any(band != 0, axis=1).sum())
            xb += _ceil(rows, cfg.xbar_rows)
            ous += _ceil(rows, cfg.ou_rows) * _ceil(band.shape[1], cfg.ou_cols)
            cells += rows * band.shape[1]
            meta += rows * _index_bits(K)
    return Mapping("sme", storage_bits=cells * cfg.cell_bits + meta, meta_bits=meta, crossbars=xb, ous=ous,
                   ou_acts=float(ous), indexed=True)


def input_activity(bits, K: int, ou_rows: int) -> np.ndarray | None:
    """Per OU row segment, the fraction of (vector, input bit) cycles with a non-zero input bit.

    ``bits`` are the recorded im2col inputs as 8-bit patterns (P, K) (as
    :func:`sim_bench.perf.spec_from_record` gives them); None -> None.
    """
    if bits is None:
        return None
    b = np.asarray(bits, np.uint8)
    if b.ndim != 2 or b.shape[1] != K or b.shape[0] == 0:
        raise ValueError(f"bits: must be (vectors, {K}) input bit patterns, got shape {b.shape}")
    seg_or = np.bitwise_or.reduce(reram.segment_view(b, ou_rows), axis=2)  # (P, nseg)
    planes = (seg_or[:, :, None] >> np.arange(8)) & 1
    return planes.mean(axis=(0, 2))


def era_bs_input_bits(x, signed: bool, cfg: ReramConfig) -> np.ndarray | None:
    """ERA-BS's inputs as 8-bit patterns after its crossbar-aware activation pruning (``act_prune``).

    ``x``: recorded im2col inputs (P, K) or None (-> None).
    """
    if x is None:
        return None
    return input_bits(reram.prune_segments(x, cfg.ou_rows, cfg.act_prune), signed)


def map_era_bs(w, cfg: ReramConfig, bits=None) -> Mapping:
    """ERA-BS: mantissa cells only, all-zero OUs released, zero-input OU activations skipped.

    Cells: ``ceil(mantissa_bits / cell_bits)`` per weight and sign; metadata: an
    exponent per OU segment and filter, and an OU index per stored OU. With
    recorded inputs (``bits``, after the activation pruning:
    :func:`era_bs_input_bits`), an OU activation whose ``ou_rows`` input bits
    are all zero is skipped, counted exactly.
    """
    e = reram.era_bs(w, cfg.ou_rows, cfg.mantissa_bits, cfg.flip_tol)
    K, N = e.w.shape
    cells = _cell_matrix(e.mantissa.astype(np.int64), cfg, bits=cfg.mantissa_bits)
    grid = _ou_grid(cells, cfg)  # (row segments, col OUs)
    ous = int(grid.sum())
    act = input_activity(bits, K, cfg.ou_rows)
    acts = float(grid.sum(1) @ act) if act is not None else float(ous)
    meta = e.exponent.size * cfg.exponent_bits + ous * _index_bits(grid.size)
    return Mapping("era_bs", storage_bits=ous * cfg.ou_rows * cfg.ou_cols * cfg.cell_bits + meta, meta_bits=meta,
                   crossbars=_ceil(ous, cfg.ous_per_xbar), ous=ous, ou_acts=acts, indexed=True)


def map_sharing(w, cfg: ReramConfig, shared: bool = False) -> Mapping:
    """ReRAM-Sharing: only the shared OU blocks are stored; every non-zero block position is computed.

    A block is ``ou_rows`` weights of one filter, ``ou_rows x 2 * slices``
    cells (``ceil(2 * slices / ou_cols)`` OUs). Metadata: one bit per block
    position (zero block pruned or not) and a shared-block index per non-zero
    position. The stored blocks are the distinct non-zero blocks of the shared
    weights (:func:`model.reram.share_of`: two clusters whose blocks round to
    the same int8 block store it once; a block that rounds to zero is pruned).
    ``shared``: ``w`` are already shared (fine-tuned) weights, mapped as they are.
    """
    if not shared:
        w = reram.ou_share(w, cfg.ou_rows, cfg.share_ratio, cfg.seed).w
    s = reram.share_of(w, cfg.ou_rows)
    ou_per_block = _ceil(2 * cfg.slices, cfg.ou_cols)
    used = np.unique(s.labels[s.labels >= 0])
    nz = int((s.labels >= 0).sum())
    ous = len(used) * ou_per_block
    meta = s.labels.size + nz * _index_bits(max(1, len(s.centroids)))
    return Mapping("sharing", storage_bits=ous * cfg.ou_rows * cfg.ou_cols * cfg.cell_bits + meta, meta_bits=meta,
                   crossbars=_ceil(ous, cfg.ous_per_xbar), ous=ous, ou_acts=float(nz * ou_per_block), indexed=True)


def transformed_weights(w, scheme: str, cfg: ReramConfig) -> np.ndarray:
    """The int8 weights a scheme computes with (what the accuracy is measured on)."""
    if scheme == "dense":
        return reram.check_int8(w).astype(np.int8)
    if scheme == "sme":
        return reram.sme_pattern(w, cfg.sme_max_slices, cfg.cell_bits)
    if scheme == "era_bs":
        return reram.era_bs(w, cfg.ou_rows, cfg.mantissa_bits, cfg.flip_tol).w
    if scheme == "sharing":
        return reram.ou_share(w, cfg.ou_rows, cfg.share_ratio, cfg.seed).w
    raise ValueError(f"scheme: must be one of {', '.join(SCHEMES)}, got {scheme!r}")


def map_layer(w, scheme: str, cfg: ReramConfig, bits=None, transformed: bool = False) -> Mapping:
    """The crossbar mapping of one layer's int8 weights (K x N) under ``scheme``.

    ``transformed``: ``w`` are the scheme's own (fine-tuned) weights, mapped as
    they are: SME and ERA-BS must leave them unchanged (ValueError otherwise),
    sharing reads its shared blocks from them.
    """
    if transformed and scheme in ("sme", "era_bs"):
        w = reram.check_int8(w)
        if not np.array_equal(transformed_weights(w, scheme, cfg), w):
            hint = f" (it is one for flip_tol <= 1, got {cfg.flip_tol})" if scheme == "era_bs" else ""
            raise ValueError(f"w: {scheme} weights must be a fixed point of the {scheme} transform{hint}")
    if scheme == "sharing" and transformed:
        return map_sharing(w, cfg, shared=True)
    if scheme == "dense":
        return map_dense(w, cfg)
    if scheme == "sme":
        return map_sme(w, cfg)
    if scheme == "era_bs":
        return map_era_bs(w, cfg, bits)
    if scheme == "sharing":
        return map_sharing(w, cfg)
    raise ValueError(f"scheme: must be one of {', '.join(SCHEMES)}, got {scheme!r}")


def layer_cost(m: Mapping, vectors: int, dense_crossbars: int, cfg: ReramConfig) -> dict:
    """Per-inference counts and energy of a mapped layer run on ``vectors`` input vectors.

    Returns ``ou_activations``, ``adc_conversions``, ``ou_cycles`` (iso-area:
    ``dense_crossbars`` crossbars, one OU each per cycle) and ``energy_pj`` by
    component (``adc``, ``crossbar``, ``dac``, ``shift_add``, ``index``).
    """
    acts = m.ou_acts * vectors * cfg.in_bits
    conv = acts * cfg.ou_cols
    energy = {"adc": conv * cfg.adc_pj, "crossbar": acts * cfg.ou_read_pj, "dac": acts * cfg.ou_rows * cfg.dac_pj,
              "shift_add": conv * cfg.shift_add_pj, "index": acts * cfg.index_pj if m.indexed else 0.0}
    return {"ou_activations": acts, "adc_conversions": conv,
            "ou_cycles": float(math.ceil(acts / max(1, dense_crossbars))), "energy_pj": energy}

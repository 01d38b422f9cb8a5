"""The DB-PIM chip's instruction set, as data (docs/design.md §15 "The chip's ISA").

The top controller fetches fixed-width 64-bit instructions from the
instruction buffer (``IMEM``) and runs them in order. An instruction names an
operation, up to three buffer addresses and a *descriptor*: a record of
:data:`DESC_WORDS` 32-bit words in the descriptor memory (``DMEM``) holding
the operation's geometry and constants (or the addresses of per-channel
constants in ``CMEM``). Every field below is an unsigned or two's-complement
integer; nothing is a Python object, so an assembler needs only these tables.

Buffers (:data:`BUFFERS`): ``ACT`` (activations, the input / output buffers of
the paper's Fig. 4, one signed 16-bit element per address), ``ACC`` (the PIM
cores' accumulators, signed 32-bit), ``WMEM`` (the mapped layers' PIM images,
32-bit words, :mod:`model.pim_image`), ``CMEM`` (per-channel
requantization constants, signed 32-bit words), ``DMEM`` (descriptors) and
``IMEM`` (instructions). A tensor in ``ACT`` / ``ACC`` is one sample's values
in row-major order of its per-sample shape (``(C, H, W)`` for a feature map,
``(*tokens, K)`` for a linear layer's input) from its base address.

Off-chip memory (DRAM, reached through the chip's AXI4 master): ``LOAD`` copies
``count`` elements from a DRAM byte address into ``ACT``, ``ACC``, ``WMEM`` or
``CMEM`` (:data:`DMA_BUFFERS`), ``STORE`` the other way. In DRAM a buffer's
elements lie packed little-endian from the (4-byte aligned) address, element
``i`` at byte ``addr + i * elem_bits / 8`` in two's complement: ``ACT``'s two
16-bit elements to a 32-bit word (element ``2k`` in bits 15:0), the 32-bit
buffers one to a word (:func:`to_dram` / :func:`from_dram`). A STORE of an odd
count of ``ACT`` elements writes the low half of its last word only (byte
strobes ``0b0011``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dbpim.model.spec import BUS_BITS, RegField, Register, RegisterMap, field_width, pack, register_map, unpack

__all__ = ["INSTR_BITS", "INSTR_FIELDS", "DESC_WORDS", "WORD_BITS", "BUFFERS", "Buffer", "Opcode", "OPCODES",
           "BY_CODE", "PIM_KINDS", "encode", "decode", "pack_descriptor", "unpack_descriptor",
           "pack_pair", "unpack_pair", "IsaError", "DMA_BUFFERS", "DESC_UNSIGNED", "DMA_BEAT_BITS",
           "DMA_BEAT_BYTES", "DMA_MAX_BURST", "DMA_BOUNDARY", "DMA_ADDR_BITS", "dma_elems_per_beat", "dma_beats",
           "dma_bursts", "to_dram", "from_dram", "RTL_PENDING", "RESERVED_ERRORS", "CHIP_ERRORS", "CHIP_REGISTERS",
           "CHIP_REG", "HOST_TARGETS", "HOST_ADDR_BITS_MAX", "DEPTH_MAX", "check_depths", "host_addr_bits",
           "chip_register_markdown", "chip_map"]

INSTR_BITS = 64
WORD_BITS = 32
#: 32-bit words per descriptor (descriptor i starts at DMEM word ``i * DESC_WORDS``; unused words are 0).
DESC_WORDS = 32

#: The instruction word, LSB first: (name, width, None, signed) as :func:`model.spec.pack` takes them.
INSTR_FIELDS = (
    ("opcode", 4, None, False),   # :data:`OPCODES`
    ("desc", 12, None, False),    # descriptor index in DMEM
    ("dst", 16, None, False),     # destination address (buffer: the opcode's ``dst``)
    ("src0", 16, None, False),    # first source address
    ("src1", 16, None, False),    # second source address (ADD), else 0
)
assert sum(field_width(f) for f in INSTR_FIELDS) == INSTR_BITS


class IsaError(ValueError):
    """A word or field that the ISA cannot hold; one line naming it."""


@dataclass(frozen=True)
class Buffer:
    """A named on-chip memory: ``elem_bits``-bit two's-complement elements (``signed``), addressed per element."""

    name: str
    elem_bits: int
    signed: bool
    desc: str


BUFFERS = {b.name: b for b in (
    Buffer("ACT", 16, True, "activations: the input, output and intermediate tensors of one sample"),
    Buffer("ACC", 32, True, "PIM accumulators: a mapped layer's integer sums before requantization"),
    Buffer("WMEM", 32, True, "mapped layers: the layer table, then one PIM block per layer (model.pim_image)"),
    Buffer("CMEM", 32, True, "per-channel constants: requant multipliers m, shifts s, integer biases"),
    Buffer("DMEM", 32, True, "descriptors, DESC_WORDS words each"),
    Buffer("IMEM", 64, False, "instructions"),
)}


@dataclass(frozen=True)
class Opcode:
    """One operation: its code, the buffers its address fields point into (None: field unused, 0) and the
    words of its descriptor in order (each one signed 32-bit word)."""

    name: str
    code: int
    dst: str | None
    src0: str | None
    src1: str | None
    desc: tuple
    meaning: str


#: ``kind`` word of a PIM descriptor.
PIM_KINDS = {"conv2d": 0, "linear": 1}

OPCODES = {o.name: o for o in (
    Opcode("HALT", 0, None, None, None, (),
           "stop; the output tensor is complete in ACT"),
    Opcode("PIM", 1, "ACC", "ACT", None,
           ("kind", "groups", "layer", "signed", "C", "H", "W", "N", "Ho", "Wo", "kernel", "stride", "padding",
            "dilation"),
           "integer conv2d / linear of the ACT tensor at src0 on the macros, sums to ACC at dst"),
    Opcode("REQ", 2, "ACT", "ACC", None,
           ("C", "inner", "outer", "m_addr", "s_addr", "bias_addr", "has_bias", "lo", "hi"),
           "requantize the ACC tensor at src0 per channel into ACT at dst: saturate(rescale(acc + bias, m, s))"),
    Opcode("ADD", 3, "ACT", "ACT", "ACT", ("count", "ma", "sa", "mb", "sb", "lo", "hi"),
           "residual add: saturate(rescale(a, ma, sa) + rescale(b, mb, sb), lo, hi), a at src0, b at src1"),
    Opcode("MAXP", 4, "ACT", "ACT", None, ("C", "H", "W", "Ho", "Wo", "kernel", "stride", "padding", "dilation"),
           "2-D max pooling (padding never wins), floor mode"),
    Opcode("GAP", 5, "ACT", "ACT", None, ("C", "HW", "m", "s", "lo", "hi"),
           "global average pooling: saturate(rescale(sum of the HW elements of each channel, m, s), lo, hi)"),
    Opcode("CLMP", 6, "ACT", "ACT", None, ("count", "lo", "hi"),
           "clamp: min(max(x, lo), hi) elementwise"),
    Opcode("DWC", 7, "ACT", "ACT", None,
           ("C", "H", "W", "Ho", "Wo", "kernel", "stride", "padding", "dilation", "w_addr", "m_addr", "s_addr",
            "bias_addr", "lo", "hi"),
           "depthwise convolution with the int8 weights at CMEM w_addr, then requant per channel"),
    Opcode("LOAD", 8, "DMA", None, None, ("buffer", "addr", "count"),
           "copy count elements from DRAM byte address addr into the buffer named by buffer (DMA_BUFFERS) at dst"),
    Opcode("STORE", 9, None, "DMA", None, ("buffer", "addr", "count"),
           "copy count elements of the buffer named by buffer (DMA_BUFFERS) at src0 to DRAM byte address addr"),
)}
BY_CODE = {o.code: o for o in OPCODES.values()}

# ----------------------------------------------------------------------------- off-chip memory (DMA)

#: Buffer code (LOAD / STORE descriptor word ``buffer``) -> the buffer a DMA instruction reads or writes; ``DMA``
#: in :class:`Opcode` ``dst`` / ``src0`` stands for it.
DMA_BUFFERS = {"ACT": 0, "ACC": 1, "WMEM": 2, "CMEM": 3}
#: Descriptor words read as unsigned 32-bit values (the DRAM byte address); :func:`pack_descriptor` takes them in
#: [-2**31, 2**32), :func:`unpack_descriptor` returns them in [0, 2**32).
DESC_UNSIGNED = {"LOAD": ("addr",), "STORE": ("addr",)}
#: Bits of the AXI4 master's data bus (``m_axi_rdata`` / ``m_axi_wdata``): one beat, one 32-bit DRAM word.
DMA_BEAT_BITS = 32
#: Bytes of one beat; a DMA instruction's DRAM address is a multiple of it.
DMA_BEAT_BYTES = DMA_BEAT_BITS // 8
#: Beats of the longest INCR burst the DMA issues (``AxLEN + 1``).
DMA_MAX_BURST = 16
#: No burst crosses a multiple of this many bytes (AXI4: 4 KiB).
DMA_BOUNDARY = 4096
#: Bits of a DRAM byte address (``m_axi_araddr`` / ``m_axi_awaddr``).
DMA_ADDR_BITS = 32


def dma_elems_per_beat(buffer: str) -> int:
    """Elements of ``buffer`` a DRAM word holds: ``DMA_BEAT_BITS // elem_bits`` (ACT 2, the 32-bit buffers 1)."""
    return DMA_BEAT_BITS // BUFFERS[buffer].elem_bits


def dma_beats(buffer: str, count: int) -> int:
    """DRAM words (beats) ``count`` elements of ``buffer`` take: ``ceil(count / dma_elems_per_beat)``."""
    e = dma_elems_per_beat(buffer)
    return -(-int(count) // e)


def dma_bursts(addr: int, beats: int) -> list:
    """The INCR bursts of a transfer of ``beats`` words from DRAM byte address ``addr`` (a multiple of
    :data:`DMA_BEAT_BYTES`), in order: each takes as many beats as are left, at most :data:`DMA_MAX_BURST`,
    and stops at the next multiple of :data:`DMA_BOUNDARY` (the RTL's ``hw.dma.DMAEngine`` and the timing
    :func:`model.chip_timing.dma_cycles` split alike)."""
    out = []
    a, left = int(addr), int(beats)
    while left > 0:
        n = min(left, DMA_MAX_BURST, (DMA_BOUNDARY - a % DMA_BOUNDARY) // DMA_BEAT_BYTES)
        out.append(n)
        a += n * DMA_BEAT_BYTES
        left -= n
    return out


def to_dram(buffer: str, values):
    """The DRAM bytes (uint8 array) of ``values``, elements of ``buffer``, packed as the module docstring says
    (an odd count of ``ACT`` elements: the last word's high half left out)."""
    import numpy as np
    bits = BUFFERS[buffer].elem_bits
    v = np.asarray(values, np.int64).reshape(-1)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if v.size and (int(v.min()) < lo or int(v.max()) > hi):
        raise IsaError(f"{buffer} values: must be signed {bits}-bit [{lo}, {hi}], got [{int(v.min())}, {int(v.max())}]")
    return v.astype(f"<i{bits // 8}").view(np.uint8).copy()


def from_dram(buffer: str, data, count: int):
    """``count`` elements of ``buffer`` (int64) from the DRAM bytes ``data`` (uint8, from the transfer's address):
    the inverse of :func:`to_dram`."""
    import numpy as np
    bits = BUFFERS[buffer].elem_bits
    raw = np.asarray(data, np.uint8)[:int(count) * bits // 8]
    return raw.view(f"<i{bits // 8}").astype(np.int64)


def pack_pair(h: int, w: int) -> int:
    """A (height, width) pair in one descriptor word: ``h | w << 16`` (each 0 .. 65535)."""
    for name, v in (("height", h), ("width", w)):
        if not 0 <= int(v) < 1 << 16:
            raise IsaError(f"pair {name}: must be in [0, 65535], got {v}")
    return int(h) | int(w) << 16


def unpack_pair(word: int) -> tuple[int, int]:
    return int(word) & 0xFFFF, (int(word) >> 16) & 0xFFFF


def encode(op: str, *, desc: int = 0, dst: int = 0, src0: int = 0, src1: int = 0) -> int:
    """The 64-bit word of one instruction; :class:`IsaError` naming the field that does not fit."""
    if op not in OPCODES:
        raise IsaError(f"opcode: must be one of {', '.join(OPCODES)}, got {op!r}")
    try:
        return pack(INSTR_FIELDS, {"opcode": OPCODES[op].code, "desc": desc, "dst": dst, "src0": src0,
                                   "src1": src1})
    except ValueError as e:
        raise IsaError(f"{op} instruction: {e}") from None


def decode(word: int) -> dict:
    """Fields of an instruction word, with ``op`` (the opcode's name)."""
    if not 0 <= int(word) < 1 << INSTR_BITS:
        raise IsaError(f"instruction: must be an unsigned {INSTR_BITS}-bit word, got {word}")
    f = unpack(INSTR_FIELDS, int(word))
    if f["opcode"] not in BY_CODE:
        raise IsaError(f"instruction: opcode {f['opcode']} is not defined")
    return {"op": BY_CODE[f["opcode"]].name, **f}


def pack_descriptor(op: str, values: dict) -> list[int]:
    """The :data:`DESC_WORDS` words of ``op``'s descriptor (signed 32-bit each)."""
    names = OPCODES[op].desc
    words = []
    for n in names:
        if n not in values:
            raise IsaError(f"{op} descriptor: field {n!r} missing")
        v = int(values[n])
        if n in DESC_UNSIGNED.get(op, ()):
            if not -(1 << (WORD_BITS - 1)) <= v < 1 << WORD_BITS:
                raise IsaError(f"{op} descriptor: field {n!r} = {v} does not fit an unsigned {WORD_BITS}-bit word")
            v -= (1 << WORD_BITS) if v >= 1 << (WORD_BITS - 1) else 0
        elif not -(1 << (WORD_BITS - 1)) <= v < 1 << (WORD_BITS - 1):
            raise IsaError(f"{op} descriptor: field {n!r} = {v} does not fit a signed {WORD_BITS}-bit word")
        words.append(v)
    return words + [0] * (DESC_WORDS - len(words))


def unpack_descriptor(op: str, words) -> dict:
    """Inverse of :func:`pack_descriptor` (the words of :data:`DESC_UNSIGNED` unsigned)."""
    out = {n: int(words[i]) for i, n in enumerate(OPCODES[op].desc)}
    for n in DESC_UNSIGNED.get(op, ()):
        out[n] &= (1 << WORD_BITS) - 1
    return out


# ----------------------------------------------------------------------------- the RTL chip's host view

#: Opcodes the RTL chip (``hw.chip_ctrl``) decodes but does not run yet: it stops on them with
#: STATUS.ERROR_CODE 2 (``dbpim run --rtl`` refuses a program holding one before any build). Empty: the RTL chip
#: runs every opcode (code 2 stays reserved for an opcode added to the ISA before the RTL runs it).
RTL_PENDING: tuple = ()

#: STATUS.ERROR_CODE of the RTL chip (``hw.chip.DBPIMChip``): code -> meaning (0: no error).
CHIP_ERRORS = {
    1: "undefined opcode (the golden chip raises on it too)",
    2: (f"an operation the RTL chip does not run yet ({', '.join(RTL_PENDING)})" if RTL_PENDING else
        "reserved: an operation the RTL chip does not run yet (none: the RTL chip runs every opcode)"),
    3: "a descriptor the SIMD core cannot run (a channel count past its constant memory, lo > hi, an empty window "
       "or tensor, a multiplier or shift outside model.requant's range, a DWC weight outside int8)",
    4: "a result does not fit ACT's signed 16-bit elements, or a PIM core's sum ACC's signed 32-bit ones, or a "
       "PIM input the layer's 8-bit range (the golden chip raises on it too)",
    5: "an address past the end of its buffer",
    6: "a PIM instruction whose WMEM image the chip cannot run, or the PIM core stopped on an error (the golden "
       "chip raises on it too)",
    7: "a LOAD / STORE descriptor the DMA cannot run: a buffer code outside DMA_BUFFERS, a negative count, a DRAM "
       "address not a multiple of 4, or a transfer past the 32-bit DRAM address space (the golden chip raises on "
       "it too)",
    8: "the AXI4 slave answered a LOAD / STORE burst with an error response (RRESP / BRESP SLVERR or DECERR; the "
       "golden chip raises on a transfer past the end of its DRAM)",
}

#: STATUS.ERROR_CODE values no run of the RTL chip can raise at present: 2 while :data:`RTL_PENDING` is empty.
RESERVED_ERRORS: tuple = () if RTL_PENDING else (2,)

#: The chip's control and status registers (host target ``REGS``, word addresses), the one description the RTL
#: (``hw.chip``), its tests and docs/rtl.md read.
CHIP_REGISTERS: tuple = (
    Register("CTRL", 0, "control", (
        RegField("START", 0, 1, "W", "run the program in IMEM from instruction 0 (ignored while BUSY)"),)),
    Register("STATUS", 1, "status of the last run", (
        RegField("BUSY", 0, 1, "R", "a program is running"),
        RegField("DONE", 1, 1, "R", "the last run reached HALT or stopped on an error (cleared by START)"),
        RegField("ERROR", 2, 1, "R", "the last run stopped on an error"),
        RegField("ERROR_CODE", 4, 4, "R", "; ".join(f"{k} {v}" for k, v in CHIP_ERRORS.items())),
        RegField("PC", 16, 16, "R", "the instruction running, or the one that stopped the run"))),
    Register("CYCLES", 2, "clock cycles of the last run, START to DONE", (
        RegField("VALUE", 0, 32, "R", "cycles (saturates)"),)),
)
CHIP_REG = {r.name: r for r in CHIP_REGISTERS}

#: Host port targets (``host_sel``): the register block, then the buffers the host loads and reads.
HOST_TARGETS = ("REGS", "IMEM", "DMEM", "CMEM", "ACT", "ACC", "WMEM")

#: Bits of the chip's host address (``hw.chip.DBPIMChip.host_addr``) at most: 2**24 words of a buffer (64 MiB of
#: 32-bit words); the AXI4-Lite map (:func:`chip_map`) of buffers this deep stays below 2**28 bytes.
HOST_ADDR_BITS_MAX = 24
#: Buffer -> the most words the chip addresses in it (``model.config.ChipConfig``'s ranges, the RTL's checks):
#: ``IMEM`` the 16-bit program counter (STATUS.PC); ``DMEM`` 4096 descriptors (the instruction's 12-bit ``desc``)
#: of :data:`DESC_WORDS` words; ``ACT`` / ``ACC`` the instruction's 16-bit addresses and the result entries'
#: 16-bit ``ACC`` offsets; ``CMEM`` / ``WMEM`` (32-bit addresses inside) the host port's reach.
_FIELD_BITS = {f[0]: f[1] for f in INSTR_FIELDS}
DEPTH_MAX = {"IMEM": 1 << 16, "DMEM": (1 << _FIELD_BITS["desc"]) * DESC_WORDS, "CMEM": 1 << HOST_ADDR_BITS_MAX,
             "ACT": 1 << _FIELD_BITS["dst"], "ACC": 1 << _FIELD_BITS["dst"], "WMEM": 1 << HOST_ADDR_BITS_MAX}
assert set(DEPTH_MAX) == set(HOST_TARGETS[1:]) and max(DEPTH_MAX.values()) <= 1 << HOST_ADDR_BITS_MAX


def check_depths(depths) -> dict:
    """``depths`` (buffer name -> words, every buffer of :data:`HOST_TARGETS`), each checked against
    :data:`DEPTH_MAX` (a ValueError naming ``depths.<buffer>`` and its range otherwise)."""
    out = {}
    for name in HOST_TARGETS[1:]:
        n = depths.get(name) if isinstance(depths, dict) else None
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= DEPTH_MAX[name]:
            raise ValueError(f"depths.{name}: must be an integer in [1, {DEPTH_MAX[name]}], got {n!r}")
        out[name] = n
    return out


def host_addr_bits(depths: dict) -> int:
    """Bits of the chip's host address for buffers of ``depths``: 16 (the registers' and every buffer of up to
    65536 words), more for a deeper buffer (at most :data:`HOST_ADDR_BITS_MAX`)."""
    return max(16, *((int(n) - 1).bit_length() for n in check_depths(depths).values()))


def chip_register_markdown() -> str:
    """The table of :data:`CHIP_REGISTERS` that docs/rtl.md holds (its test compares them)."""
    rows = ["| word | register | bits | field | access | meaning |", "|---|---|---|---|---|---|"]
    for r in CHIP_REGISTERS:
        for f in r.fields:
            bits = f"{f.msb}:{f.lsb}" if f.width > 1 else f"{f.lsb}"
            rows.append(f"| {r.word} | `{r.name}` | {bits} | `{f.name}` | {f.access} | {f.desc} |")
    return "\n".join(rows) + "\n"


def chip_map(depths: dict) -> RegisterMap:
    """The chip's AXI4-Lite address map (``hw.chip_axi.DBPIMChipAXI``, ``dbpim_chip_axi``): written once here and
    read by the RTL's decoder, the generated SystemRDL / C header / IP-XACT / Markdown (:mod:`hw.regs`) and the
    drivers (:class:`model.driver.ChipDriver`).

    :data:`CHIP_REGISTERS` at 0 (byte address ``4 * word``), then every buffer of :data:`HOST_TARGETS` in that
    order, each at a multiple of its own power-of-two size (:func:`model.spec.register_map`). An element of
    ``elem_bits`` bits takes ``ceil(elem_bits / 32)`` 32-bit words (entry ``e`` at ``base + 4 * stride * e``):
    ``IMEM``'s 64-bit instruction is ``WORD[0]`` (bits 31:0) and ``WORD[1]`` (bits 63:32), and the write of
    ``WORD[1]`` commits the instruction with the ``WORD[0]`` written last (to any entry); a narrower element is
    the low ``elem_bits`` bits of its word, read back sign-extended when the buffer is signed (``ACT``).

    Parameters
    ----------
    depths : dict
        Buffer name -> entries, for every buffer of :data:`HOST_TARGETS` (1 .. :data:`DEPTH_MAX` each;
        ``hw.chip.DBPIMChip``'s ``depths``).
    """
    specs = []
    for name, n in check_depths(depths).items():
        buf = BUFFERS[name]
        words = -(-buf.elem_bits // BUS_BITS)
        if words > 1:
            desc = (f"{buf.desc}; entry = {words} words, WORD[0] bits {BUS_BITS - 1}:0 first: the write of "
                    f"WORD[{words - 1}] commits the entry with the lower words written last")
        elif buf.elem_bits < BUS_BITS:
            desc = (f"{buf.desc}; the low {buf.elem_bits} bits of the word"
                    + (", read back sign-extended" if buf.signed else ", read back zero-extended"))
        else:
            desc = buf.desc
        specs.append((name, n, (("DATA", buf.elem_bits, None, buf.signed),), desc))
    return register_map(CHIP_REGISTERS, specs, access="RW", origin="model.isa.CHIP_REGISTERS and model.isa.chip_map")

/* Running a program on a dbpim_chip_axi from C with the register header `dbpim verilog` writes (dbpim_chip.h).
 *
 * Every address and bit position comes from the header (generated from model.isa.CHIP_REGISTERS and
 * model.isa.chip_map through SystemRDL and PeakRDL-cheader): byte offsets are the members of dbpim_chip_t (the
 * registers, then one array per buffer: IMEM, DMEM, CMEM, ACT, ACC, each entry a WORD[] array), fields are the
 * DBPIM_CHIP__<REG>__<FIELD>_bp / _bw / _bm macros. A chip generated with --prefix P has the header
 * P_dbpim_chip.h, the struct P_dbpim_chip_t and the macros P_DBPIM_CHIP__...
 *
 * The bus is touched with aligned 32-bit accesses only (offsetof + a uint32_t pointer, not the packed struct's
 * members). The sequence is model.driver.ChipDriver's: load IMEM (each instruction's low word, then its high
 * word, whose write commits it), DMEM, CMEM and the input in ACT; write CTRL.START; poll STATUS.DONE; read CYCLES
 * and the output from ACT.
 */
#include <stddef.h>
#include <stdint.h>

#include "dbpim_chip.h"

#define DBPIM_WORD(base, offset) (*(volatile uint32_t *)((volatile uint8_t *)(base) + (offset)))
#define DBPIM_REG(base, name) DBPIM_WORD(base, offsetof(dbpim_chip_t, name))
/* byte offset of word k of entry i of buffer B, and the buffer's entries */
#define DBPIM_ENTRY(B, i, k) \
    (offsetof(dbpim_chip_t, B) + (size_t)(i) * sizeof(dbpim_chip__##B##_t) + (size_t)(k) * sizeof(uint32_t))
#define DBPIM_ENTRIES(B) (sizeof(((dbpim_chip_t *)0)->B) / sizeof(dbpim_chip__##B##_t))
#define DBPIM_GET(reg, field, word) \
    (((uint32_t)(word) & DBPIM_CHIP__##reg##__##field##_bm) >> DBPIM_CHIP__##reg##__##field##_bp)

/* A bus word as a signed value (two's complement, without implementation-defined conversions). */
static int32_t as_signed(uint32_t w) {
    return w >= 0x80000000u ? -(int32_t)(~w) - 1 : (int32_t)w;
}

/* n instructions into IMEM from entry 0. Returns 0, or -1 when they do not fit. */
int dbpim_chip_load_imem(volatile void *base, const uint64_t *ins, uint32_t n) {
    uint32_t i;
    if (n > DBPIM_ENTRIES(IMEM)) return -1;
    for (i = 0; i < n; i++) {
        DBPIM_WORD(base, DBPIM_ENTRY(IMEM, i, 0)) = (uint32_t)(ins[i] & 0xFFFFFFFFu);
        DBPIM_WORD(base, DBPIM_ENTRY(IMEM, i, 1)) = (uint32_t)(ins[i] >> 32);  /* commits the instruction */
    }
    return 0;
}

/* n signed 32-bit words into DMEM (descriptors) or CMEM (constants) from entry 0. Returns 0, or -1. */
int dbpim_chip_load_dmem(volatile void *base, const int32_t *words, uint32_t n) {
    uint32_t i;
    if (n > DBPIM_ENTRIES(DMEM)) return -1;
    for (i = 0; i < n; i++) DBPIM_WORD(base, DBPIM_ENTRY(DMEM, i, 0)) = (uint32_t)words[i];
    return 0;
}

int dbpim_chip_load_cmem(volatile void *base, const int32_t *words, uint32_t n) {
    uint32_t i;
    if (n > DBPIM_ENTRIES(CMEM)) return -1;
    for (i = 0; i < n; i++) DBPIM_WORD(base, DBPIM_ENTRY(CMEM, i, 0)) = (uint32_t)words[i];
    return 0;
}

/* n activations into ACT from entry addr (the program's input address). Returns 0, or -1. */
int dbpim_chip_write_act(volatile void *base, uint32_t addr, const int16_t *x, uint32_t n) {
    uint32_t i;
    if (addr > DBPIM_ENTRIES(ACT) || n > DBPIM_ENTRIES(ACT) - addr) return -1;
    for (i = 0; i < n; i++) DBPIM_WORD(base, DBPIM_ENTRY(ACT, addr + i, 0)) = (uint32_t)(int32_t)x[i];
    return 0;
}

/* n activations from ACT entry addr (the program's output address; ACT reads back sign-extended). */
int dbpim_chip_read_act(volatile void *base, uint32_t addr, int16_t *y, uint32_t n) {
    uint32_t i;
    if (addr > DBPIM_ENTRIES(ACT) || n > DBPIM_ENTRIES(ACT) - addr) return -1;
    for (i = 0; i < n; i++) y[i] = (int16_t)as_signed(DBPIM_WORD(base, DBPIM_ENTRY(ACT, addr + i, 0)));
    return 0;
}

/* START, then poll STATUS until DONE (at most max_polls reads). Returns 0 (HALT reached) with the run's CYCLES
 * and the PC of its HALT, STATUS.ERROR_CODE (> 0) with the PC of the instruction that stopped it, or -1 on a
 * timeout. */
int dbpim_chip_run(volatile void *base, uint32_t max_polls, uint32_t *cycles, uint32_t *pc) {
    uint32_t status = 0, k;
    DBPIM_REG(base, CTRL) = DBPIM_CHIP__CTRL__START_bm;
    for (k = 0; k < max_polls; k++) {
        status = DBPIM_REG(base, STATUS);
        if (DBPIM_GET(STATUS, DONE, status)) break;
    }
    if (k == max_polls) return -1;
    *cycles = DBPIM_REG(base, CYCLES);
    *pc = DBPIM_GET(STATUS, PC, status);
    return DBPIM_GET(STATUS, ERROR, status) ? (int)DBPIM_GET(STATUS, ERROR_CODE, status) : 0;
}

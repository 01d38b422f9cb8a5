/* Programming a dbpim_core from C with the register header `dbpim verilog` writes (dbpim_core.h).
 *
 * Every address and bit position comes from the header (generated from model.spec.CORE_REGISTERS through
 * SystemRDL and PeakRDL-cheader): register byte offsets are the members of dbpim_core_t, fields are the
 * DBPIM_CORE__<REG>__<FIELD>_bp / _bw / _bm / _reset macros. A core generated with --prefix P has the
 * header P_dbpim_core.h, the struct P_dbpim_core_t and the macros P_DBPIM_CORE__...
 *
 * The memories (descriptors, masks, column maps, tile store) take the words model.core.bus_writes lists;
 * dbpim_core_write() writes one of them.
 */
#include <stddef.h>
#include <stdint.h>

#include "dbpim_core.h"

#define DBPIM_REG(base, name) \
    (*(volatile uint32_t *)((volatile uint8_t *)(base) + offsetof(dbpim_core_t, name)))
#define DBPIM_FIELD(reg, field, value) \
    (((uint32_t)(value) << DBPIM_CORE__##reg##__##field##_bp) & DBPIM_CORE__##reg##__##field##_bm)
#define DBPIM_GET(reg, field, word) \
    (((uint32_t)(word) & DBPIM_CORE__##reg##__##field##_bm) >> DBPIM_CORE__##reg##__##field##_bp)

/* 0 when base is the DB-PIM core built for this header's configuration, -1 for another block, -2 for a
 * core of another configuration (DIGEST = the first 32 bits of HwConfig.digest()). */
int dbpim_core_check(volatile void *base) {
    if (DBPIM_REG(base, ID) != DBPIM_CORE__ID__VALUE_reset) return -1;
    if (DBPIM_REG(base, DIGEST) != DBPIM_CORE__DIGEST__VALUE_reset) return -2;
    return 0;
}

/* One word of a memory image (byte address, data), as model.core.bus_writes lists them. */
void dbpim_core_write(volatile void *base, uint32_t addr, uint32_t word) {
    *(volatile uint32_t *)((volatile uint8_t *)base + addr) = word;
}

/* Run n_desc descriptors: LAYER, START, poll STATUS until DONE (at most max_polls reads).
 * Returns 0 and the run's CYCLES, STATUS.ERROR_CODE (> 0) when the core aborted, -1 on a timeout. */
int dbpim_core_run(volatile void *base, uint32_t n_desc, int signed_inputs, uint32_t max_polls, uint32_t *cycles) {
    uint32_t status = 0, k;
    DBPIM_REG(base, LAYER) = DBPIM_FIELD(LAYER, N_DESC, n_desc) | DBPIM_FIELD(LAYER, SIGNED, signed_inputs != 0);
    DBPIM_REG(base, CTRL) = DBPIM_CORE__CTRL__START_bm;
    for (k = 0; k < max_polls; k++) {
        status = DBPIM_REG(base, STATUS);
        if (DBPIM_GET(STATUS, DONE, status)) break;
    }
    if (k == max_polls) return -1;
    *cycles = DBPIM_REG(base, CYCLES);
    return DBPIM_GET(STATUS, ERROR, status) ? (int)DBPIM_GET(STATUS, ERROR_CODE, status) : 0;
}

// Native Verilator harness of the chip top (dbpim_chip, its host port), built with optimisation.
//
// usage: chip_harness STIMULUS RESULTS [+PLUSARG...]
// The harness knows the host port only; targets, register words and the START value come in the stimulus
// (written by verif.native.chip_stimulus from model.isa), numbers in hex unless said:
//   reset <cycles>                  rst high (decimal cycles)
//   write <sel> <base> <w0> <w1>..  host writes of consecutive words from <base>, one a cycle
//   read <sel> <base> <n>           host reads of <n> words from <base>, one a cycle: "r <w0> <w1> .."
//   run <sel> <word> <value> <max>  host write of <value> to register <word> of target <sel> (CTRL.START),
//                                   then clocks until irq (STATUS.DONE), at most <max> (decimal):
//                                   "run <clocks> <wall seconds> <CPU seconds>"; past <max>: "timeout <clocks>",
//                                   exit 1 (CPU seconds: this process's, a figure a loaded machine does not skew)
//   run <sel> <word> <value> <max> <rsel> <raddr>
//                                   the same with a host read of word <raddr> of target <rsel> in every clock of the
//                                   run (host_re high from the cycle after START until irq; what it reads unused):
//                                   a buffer's host read while the chip is busy must not disturb the program
//   abort <sel> <word> <value> <n>  the write of run, then <n> clocks (decimal), then rst high for 2 cycles: a reset
//                                   in the middle of a program: "aborted <clocks>"
//   mark                            "mark <clocks so far> <seconds so far>" (per-sample wall times)
//   dram <bytes> <latency>          a DRAM of <bytes> bytes (zeros) on the AXI4 master (m_axi_*), the ideal one of
//                                   model.chip_timing.DMA_LATENCY = <latency> (decimal): ARREADY, AWREADY, WREADY high
//                                   (one burst of each kind at a time), a read burst's first R beat <latency> cycles
//                                   after its AR handshake and each next one from the cycle after the last's, BVALID
//                                   <latency> cycles after the WLAST handshake; a beat past the DRAM: DECERR (no
//                                   write); reset with rst (a burst in flight dropped)
//   dramw <base> <w0> <w1> ..       32-bit words of the DRAM from byte address <base>, little-endian (no clock)
//   dramr <base> <n>                <n> 32-bit words from byte address <base>: "r <w0> <w1> .." (as read)
// RESULTS: the lines above, then "stats <clock cycles> <seconds>".
#include <ctime>
#include <vector>

#include "Vtop.h"
#include "native.h"

static double cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t h64(const std::string& s) { return std::strtoull(s.c_str(), nullptr, 16); }

// The ideal DRAM of the chip's AXI4 master (verif.dram.AxiDram's twin with no stalls).
struct Dram {
    std::vector<uint8_t> mem;
    uint64_t latency = 1;
    bool on = false;
    bool rd = false, wr = false, b = false, b_err = false;
    uint64_t r_addr = 0, w_addr = 0, r_due = 0, b_due = 0;
    int r_left = 0, w_left = 0;

    bool inside(uint64_t a) const { return a + 4 <= mem.size(); }
    void clear() { rd = wr = b = b_err = false; r_left = w_left = 0; }
    // the slave's outputs in cycle <now>
    void drive(Vtop* t, uint64_t now) {
        t->m_axi_arready = on && !rd;
        t->m_axi_awready = on && !wr && !b;
        t->m_axi_wready = on && wr;
        bool rv = rd && now >= r_due;
        t->m_axi_rvalid = rv;
        t->m_axi_rdata = 0; t->m_axi_rresp = 0; t->m_axi_rlast = 0; t->m_axi_rid = 0;
        if (rv) {
            uint32_t w = 0;
            if (inside(r_addr))
                for (int k = 0; k < 4; ++k) w |= (uint32_t)mem[r_addr + k] << (8 * k);
            t->m_axi_rdata = w;
            t->m_axi_rresp = inside(r_addr) ? 0 : 3;
            t->m_axi_rlast = r_left == 1;
        }
        t->m_axi_bvalid = b && now >= b_due;
        t->m_axi_bresp = b_err ? 3 : 0;
        t->m_axi_bid = 0;
    }
    // the handshakes at the edge that ends cycle <now> (valid and ready before it)
    void edge(Vtop* t, uint64_t now) {
        if (!on) return;
        if (t->rst) { clear(); return; }
        if (t->m_axi_arready && t->m_axi_arvalid) {
            rd = true; r_addr = t->m_axi_araddr; r_left = (int)t->m_axi_arlen + 1; r_due = now + latency;
        } else if (t->m_axi_rvalid && t->m_axi_rready) {
            r_addr += 4; r_due = now + 1;
            if (--r_left == 0) rd = false;
        }
        if (t->m_axi_awready && t->m_axi_awvalid) {
            wr = true; w_addr = t->m_axi_awaddr; w_left = (int)t->m_axi_awlen + 1; b_err = false;
        } else if (t->m_axi_wready && t->m_axi_wvalid) {
            if (inside(w_addr)) {
                for (int k = 0; k < 4; ++k)
                    if (t->m_axi_wstrb >> k & 1) mem[w_addr + k] = (uint8_t)(t->m_axi_wdata >> (8 * k));
            } else {
                b_err = true;
            }
            w_addr += 4;
            if (--w_left == 0) { wr = false; b = true; b_due = now + latency; }
        }
        if (t->m_axi_bvalid && t->m_axi_bready) b = false;
    }
};

struct Harness {
    Vtop* t;
    uint64_t clocks = 0;
    Dram dram;

    // Every input driven before the first clock: Verilator starts them random (--x-initial unique), and a
    // random host_we would write a buffer, a random host_re / host_sel read one.
    explicit Harness(Vtop* top) : t(top) {
        t->host_we = 0; t->host_re = 0; t->host_sel = 0; t->host_addr = 0; t->host_wdata = 0;
        t->rst = 0; t->clk = 0;
        dram.drive(t, 0);  // no DRAM: no READY, no VALID
        t->eval();
    }
    void tick() {
        t->clk = 0; t->eval();
        if (dram.on) {
            dram.drive(t, clocks);
            t->eval();
            dram.edge(t, clocks);
        }
        t->clk = 1; t->eval();
        ++clocks;
    }
    void reset(int n) {
        t->rst = 1;
        for (int i = 0; i < n; ++i) tick();
        t->rst = 0;
    }
    void write(uint32_t sel, uint32_t addr, uint64_t data) {
        t->host_sel = sel; t->host_addr = addr; t->host_wdata = data; t->host_we = 1;
        tick();
        t->host_we = 0;
    }
    uint64_t read(uint32_t sel, uint32_t addr) {
        t->host_sel = sel; t->host_addr = addr; t->host_re = 1;
        tick();  // host_rdata: the word, the cycle after host_re
        t->host_re = 0;
        return (uint64_t)t->host_rdata;
    }
};

int main(int argc, char** argv) {
    native::Session session(argc, argv);
    FILE* out = session.out;
    auto cmds = native::read_commands(argv[1]);
    Vtop* top = new Vtop;
    Harness h(top);
    session.t0 = std::chrono::steady_clock::now();
    int rc = 0;
    for (auto& c : cmds) {
        const std::string& op = c[0];
        if (op == "reset") {
            h.reset(std::atoi(c[1].c_str()));
        } else if (op == "write" && c.size() >= 3) {
            uint32_t sel = (uint32_t)h64(c[1]), base = (uint32_t)h64(c[2]);
            for (std::size_t i = 3; i < c.size(); ++i) h.write(sel, base + (uint32_t)(i - 3), h64(c[i]));
        } else if (op == "read" && c.size() == 4) {
            uint32_t sel = (uint32_t)h64(c[1]), base = (uint32_t)h64(c[2]), n = (uint32_t)h64(c[3]);
            std::fputc('r', out);
            for (uint32_t i = 0; i < n; ++i) std::fprintf(out, " %llx", (unsigned long long)h.read(sel, base + i));
            std::fputc('\n', out);
        } else if (op == "run" && (c.size() == 5 || c.size() == 7)) {
            uint64_t limit = std::strtoull(c[4].c_str(), nullptr, 10);
            auto t0 = std::chrono::steady_clock::now();
            double cpu0 = cpu_seconds();
            uint64_t c0 = h.clocks;
            h.write((uint32_t)h64(c[1]), (uint32_t)h64(c[2]), h64(c[3]));
            if (c.size() == 7) {  // a host read in every clock of the run
                top->host_sel = (uint32_t)h64(c[5]); top->host_addr = (uint32_t)h64(c[6]); top->host_re = 1;
            }
            while (!top->irq && h.clocks - c0 < limit) h.tick();
            top->host_re = 0;
            double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            double cpu = cpu_seconds() - cpu0;
            if (!top->irq) {
                std::fprintf(out, "timeout %llu\n", (unsigned long long)(h.clocks - c0));
                std::fprintf(stderr, "the chip did not reach STATUS.DONE within %llu cycles\n",
                             (unsigned long long)limit);
                rc = 1;
                break;
            }
            std::fprintf(out, "run %llu %.9f %.9f\n", (unsigned long long)(h.clocks - c0), secs, cpu);
        } else if (op == "abort" && c.size() == 5) {
            uint64_t n = std::strtoull(c[4].c_str(), nullptr, 10), c0 = h.clocks;
            h.write((uint32_t)h64(c[1]), (uint32_t)h64(c[2]), h64(c[3]));
            for (uint64_t i = 0; i < n && !top->irq; ++i) h.tick();
            h.reset(2);
            std::fprintf(out, "aborted %llu\n", (unsigned long long)(h.clocks - c0));
        } else if (op == "dram" && c.size() == 3) {
            h.dram.mem.assign(std::strtoull(c[1].c_str(), nullptr, 10), 0);
            h.dram.latency = std::strtoull(c[2].c_str(), nullptr, 10);
            h.dram.on = true;
            h.dram.clear();
        } else if (op == "dramw" && c.size() >= 3) {
            uint64_t base = h64(c[1]);
            for (std::size_t i = 2; i < c.size(); ++i) {
                uint64_t a = base + 4 * (i - 2), w = h64(c[i]);
                for (int k = 0; k < 4 && a + k < h.dram.mem.size(); ++k) h.dram.mem[a + k] = (uint8_t)(w >> (8 * k));
            }
        } else if (op == "dramr" && c.size() == 3) {
            uint64_t base = h64(c[1]), n = h64(c[2]);
            std::fputc('r', out);
            for (uint64_t i = 0; i < n; ++i) {
                uint32_t w = 0;
                for (int k = 0; k < 4; ++k) {
                    uint64_t a = base + 4 * i + k;
                    if (a < h.dram.mem.size()) w |= (uint32_t)h.dram.mem[a] << (8 * k);
                }
                std::fprintf(out, " %x", w);
            }
            std::fputc('\n', out);
        } else if (op == "mark") {
            double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - session.t0).count();
            std::fprintf(out, "mark %llu %.9f\n", (unsigned long long)h.clocks, secs);
        } else {
            rc = session.unknown(op);
            break;
        }
    }
    session.finish(h.clocks);
    top->final();
    delete top;
    return rc;
}

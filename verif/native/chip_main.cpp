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
//   abort <sel> <word> <value> <n>  the write of run, then <n> clocks (decimal), then rst high for 2 cycles: a reset
//                                   in the middle of a program: "aborted <clocks>"
//   mark                            "mark <clocks so far> <seconds so far>" (per-sample wall times)
// RESULTS: the lines above, then "stats <clock cycles> <seconds>".
#include <ctime>

#include "Vtop.h"
#include "native.h"

static double cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t h64(const std::string& s) { return std::strtoull(s.c_str(), nullptr, 16); }

struct Harness {
    Vtop* t;
    uint64_t clocks = 0;

    // Every input driven before the first clock: Verilator starts them random (--x-initial unique), and a
    // random host_we would write a buffer, a random host_re / host_sel read one.
    explicit Harness(Vtop* top) : t(top) {
        t->host_we = 0; t->host_re = 0; t->host_sel = 0; t->host_addr = 0; t->host_wdata = 0;
        t->rst = 0; t->clk = 0;
        t->eval();
    }
    void tick() {
        t->clk = 0; t->eval();
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
        } else if (op == "run" && c.size() == 5) {
            uint64_t limit = std::strtoull(c[4].c_str(), nullptr, 10);
            auto t0 = std::chrono::steady_clock::now();
            double cpu0 = cpu_seconds();
            uint64_t c0 = h.clocks;
            h.write((uint32_t)h64(c[1]), (uint32_t)h64(c[2]), h64(c[3]));
            while (!top->irq && h.clocks - c0 < limit) h.tick();
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

// Native Verilator harness of the PIM core top (dbpim_core, AXI ports), built with optimisation.
//
// usage: core_harness STIMULUS RESULTS [+PLUSARG...]
// STIMULUS lines (written by verif.native.write_core_stimulus):
//   stall <p_in> <p_out> <seed>  random tvalid / tready gaps (0 0 0 = full rate)
//   reset <cycles>               aresetn low
//   hold <cycles>                from now on each result beat is taken only after m_axis_tready was held low for
//                                <cycles> cycles while it is on offer (0: off; the core's output register then holds a
//                                beat and the next waits inside the core)
//   write <addr> <data>          AXI4-Lite write (hex)
//   read <addr>                  AXI4-Lite read (hex), result printed as "read <addr> <data>"
//   window <hex>                 queue one s_axis beat
//   run <max_cycles>             START, stream the queue, collect results until DONE
//   abort <after>                START, stream, and reset after <after> cycles (a reset mid-layer; m_axis_tready
//                                low during it, so a result on offer is not taken), then as idle
//   rerun <after> <low> <max>    START, stream, reset after <after> cycles (aresetn low for <low> cycles), then
//                                START again at once (the write waits for the core to leave reset) with the windows
//                                queued before, and as run <max>
//   flush                        drop the windows still queued (after a run the core aborted)
//   idle                         4 cycles, nothing offered or accepted: "idle <bvalid> <rvalid> <m_axis_tvalid>",
//                                each 1 when it was high in any of them (after a reset: all 0); also printed
//                                by abort right after its reset
//   bwrite <addr> <data> <lead>  AXI4-Lite write with AW alone for <lead> cycles first (W alone for -<lead>):
//                                "bwrite <addr> <bresp> <early>", early 1 when AWREADY or WREADY rose then
//   bread <addr>                 AXI4-Lite read: "bread <addr> <data> <rresp>"
//   wpend <addr> <data>          AW and W taken, BREADY held low (a response left pending)
//   rpend <addr>                 AR taken, RREADY held low (a response left pending)
// RESULTS lines: "run <CYCLES> <STATUS> <beats>" followed by "b <hex> <tlast>" per beat ("b <hex>:<tkeep hex>
// <tlast>" when built with DBPIM_RESULT_KEEP: core.result_lanes > 1);
// "stats <clock cycles> <seconds>" last.
#include <cstddef>
#include <deque>

#include "Vtop.h"
#include "native.h"
#include "dbpim_core.h"  // written by dbpim verilog beside the Verilog

using native::Words;

struct Harness {
    Vtop* t;
    uint64_t clocks = 0;
    std::deque<Words> queue;
    std::vector<std::pair<std::string, int>> beats;
    native::Stall in_stall, out_stall;
    bool hold_out = false;  // m_axis_tready held low (abort's reset: a result on offer stays on offer)
    int hold = 0, held = 0;  // hold: cycles each result beat waits; cycles the beat on offer has waited

    // Every bus input driven low before the first clock: Verilator starts them random (--x-initial unique), and
    // a random AR/AW valid or ready would be a transaction the stimulus never asked for.
    explicit Harness(Vtop* top) : t(top) {
        t->s_axil_awvalid = 0; t->s_axil_wvalid = 0; t->s_axil_bready = 0;
        t->s_axil_arvalid = 0; t->s_axil_rready = 0;
        t->s_axis_tvalid = 0; t->m_axis_tready = 0;
    }

    // One clock cycle: streams are serviced every cycle, whatever the bus does.
    void cycle() {
        bool gap_in = in_stall.next(), gap_out = out_stall.next();
        if (t->m_axis_tvalid && held < hold) { gap_out = true; ++held; }
        t->s_axis_tvalid = !queue.empty() && !gap_in;
        if (!queue.empty()) native::put(t->s_axis_tdata, queue.front());
        t->m_axis_tready = !gap_out && !hold_out;
        t->aclk = 0;
        t->eval();
        bool in_fire = t->s_axis_tvalid && t->s_axis_tready;
#ifdef DBPIM_RESULT_KEEP  // core.result_lanes > 1: a beat's TKEEP after its data, "<tdata>:<tkeep>"
        if (t->m_axis_tvalid && t->m_axis_tready)
            beats.emplace_back(native::hex(t->m_axis_tdata) + ":" + native::hex(t->m_axis_tkeep), t->m_axis_tlast);
#else
        if (t->m_axis_tvalid && t->m_axis_tready) beats.emplace_back(native::hex(t->m_axis_tdata), t->m_axis_tlast);
#endif
        if (t->m_axis_tvalid && t->m_axis_tready) held = 0;
        t->aclk = 1;
        t->eval();
        ++clocks;
        if (in_fire) queue.pop_front();
    }
    void reset(int n) {
        t->aresetn = 0;
        for (int i = 0; i < n; ++i) cycle();
        t->aresetn = 1;
    }
    // A bus handshake that never comes (a broken design, e.g. a mutant of verif/mutate.py) ends the run.
    static constexpr int HANDSHAKE_LIMIT = 100000;
    void wait_for(const char* what, int n) {
        if (n < HANDSHAKE_LIMIT) return;
        std::fprintf(stderr, "no %s handshake within %d cycles\n", what, HANDSHAKE_LIMIT);
        std::exit(3);
    }
    void write(uint32_t addr, uint32_t data) {
        t->s_axil_awaddr = addr; t->s_axil_wdata = data; t->s_axil_wstrb = 0xF;
        t->s_axil_awvalid = 1; t->s_axil_wvalid = 1; t->s_axil_bready = 1;
        for (int n = 0;; wait_for("AW/W", ++n)) {
            t->aclk = 0; t->eval(); bool ok = t->s_axil_awready && t->s_axil_wready; cycle(); if (ok) break;
        }
        t->s_axil_awvalid = 0; t->s_axil_wvalid = 0;
        for (int n = 0;; wait_for("B", ++n)) { t->aclk = 0; t->eval(); bool ok = t->s_axil_bvalid; cycle(); if (ok) break; }
        t->s_axil_bready = 0;
    }
    // AW (lead > 0) or W (lead < 0) alone for |lead| cycles: whether the core took either half alone
    bool lead_alone(uint32_t addr, uint32_t data, int lead) {
        t->s_axil_awaddr = addr; t->s_axil_wdata = data; t->s_axil_wstrb = 0xF;
        t->s_axil_awvalid = lead > 0; t->s_axil_wvalid = lead < 0;
        bool early = false;
        for (int n = 0; n < (lead > 0 ? lead : -lead); ++n) {
            t->aclk = 0; t->eval(); early |= t->s_axil_awready || t->s_axil_wready; cycle();
        }
        return early;
    }
    uint32_t bresp() { return t->s_axil_bresp; }
    // 4 cycles with no stream beat offered or taken and no bus request: which responses / results showed
    void idle(FILE* out) {
        int b = 0, r = 0, v = 0;
        for (int n = 0; n < 4; ++n) {
            t->s_axis_tvalid = 0; t->m_axis_tready = 0;
            t->aclk = 0; t->eval();
            b |= t->s_axil_bvalid; r |= t->s_axil_rvalid; v |= t->m_axis_tvalid;
            t->aclk = 1; t->eval(); ++clocks;
        }
        std::fprintf(out, "idle %d %d %d\n", b, r, v);
    }
    // AW and W taken, no BREADY: the write response stays pending
    void write_pending(uint32_t addr, uint32_t data) {
        t->s_axil_awaddr = addr; t->s_axil_wdata = data; t->s_axil_wstrb = 0xF;
        t->s_axil_awvalid = 1; t->s_axil_wvalid = 1; t->s_axil_bready = 0;
        for (int n = 0;; wait_for("AW/W", ++n)) {
            t->aclk = 0; t->eval(); bool ok = t->s_axil_awready && t->s_axil_wready; cycle(); if (ok) break;
        }
        t->s_axil_awvalid = 0; t->s_axil_wvalid = 0;
    }
    void read_pending(uint32_t addr) {
        t->s_axil_araddr = addr; t->s_axil_arvalid = 1; t->s_axil_rready = 0;
        for (int n = 0;; wait_for("AR", ++n)) { t->aclk = 0; t->eval(); bool ok = t->s_axil_arready; cycle(); if (ok) break; }
        t->s_axil_arvalid = 0;
    }
    uint32_t rresp = 0;
    uint32_t read(uint32_t addr) {
        t->s_axil_araddr = addr; t->s_axil_arvalid = 1; t->s_axil_rready = 1;
        for (int n = 0;; wait_for("AR", ++n)) { t->aclk = 0; t->eval(); bool ok = t->s_axil_arready; cycle(); if (ok) break; }
        t->s_axil_arvalid = 0;
        uint32_t v = 0;
        for (int n = 0;; wait_for("R", ++n)) {
            t->aclk = 0; t->eval(); bool ok = t->s_axil_rvalid; v = t->s_axil_rdata; rresp = t->s_axil_rresp;
            cycle(); if (ok) break;
        }
        t->s_axil_rready = 0;
        return v;
    }
};

int main(int argc, char** argv) {
    native::Session session(argc, argv);
    FILE* out = session.out;
    auto cmds = native::read_commands(argv[1]);
    Vtop* top = new Vtop;
    Harness h(top);
    // register addresses and fields from the generated header (model.spec.CORE_REGISTERS)
    const uint32_t CTRL = offsetof(dbpim_core_t, CTRL), STATUS = offsetof(dbpim_core_t, STATUS),
                   CYCLES = offsetof(dbpim_core_t, CYCLES);
    top->aresetn = 1;
    session.t0 = std::chrono::steady_clock::now();
    int rc = 0;
    for (auto& c : cmds) {
        const std::string& op = c[0];
        if (op == "stall") {
            h.in_stall.p = std::atof(c[1].c_str()); h.out_stall.p = std::atof(c[2].c_str());
            h.in_stall.s ^= std::strtoull(c[3].c_str(), nullptr, 10) * 2654435761ull + 1;
            h.out_stall.s ^= std::strtoull(c[3].c_str(), nullptr, 10) * 40503ull + 7;
        } else if (op == "reset") {
            h.reset(std::atoi(c[1].c_str()));
        } else if (op == "hold" && c.size() == 2) {
            h.hold = std::atoi(c[1].c_str()); h.held = 0;
        } else if (op == "write") {
            h.write((uint32_t)std::strtoul(c[1].c_str(), nullptr, 16), (uint32_t)std::strtoul(c[2].c_str(), nullptr, 16));
        } else if (op == "read") {
            uint32_t a = (uint32_t)std::strtoul(c[1].c_str(), nullptr, 16);
            std::fprintf(out, "read %x %x\n", a, h.read(a));
        } else if (op == "idle") {
            h.idle(out);
        } else if (op == "bwrite" && c.size() == 4) {
            uint32_t a = (uint32_t)std::strtoul(c[1].c_str(), nullptr, 16), d = (uint32_t)std::strtoul(c[2].c_str(), nullptr, 16);
            bool early = h.lead_alone(a, d, std::atoi(c[3].c_str()));
            h.write(a, d);
            std::fprintf(out, "bwrite %x %x %d\n", a, h.bresp(), (int)early);
        } else if (op == "bread" && c.size() == 2) {
            uint32_t a = (uint32_t)std::strtoul(c[1].c_str(), nullptr, 16);
            uint32_t v = h.read(a);
            std::fprintf(out, "bread %x %x %x\n", a, v, h.rresp);
        } else if (op == "wpend" && c.size() == 3) {
            h.write_pending((uint32_t)std::strtoul(c[1].c_str(), nullptr, 16), (uint32_t)std::strtoul(c[2].c_str(), nullptr, 16));
        } else if (op == "rpend" && c.size() == 2) {
            h.read_pending((uint32_t)std::strtoul(c[1].c_str(), nullptr, 16));
        } else if (op == "flush") {
            h.queue.clear();
        } else if (op == "window") {
            h.queue.push_back(native::parse_hex(c[1]));
        } else if (op == "run" || op == "abort" || (op == "rerun" && c.size() == 4)) {
            uint64_t limit = std::strtoull(c[op == "rerun" ? 3 : 1].c_str(), nullptr, 10);
            if (op == "rerun") {  // the first START, cut by a reset; its results are dropped
                std::deque<Words> saved = h.queue;
                h.write(CTRL, DBPIM_CORE__CTRL__START_bm);
                for (uint64_t n = std::strtoull(c[1].c_str(), nullptr, 10); n > 0; --n) h.cycle();
                h.reset(std::atoi(c[2].c_str()));
                h.queue = saved;
            }
            h.beats.clear();
            h.write(CTRL, DBPIM_CORE__CTRL__START_bm);
            uint64_t n = 0;
            bool aborted = false;
            while (!top->irq) {
                h.cycle();
                if (++n >= limit) {
                    if (op == "abort") {
                        h.hold_out = true; h.reset(2); h.hold_out = false;
                        h.queue.clear(); h.idle(out); aborted = true; break;
                    }
                    std::fprintf(stderr, "run did not finish within %llu cycles\n", (unsigned long long)limit);
                    rc = 1;
                    break;
                }
            }
            uint32_t cycles = h.read(CYCLES), status = h.read(STATUS);
            std::fprintf(out, "%s %u %u %zu\n", aborted ? "aborted" : "run", cycles, status, h.beats.size());
            for (auto& b : h.beats) std::fprintf(out, "b %s %d\n", b.first.c_str(), b.second);
            if (rc) break;
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

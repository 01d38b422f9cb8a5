// Native Verilator harness of the PIM macro (dbpim_macro), built with optimisation.
//
// usage: macro_harness STIMULUS RESULTS
// STIMULUS lines (written by verif.native.write_macro_stimulus), numbers in hex:
//   w <row> <cells> <idx> <sign>         one cell row write (w_* ports)
//   c <rows_used> <signed> <slot> <used>  configuration and column map write (c_* ports)
//   x <payload>                           queue one input beat
//   run <beats>                           stream the queue at full rate, collect <beats> output beats
// RESULTS lines: "o <payload> <cycles port>" per output beat, "stats <clock cycles> <seconds>" last.
// Verilator spells the stream ports x__valid, o__payload, ... as x___05Fvalid, o___05Fpayload, ...
#include <deque>

#include "Vtop.h"
#include "native.h"

using native::Words;

static uint32_t h32(const std::string& s) { return (uint32_t)std::strtoul(s.c_str(), nullptr, 16); }

int main(int argc, char** argv) {
    native::Session session(argc, argv);
    FILE* out = session.out;
    auto cmds = native::read_commands(argv[1]);
    Vtop* t = new Vtop;
    uint64_t clocks = 0;
    auto tick = [&]() { t->clk = 0; t->eval(); t->clk = 1; t->eval(); ++clocks; };
    // Every input driven before the first clock: Verilator starts them random (--x-initial unique), and a
    // random x valid or c_en would be taken as a beat or a configuration write.
    t->w_en = 0;
    t->c_en = 0;
    t->x___05Fvalid = 0;
    t->o___05Fready = 0;
    t->hold = 0;  // standalone: compute starts as soon as a vector waits
    t->rst = 1;
    tick();
    tick();
    t->rst = 0;
    std::deque<Words> queue;
    session.t0 = std::chrono::steady_clock::now();
    int rc = 0;
    for (auto& c : cmds) {
        const std::string& op = c[0];
        if (op == "w") {
            t->w_en = 1; t->w_row = h32(c[1]);
            native::put(t->w_cells, native::parse_hex(c[2]));
            native::put(t->w_idx, native::parse_hex(c[3]));
            native::put(t->w_sign, native::parse_hex(c[4]));
            tick();
            t->w_en = 0;
        } else if (op == "c") {
            t->c_en = 1; t->c_rows_used = h32(c[1]); t->c_signed = h32(c[2]);
            native::put(t->c_slot, native::parse_hex(c[3]));
            native::put(t->c_used, native::parse_hex(c[4]));
            tick();
            t->c_en = 0;
        } else if (op == "x") {
            queue.push_back(native::parse_hex(c[1]));
        } else if (op == "run") {
            uint64_t want = std::strtoull(c[1].c_str(), nullptr, 10), got = 0, idle = 0;
            t->o___05Fready = 1;
            while (got < want) {
                t->x___05Fvalid = !queue.empty();
                if (!queue.empty()) native::put(t->x___05Fpayload, queue.front());
                t->clk = 0;
                t->eval();
                bool in_fire = t->x___05Fvalid && t->x___05Fready;
                if (t->o___05Fvalid) {
                    std::fprintf(out, "o %s %s\n", native::hex(t->o___05Fpayload).c_str(), native::hex(t->cycles).c_str());
                    ++got;
                    idle = 0;
                } else if (++idle > 100000) {
                    std::fprintf(stderr, "no output for 100000 cycles\n");
                    rc = 1;
                    break;
                }
                t->clk = 1;
                t->eval();
                ++clocks;
                if (in_fire) queue.pop_front();
            }
            t->x___05Fvalid = 0;
            if (rc) break;
        } else {
            rc = session.unknown(op);
            break;
        }
    }
    session.finish(clocks);
    t->final();
    delete t;
    return rc;
}

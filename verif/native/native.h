// Shared helpers of the native Verilator harnesses (docs/rtl.md, "Fast simulation").
// Ports of any width are set and read as lists of 32-bit words, lowest first;
// stimulus and result files carry them as hexadecimal numbers.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "verilated.h"

namespace native {

using Words = std::vector<uint32_t>;

// "1a2b..." (most significant digit first) -> 32-bit words, lowest first.
inline Words parse_hex(const std::string& s) {
    Words w;
    int n = (int)s.size();
    for (int end = n; end > 0; end -= 8) {
        int start = end > 8 ? end - 8 : 0;
        w.push_back((uint32_t)std::strtoul(s.substr(start, end - start).c_str(), nullptr, 16));
    }
    return w;
}

inline std::string to_hex(const uint32_t* w, int n) {
    std::string s;
    char buf[16];
    bool lead = true;
    for (int i = n - 1; i >= 0; --i) {
        if (lead && w[i] == 0 && i > 0) continue;
        std::snprintf(buf, sizeof buf, lead ? "%x" : "%08x", w[i]);
        s += buf;
        lead = false;
    }
    return s;
}

// Narrow ports (CData/SData/IData/QData).
template <typename T>
inline void put(T& port, const Words& w) {
    uint64_t v = w.empty() ? 0 : w[0];
    if (w.size() > 1) v |= (uint64_t)w[1] << 32;
    port = (T)v;
}
template <std::size_t N>
inline void put(VlWide<N>& port, const Words& w) {
    for (std::size_t i = 0; i < N; ++i) port.at(i) = i < w.size() ? w[i] : 0;
}
template <typename T>
inline std::string hex(const T& port) {
    uint64_t v = (uint64_t)port;
    uint32_t w[2] = {(uint32_t)v, (uint32_t)(v >> 32)};
    return to_hex(w, 2);
}
template <std::size_t N>
inline std::string hex(const VlWide<N>& port) {
    return to_hex(port.data(), (int)N);
}

// Deterministic stall generator (xorshift), so a stalled run is reproducible.
struct Stall {
    uint64_t s = 0x9E3779B97F4A7C15ull;
    double p = 0.0;
    bool next() {
        if (p <= 0.0) return false;
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        return (double)(s >> 11) / 9007199254740992.0 < p;
    }
};

// The results file and the wall clock of one harness run; finish() writes the "stats" line.
struct Session {
    FILE* out = nullptr;
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
    Session(int argc, char** argv) {
        if (argc < 3) { std::fprintf(stderr, "usage: %s STIMULUS RESULTS [+PLUSARG...]\n", argv[0]); std::exit(2); }
        // plusargs after the two files reach the design ($value$plusargs: e.g. verif/mutate.py's +DBPIM_MUTANT=k)
        // and Verilator (+verilator+seed+N +verilator+rand+reset+2: random initial state, verif/native.py)
        Verilated::commandArgs(argc, argv);
        out = std::fopen(argv[2], "w");
        if (!out) { std::fprintf(stderr, "cannot write %s\n", argv[2]); std::exit(2); }
    }
    int unknown(const std::string& op) {
        std::fprintf(stderr, "unknown command %s\n", op.c_str());
        return 2;
    }
    void finish(uint64_t clocks) {
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::fprintf(out, "stats %llu %.6f\n", (unsigned long long)clocks, secs);
        std::fclose(out);
    }
};

inline std::vector<std::vector<std::string>> read_commands(const char* path) {
    std::ifstream f(path);
    if (!f) { std::fprintf(stderr, "cannot read %s\n", path); std::exit(2); }
    std::vector<std::vector<std::string>> out;
    std::string line;
    while (std::getline(f, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream ss(line);
        std::vector<std::string> tok;
        std::string t;
        while (ss >> t) tok.push_back(t);
        if (!tok.empty()) out.push_back(tok);
    }
    return out;
}

}  // namespace native

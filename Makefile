# Every target creates the virtual environment from requirements.txt on first use,
# so `make train-mnist` and `make test` work as the very first command on a fresh
# machine with Python 3.11 and pip. Extra flags pass through: make train-mnist ARGS="--epochs 3".

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
ifdef DATA_DIR
export DATA_DIR
endif

.PHONY: venv test train-mnist train-captcha train-word2vec train-imdb train-dcgan train-style train-animegan train-poetry train-flappy \
	bench bench-mnist bench-captcha bench-word2vec bench-imdb bench-dcgan bench-style bench-animegan bench-poetry bench-flappy report clean-venv \
	tune-mnist compare-optimizers compare-init demo test-browser test-distributed bench-distributed \
	bench-foundations regression knn linear-classifier classic-ml scratch regularization finetune

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

# The suite runs twice: once per Keras backend (the backend is fixed when Keras is imported).
# pytest-xdist spreads the test files over TEST_WORKERS processes (a file's tests share
# their trained fixtures, so they stay together; files with the most tests go first);
# TEST_WORKERS=0 runs them in this one. Under JAX the backend-independent tests are deselected.
# JAX keeps the programs it compiles in JAX_TEST_CACHE, outside the clone: the processes of one
# run share them (a test's subprocess compiles what the test compiled already) and so do later runs;
# every program is kept, not only those that took a second to compile (JAX's default): a process
# that starts finds its hundreds of small ones (initialisers, single operations) there too.
TEST_WORKERS ?= 2
JAX_TEST_CACHE ?= $(HOME)/.cache/deep-learning-projects/jax-tests
# The tests' models are tiny: compiling them quickly matters more than optimising them (half the compile time).
JAX_TEST_XLA_FLAGS ?= --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true
test: venv
	KERAS_BACKEND=tensorflow $(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadfile $(ARGS)
	KERAS_BACKEND=jax JAX_COMPILATION_CACHE_DIR=$(JAX_TEST_CACHE) JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 XLA_FLAGS="$(JAX_TEST_XLA_FLAGS)" $(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadfile $(ARGS)

train-mnist: venv
	$(PY) -m projects.mnist_cnn train $(ARGS)

train-captcha: venv
	$(PY) -m projects.captcha train $(ARGS)

train-word2vec: venv
	$(PY) -m projects.word2vec train $(ARGS)

train-imdb: venv
	$(PY) -m projects.imdb_sentiment train $(ARGS)

train-dcgan: venv
	$(PY) -m projects.dcgan train $(ARGS)

train-style: venv
	$(PY) -m projects.style_transfer train $(ARGS)

train-animegan: venv
	$(PY) -m projects.animegan train $(ARGS)

train-poetry: venv
	$(PY) -m projects.tang_poetry train $(ARGS)

train-flappy: venv
	$(PY) -m projects.flappy_dqn train $(ARGS)

bench: bench-mnist bench-captcha bench-word2vec bench-imdb bench-dcgan bench-style bench-animegan bench-poetry bench-flappy bench-foundations

bench-mnist: venv
	$(PY) -m projects.mnist_cnn bench $(ARGS)

# MNIST trained by one process and by two on 127.0.0.1, on both backends, compared weight for weight.
bench-distributed: venv
	$(PY) -m projects.mnist_cnn bench-distributed $(ARGS)

bench-captcha: venv
	$(PY) -m projects.captcha bench $(ARGS)

bench-word2vec: venv
	$(PY) -m projects.word2vec bench $(ARGS)

bench-imdb: venv
	$(PY) -m projects.imdb_sentiment bench $(ARGS)

bench-dcgan: venv
	$(PY) -m projects.dcgan bench $(ARGS)

bench-style: venv
	$(PY) -m projects.style_transfer bench $(ARGS)

bench-animegan: venv
	$(PY) -m projects.animegan bench $(ARGS)

bench-poetry: venv
	$(PY) -m projects.tang_poetry bench $(ARGS)

bench-flappy: venv
	$(PY) -m projects.flappy_dqn bench $(ARGS)

bench-foundations: venv
	$(PY) -m projects.foundations bench $(ARGS)

# The course's training experiments on MNIST; each writes its figures into projects/mnist_cnn/README.md.
tune-mnist: venv
	$(PY) -m projects.mnist_cnn tune --readme --minutes 19 $(ARGS)

compare-optimizers: venv
	$(PY) -m projects.mnist_cnn compare-optimizers --readme $(ARGS)

compare-init: venv
	$(PY) -m projects.mnist_cnn compare-init --readme $(ARGS)

# The course's foundations, one experiment each (projects/foundations); --readme writes its section of that README.
regression: venv
	$(PY) -m projects.foundations regression --readme $(ARGS)

knn: venv
	$(PY) -m projects.foundations knn --readme $(ARGS)

linear-classifier: venv
	$(PY) -m projects.foundations linear-classifier --readme $(ARGS)

classic-ml: venv
	$(PY) -m projects.foundations classic-ml --readme $(ARGS)

scratch: venv
	$(PY) -m projects.foundations scratch --readme $(ARGS)

regularization: venv
	$(PY) -m projects.foundations regularization --readme $(ARGS)

finetune: venv
	$(PY) -m projects.foundations finetune --readme $(ARGS)

report: venv
	$(PY) -m common.report $(ARGS)

# The web demo of the trained models (demo/): one tab per project, on 127.0.0.1 only unless ARGS="--host ...";
# each page uses its project's newest finished run, or the ones named: ARGS="--run mnist=runs/mnist_cnn/<run>".
demo: venv
	$(PY) -m demo $(ARGS)

# The demo in a real browser (tests/browser/, kept out of `make test`): Debian's headless Chromium and its
# chromedriver, installed with apt-get when missing, driven by the Selenium of requirements-demo.txt, which is
# pointed at them (and kept offline: it never downloads a browser). DEMO_SCREENSHOTS=folder keeps the screenshots.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(VENV)/.demo-installed: requirements-demo.txt $(VENV)/.installed
	$(VENV)/bin/pip install --quiet -r requirements-demo.txt
	touch $@

# Real groups of two worker processes on 127.0.0.1, under each backend (a few minutes).
test-distributed: venv
	KERAS_BACKEND=tensorflow $(PY) -m pytest tests/distributed/group_training.py -n 0 $(ARGS)
	KERAS_BACKEND=jax $(PY) -m pytest tests/distributed/group_training.py -n 0 $(ARGS)

# Headless Chromium, and a font with Chinese characters for the poem page (Debian's chromium brings none).
test-browser: $(VENV)/.demo-installed
	test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
		($(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver)
	fc-list :lang=zh | grep -q . || \
		($(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-wqy-microhei)
	SE_OFFLINE=true KERAS_BACKEND=tensorflow $(PY) -m pytest tests/browser/browser_demo.py -n 0 $(ARGS)

clean-venv:
	rm -rf $(VENV)

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

.PHONY: venv test train-mnist train-captcha bench bench-mnist bench-captcha report clean-venv

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

# The suite runs twice: once per Keras backend (the backend is fixed when Keras is imported).
test: venv
	KERAS_BACKEND=tensorflow $(PY) -m pytest tests $(ARGS)
	KERAS_BACKEND=jax $(PY) -m pytest tests $(ARGS)

train-mnist: venv
	$(PY) -m projects.mnist_cnn train $(ARGS)

train-captcha: venv
	$(PY) -m projects.captcha train $(ARGS)

bench: bench-mnist bench-captcha

bench-mnist: venv
	$(PY) -m projects.mnist_cnn bench $(ARGS)

bench-captcha: venv
	$(PY) -m projects.captcha bench $(ARGS)

report: venv
	$(PY) -m common.report $(ARGS)

clean-venv:
	rm -rf $(VENV)

# Quick start: `make demo` and `make test` on a fresh clone. Both create .venv if missing.
# Torch is pinned here (pyproject keeps ranges): PyPI's torchvision, which onnx2torch imports,
# only loads beside a matching torch build.
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
ARCH   := $(shell uname -m)
ifeq ($(ARCH),aarch64)
TORCH_PINS := torch==2.9.1 torchvision==0.24.1
else
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
endif
STAMP  := $(VENV)/.onnxattr-installed
DEMO   := demo-out
DEMO_MODEL  := samples/waifu2x-upconv7-x2.ts17.onnx
DEMO_IMAGE  := samples/images/chelsea-64.png
DEMO_WINDOW := 48 40 16

.PHONY: setup demo test clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -e ".[test,study]"
	touch $(STAMP)

demo: setup
	mkdir -p $(DEMO)
	$(VENV)/bin/onnxattr inspect $(DEMO_MODEL)
	$(VENV)/bin/onnxattr lam $(DEMO_MODEL) $(DEMO_IMAGE) --window $(DEMO_WINDOW) -o $(DEMO)/lam.nc
	$(VENV)/bin/onnxattr show $(DEMO)/lam.nc -o $(DEMO)/lam.png
	@echo "demo: result $(DEMO)/lam.nc, figure $(DEMO)/lam.png"

test: setup
	$(PY) -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(DEMO) .pytest_cache

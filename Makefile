# The Python .venv is built with, and so the Lambda runtime: chalice deploys the version of the
# Python that runs it. scripts/find-python finds one (python3.13 on PATH, else pyenv's);
# make PYTHON=/path/to/python3.13 names one.
PYTHON_VERSION := 3.13
ifndef PYTHON
PYTHON := $(shell scripts/find-python $(PYTHON_VERSION) 2>/dev/null)
endif
VENV := .venv
BIN := $(VENV)/bin
# The X.Y of $(PYTHON) and of .venv's python (empty where there is none that runs): a .venv
# built by another version (an older checkout's 3.11) is built again.
PY_VERSION := $(if $(PYTHON),$(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null))
VENV_VERSION := $(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PORT ?= 8000
HOST ?= 127.0.0.1
STATE_DIR ?= .local/state
STAGE ?= dev
STACK := nexus-$(STAGE)

.PHONY: run test lint typecheck check clean bench chaos deploy destroy package infra-check stage \
	admin-key screenshots which-python venv-version-changed deploy-check

ifneq ($(VENV_VERSION),$(PY_VERSION))
$(BIN)/.installed: venv-version-changed
endif
venv-version-changed: ;

$(BIN)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@[ -n "$(PYTHON)" ] || { scripts/find-python $(PYTHON_VERSION) >/dev/null; exit 1; }
	@[ -n "$(PY_VERSION)" ] || { echo "PYTHON=$(PYTHON) does not run: name a Python $(PYTHON_VERSION)"; exit 1; }
	@[ "$(PY_VERSION)" = "$(PYTHON_VERSION)" ] || echo "warning: $(PYTHON) is Python $(PY_VERSION):" \
		"chalice will package the functions for python$(PY_VERSION), not python$(PYTHON_VERSION)"
	@if [ -d $(VENV) ] && [ "$(VENV_VERSION)" != "$(PY_VERSION)" ]; then \
		echo "== $(VENV) is Python $(or $(VENV_VERSION),unknown), not $(PY_VERSION): building it again"; \
		rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	# This repository itself, editable: the nexus_client package and the `nexus` command.
	$(BIN)/python -m pip install --quiet -e .
	touch $@

## run: the whole system locally: embedded AWS, the API on http://$(HOST):$(PORT)/api/v1
run: $(BIN)/.installed
	$(BIN)/python -m local.run --host $(HOST) --port $(PORT) --state-dir $(STATE_DIR)

## test: every test
test: $(BIN)/.installed
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations=30

## bench: every benchmark and the chaos soak (about 12 minutes); writes bench/RESULTS.md
bench: $(BIN)/.installed
	cd bench && ../$(BIN)/python run_all.py

## chaos: a chaos soak on make run (about 6 minutes); fails if a run is doubled, lost or stuck
chaos: $(BIN)/.installed
	cd bench && ../$(BIN)/python chaos.py

## screenshots: the dashboard's pages, as the browser tests see them, into docs/screenshots/
screenshots: $(BIN)/.installed
	NEXUS_SCREENSHOT_DIR=docs/screenshots $(BIN)/python -m pytest tests/e2e/test_dashboard_browser.py

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

## check: what CI runs
check: test lint typecheck

## which-python: the path of the Python make builds .venv with (.ci/run uses it)
which-python:
	@[ -n "$(PYTHON)" ] || { scripts/find-python $(PYTHON_VERSION) >/dev/null; exit 1; }
	@echo "$(PYTHON)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# -- AWS (see README "Deploying to AWS") ---------------------------------------------------

stage:
	@case "$(STAGE)" in dev|prod) ;; *) echo "STAGE must be dev or prod, not '$(STAGE)'"; exit 1;; esac

## deploy: the stack (table, queues, alarms), then the Chalice app on it, then its API's 401/429
## answers and stage throttle (NEXUS_API_RATE=100 req/s, NEXUS_API_BURST=200): make deploy STAGE=dev
##   (infra.stack makes the stack with boto3 and writes its outputs into the stage: no AWS CLI)
##   (chalice deploy uploads the zip it finds in .chalice/deployments/ for these sources as it
##   is: chalice package builds it first, and infra.bytecode adds the modules' bytecode: README)
deploy: $(BIN)/.installed stage
	rm -rf build/deploy
	$(BIN)/chalice package --stage $(STAGE) build/deploy
	$(BIN)/python -m infra.bytecode --cached
	$(BIN)/python -m infra.stack deploy $(STAGE) \
		$(if $(ALARM_TOPIC_ARN),--alarm-topic $(ALARM_TOPIC_ARN))
	$(BIN)/python -m infra.target_policy $(STAGE)
	NEXUS_QUEUE_NAME=$(STACK)-work NEXUS_DLQ_NAME=$(STACK)-work-dlq \
		$(BIN)/chalice deploy --stage $(STAGE)
	$(BIN)/python -m infra.gateway $(STAGE)

## admin-key: a new admin key for a deployed stage, printed once: make admin-key STAGE=dev
##   (KEY_NAME="...", KEY_EXPIRES_AT=2027-01-01T00:00:00Z optional); only the key goes to stdout
admin-key: $(BIN)/.installed stage
	@$(BIN)/python -m infra.admin_key --stage $(STAGE) $(if $(KEY_NAME),--name "$(KEY_NAME)") \
		$(if $(KEY_EXPIRES_AT),--expires-at "$(KEY_EXPIRES_AT)")

## destroy: the Chalice app, then the stack (prod's table is deletion-protected)
destroy: $(BIN)/.installed stage
	$(BIN)/chalice delete --stage $(STAGE)
	$(BIN)/python -m infra.stack destroy $(STAGE)

## deploy-check: make deploy, make deploy again, a changed build and make destroy, for real,
##   against a fresh embedded AWS, with no AWS CLI on PATH; checks and prints what exists after
##   each (tests/deploy, also part of make test; about 90 s)
deploy-check: $(BIN)/.installed
	$(BIN)/python -m pytest tests/deploy -s -rA

## package: the SAM template and bundle Chalice would deploy, with the modules' bytecode, in
##   build/package (no AWS needed)
package: $(BIN)/.installed
	rm -rf build/package
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(BIN)/chalice package --stage $(STAGE) build/package
	$(BIN)/python -m infra.bytecode build/package/deployment.zip

## infra-check: cfn-lint on infra/ and the package, and the deployment tests (offline)
infra-check: $(BIN)/.installed
	$(BIN)/cfn-lint infra/nexus.yaml
	$(BIN)/python -m pytest tests/infra

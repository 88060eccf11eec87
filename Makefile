# mlops-templates: generate, lint, test, package and deploy a SageMaker MLOps project.
# Run `make help` for the targets. Everything installs itself on first use.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .venv-checkov
CLI := $(BIN)/mlops-templates
CONFIG ?= mlops.yaml
STAGE ?= dev
PARAMS ?=
NAME ?=
KEEP ?= 0
AWS ?= $(BIN)/aws
BUCKET ?= $(shell $(AWS) sts get-caller-identity --query Account --output text 2>/dev/null | sed 's/^/mlops-templates-artifacts-/')
PACKAGED := packaged
STAMP := $(VENV)/.installed
ASL_VALIDATOR := $(VENV)/node/node_modules/.bin/asl-validator

.PHONY: help install templates build lint test package deploy publish project local bench clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: CONFIG=$(CONFIG) STAGE=dev|prd|pipeline PARAMS='Key=Value ...' NAME=<project> KEEP=1"

install: $(STAMP) ## Create .venv (package + dev tools), the checkov tool venv and asl-validator

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	# checkov pins an older boto3 than this library needs: it lives in its own venv.
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==3.3.30'
	npm install --silent --no-audit --no-fund --prefix $(VENV)/node asl-validator@4.0.0
	touch $@

build: $(STAMP) ## Render every stack from $(CONFIG) into templates/
	$(CLI) -c $(CONFIG) build --out templates

templates: build lint ## Render and lint every stack (the main job)

lint: $(STAMP) ## cfn-lint + checkov + ASL validation over templates/
	$(CLI) -c $(CONFIG) lint --out templates
	@if ls templates/*.asl.json >/dev/null 2>&1; then \
	  for f in templates/*.asl.json; do $(ASL_VALIDATOR) --json-definition "$$f" --silent && echo "$$f: valid ASL"; done; \
	fi

test: $(STAMP) ## Run the whole test suite
	$(BIN)/pytest

package: $(STAMP) build ## Package templates to S3 with the AWS CLI (BUCKET=...)
	@test -n "$(BUCKET)" || { echo "error: set BUCKET=<artifact bucket> (or configure AWS credentials)"; exit 2; }
	mkdir -p $(PACKAGED)
	for t in templates/*.yaml; do \
	  $(AWS) cloudformation package --template-file "$$t" --s3-bucket "$(BUCKET)" \
	    --s3-prefix "$$($(CLI) -c $(CONFIG) stack-name pipeline)" \
	    --output-template-file "$(PACKAGED)/$$(basename $$t)"; \
	done

deploy: package ## Deploy one stack: STAGE=dev|prd|pipeline (PARAMS='Key=Value ...' overrides the config)
	@case "$(STAGE)" in dev|prd) stack=deploy-$(STAGE);; pipeline) stack=pipeline;; \
	  *) echo "error: STAGE must be dev, prd or pipeline (got '$(STAGE)')"; exit 2;; esac; \
	$(AWS) cloudformation deploy --template-file "$(PACKAGED)/$$stack.yaml" \
	  --stack-name "$$($(CLI) -c $(CONFIG) stack-name $$stack)" \
	  --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND \
	  --no-fail-on-empty-changeset \
	  --parameter-overrides $$($(CLI) -c $(CONFIG) params $$stack) $(PARAMS)

clean: ## Remove the venvs, packaged templates and caches
	rm -rf $(VENV) $(CHECKOV_VENV) $(PACKAGED) .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

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
STAGE ?= system
PARAMS ?=
NAME ?=
CONNECTION_ARN ?=
EMAIL ?=
PURGE ?=
YES ?=
KEEP ?= 0
TUNE ?= 0
BENCH_ARGS ?=
# Test processes (pytest-xdist): auto is one per CPU; 0 runs the suite in one process.
WORKERS ?= auto
GROUP ?=
JOBS ?=
VERSION ?=
REASON ?=
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
AWS ?= $(BIN)/aws
BUCKET ?=
# Empty: studio.publish_mode of the config (service_catalog unless set); s3 or service_catalog.
MODE ?=
MODE_FLAG = $(if $(MODE),--publish-mode "$(MODE)")
PACKAGED ?= packaged
STAMP := $(VENV)/.installed
ASL_VALIDATOR := $(VENV)/node/node_modules/.bin/asl-validator
# Node tools of the checks: the ASL validator, and Mermaid's own parser (with jsdom) for
# the architecture diagram. Changing a version changes the stamp's name: they reinstall.
NODE_TOOLS := asl-validator@4.0.0 mermaid@11.17.2 jsdom@24.1.3
empty :=
comma := ,
space := $(empty) $(empty)
NODE_STAMP := $(VENV)/node/.installed-$(subst $(space),_,$(subst @,-,$(NODE_TOOLS)))

.PHONY: help install templates build diagram golden lint ci test doctor bucket package deploy publish project destroy approve reject rollback status local batch drift bench mutate clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: CONFIG=$(CONFIG) BUCKET=<bucket> STAGE=system|account|pipeline|dev|prd|batch PARAMS='Key=Value ...'"
	@echo "           CONNECTION_ARN=<arn> EMAIL=<address> NAME=<project> PURGE=1|<kinds> YES=1 KEEP=1 TUNE=1"
	@echo "           MODE=service_catalog|s3 (make publish/project; default: studio.publish_mode)"
	@echo "           VERSION=<model package version> REASON=<why>"

install: $(STAMP) $(NODE_STAMP) ## Create .venv (package + dev tools), the checkov tool venv and the node checkers

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	# checkov pins an older boto3 than this library needs: it lives in its own venv.
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==3.3.30'
	touch $@

$(NODE_STAMP): | $(STAMP)
	rm -f $(VENV)/node/.installed-*
	npm install --silent --no-audit --no-fund --prefix $(VENV)/node $(NODE_TOOLS)
	touch $@

build: $(STAMP) ## Render every stack from $(CONFIG) into templates/
	$(CLI) -c $(CONFIG) build --out templates
	$(CLI) docs --readme README.md
	$(CLI) -c $(CONFIG) diagram --out templates --readme README.md

diagram: $(STAMP) ## Redraw the README's architecture diagram from templates/ and $(CONFIG) (make build does too)
	$(CLI) -c $(CONFIG) diagram --out templates --readme README.md

golden: $(STAMP) ## Re-render the golden files of the test configs (tests/configs -> tests/golden)
	for c in tests/configs/*.yaml; do \
	  $(CLI) -c "$$c" build --out "tests/golden/$$(basename "$$c" .yaml)" >/dev/null; \
	done

templates: build golden lint ## Render and lint every stack (the main job)

lint: $(STAMP) $(NODE_STAMP) ## cfn-lint + checkov + ASL validation over templates/ (and the CI workflow linters over templates/ci/)
	$(CLI) -c $(CONFIG) lint --out templates
	$(CLI) -c $(CONFIG) ci lint --out templates
	@if ls templates/*.asl.json >/dev/null 2>&1; then \
	  for f in templates/*.asl.json; do $(ASL_VALIDATOR) --json-path "$$f" --silent && echo "$$f: valid ASL"; done; \
	fi

# GitHub Actions / GitLab CI instead of CodePipeline (pipeline.orchestrator: github|gitlab):
# the workflow lands in templates/ci/ (make templates renders it too) for the project's repository.
ci: $(STAMP) ## Render the GitHub Actions / GitLab CI workflow of pipeline.orchestrator into templates/ci/ and lint it (actionlint, zizmor, schemas)
	@orchestrator="$$($(CLI) -c $(CONFIG) get pipeline.orchestrator)"; \
	if [ "$$orchestrator" = codepipeline ]; then \
	  echo "pipeline.orchestrator is codepipeline: no CI workflow (set it to github or gitlab in $(CONFIG))"; exit 0; \
	fi; \
	$(CLI) -c $(CONFIG) ci "$$orchestrator" --out templates && $(CLI) -c $(CONFIG) ci lint --out templates

test: $(STAMP) $(NODE_STAMP) ## Run the whole test suite, one process per CPU ([WORKERS=n], 0 for one process)
	$(BIN)/pytest -n $(WORKERS)

doctor: $(STAMP) ## Check the AWS account before deploying: prerequisites, quotas, leftovers (BUCKET=... [NAME=] [CONNECTION_ARN=])
	$(CLI) -c $(CONFIG) doctor --bucket "$(BUCKET)" --project "$(NAME)" --connection-arn "$(CONNECTION_ARN)"

# $(call package,STACK[,DIR]): DIR/STACK.yaml (default templates/) with its local code (Lambda
# folders) uploaded to BUCKET by the AWS CLI, written to $(PACKAGED)/STACK.yaml.
define package
$(AWS) cloudformation package --template-file $(if $(2),$(2),templates)/$(1).yaml --s3-bucket "$(BUCKET)" \
  --s3-prefix "$$($(CLI) -c $(CONFIG) stack-name $(1))" \
  --output-template-file "$(PACKAGED)/$(1).yaml" >/dev/null && echo "packaged $(PACKAGED)/$(1).yaml"
endef

bucket: # fails unless BUCKET is set
	@test -n "$(BUCKET)" || { echo "error: set BUCKET=<an S3 bucket you own for packaged templates and code>"; exit 2; }
	@mkdir -p $(PACKAGED)

package: $(STAMP) build bucket ## Package every rendered template and its code to S3 with the AWS CLI (BUCKET=...)
	@for stack in $$($(CLI) -c $(CONFIG) stage --all); do $(call package,$$stack) || exit 1; done

# Templates over 51,200 bytes must be deployed from S3, so deploys always go through BUCKET.
# `mlops-templates deploy` creates and executes a change set per stack and prints the
# stack's events while it waits, and the first failed resource when it fails.
deploy: $(STAMP) build bucket ## Deploy the system (account + pipeline stacks) or one stack: STAGE=account|pipeline|dev|prd|batch (BUCKET=...)
	@stacks="$$($(CLI) -c $(CONFIG) stage "$(STAGE)")"; \
	for stack in $$stacks; do $(call package,$$stack) || exit 1; done; \
	$(CLI) -c $(CONFIG) deploy $$stacks --packaged "$(PACKAGED)" --s3-bucket "$(BUCKET)" \
	  --connection-arn "$(CONNECTION_ARN)" --email "$(EMAIL)" --parameter-overrides $(PARAMS)

# The studio stack is rendered for the publish mode (MODE, else studio.publish_mode) beside
# the packaged templates. MODE=s3: the studio stack holds the template bucket, so it is deployed
# first and the pipeline template uploaded to it afterwards, tagged for Studio (publish-s3).
publish: $(STAMP) build bucket ## Publish the pipeline template for Studio: deploy the account (if enabled) and studio stacks, upload it (BUCKET=... [MODE=s3])
	@mode="$$($(CLI) -c $(CONFIG) $(MODE_FLAG) get studio.publish_mode)"; \
	stacks="$$($(CLI) -c $(CONFIG) $(MODE_FLAG) stage --publish)"; \
	source="$(PACKAGED)/source"; $(CLI) -c $(CONFIG) $(MODE_FLAG) build --stack studio --out "$$source" >/dev/null; \
	for stack in pipeline $$stacks; do \
	  dir=templates; if [ "$$stack" = studio ]; then dir="$$source"; fi; \
	  $(call package,$$stack,$$dir) || exit 1; \
	done; \
	if [ "$$mode" = s3 ]; then \
	  $(CLI) -c $(CONFIG) $(MODE_FLAG) publish-s3 --packaged "$(PACKAGED)" --s3-bucket "$(BUCKET)" \
	    --parameter-overrides $(PARAMS); \
	  exit 0; \
	fi; \
	key="$$($(CLI) -c $(CONFIG) stack-name pipeline)/pipeline-$$(sha256sum $(PACKAGED)/pipeline.yaml | cut -c1-16).yaml"; \
	region="$$($(AWS) configure get region || true)"; region="$${region:-$${AWS_REGION:-$${AWS_DEFAULT_REGION:-}}}"; \
	region="$${region:-$$($(CLI) -c $(CONFIG) get project.region)}"; \
	$(AWS) s3 cp --only-show-errors "$(PACKAGED)/pipeline.yaml" "s3://$(BUCKET)/$$key"; \
	$(CLI) -c $(CONFIG) $(MODE_FLAG) deploy $$stacks --packaged "$(PACKAGED)" --s3-bucket "$(BUCKET)" \
	  --parameter-overrides "PipelineTemplateUrl=https://$(BUCKET).s3.$$region.amazonaws.com/$$key" $(PARAMS)

project: $(STAMP) ## Create a SageMaker project from the published template and wait for it (NAME=<project> [CONNECTION_ARN=] [EMAIL=] [MODE=s3])
	@test -n "$(NAME)" || { echo "error: set NAME=<project name>"; exit 2; }
	@$(CLI) -c $(CONFIG) $(MODE_FLAG) create-project --name "$(NAME)" --connection-arn "$(CONNECTION_ARN)" --email "$(EMAIL)"

destroy: $(STAMP) ## Delete a project's stacks in order and report what they kept (NAME=<project> [PURGE=1] [YES=1])
	@test -n "$(NAME)" || { echo "error: set NAME=<project name>"; exit 2; }
	@$(CLI) -c $(CONFIG) destroy --name "$(NAME)" --purge "$(PURGE)" $(if $(filter 1 yes true,$(YES)),--yes)

# The model registry drives production: these change the registry, its event starts the
# promotion (README: Promotion through the model registry). NAME= picks a project other
# than project.name.
REGISTRY = $(CLI) -c $(CONFIG) $(if $(NAME),--project-name "$(NAME)") registry

approve: $(STAMP) ## Approve a model version: production follows the newest approved one (VERSION=n [NAME=])
	@$(REGISTRY) approve "$(VERSION)"

reject: $(STAMP) ## Reject a model version; if it is live, production goes back to the newest approved one (VERSION=n REASON=... [NAME=])
	@$(REGISTRY) reject "$(VERSION)" --reason "$(REASON)"

rollback: $(STAMP) ## Register the previous approved version again as a new approved version: it is deployed like any other ([NAME=])
	@$(REGISTRY) rollback

status: $(STAMP) ## Which model version, image and model data serve dev and production, and the last monitoring report ([NAME=])
	@$(REGISTRY) status

local: $(STAMP) ## Preprocess, train, evaluate, gate and serve the model locally, capture its requests and monitor them (KEEP=1 keeps the server; TUNE=1 searches training.tuning's ranges first)
	$(BIN)/python scripts/local.py --config $(CONFIG) $(if $(filter 1,$(KEEP)),--keep) $(if $(filter 1,$(TUNE)),--tune)

batch: $(STAMP) ## Train, then batch-transform the test split through the real server as SageMaker batch transform drives it, monitor the batch, fail on a bad row
	$(BIN)/python scripts/batch.py --config $(CONFIG)

drift: $(STAMP) ## Send drifted traffic to the local model, monitor it, upload ground truth: which features drift, which alarms fire, the HTML report
	$(BIN)/python scripts/drift.py --config $(CONFIG)

bench: $(STAMP) ## Print template-build, training, accuracy and serving figures (vs the samples' nginx+gunicorn+Flask stack and granian)
	$(BIN)/pip install --quiet -e '.[bench]'
	@command -v nginx >/dev/null && command -v wrk >/dev/null || { \
	  echo "note: installing nginx-light and wrk for the samples' stack and the load generator"; \
	  { command -v apt-get >/dev/null && $(SUDO) apt-get install -y -qq nginx-light wrk >/dev/null; } || \
	  echo "note: could not install them: the samples' stacks are skipped, the Python load generator is used"; }
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

# Not part of `make test` (it takes minutes per group): each group of tests/mutation/groups.toml
# runs in a temporary copy of the working tree; survivors not killed nor accepted in
# tests/mutation/accepted.toml fail the run.
mutate: $(STAMP) ## Mutation-test the safety-critical code with mutmut, per group (GROUP=<name>[,<name>] JOBS=<n>; KEEP=1 keeps the sessions)
	$(BIN)/python scripts/mutate.py $(foreach g,$(subst $(comma), ,$(GROUP)),--group $(g)) \
	  $(if $(JOBS),--jobs $(JOBS)) $(if $(filter 1,$(KEEP)),--keep)

clean: ## Remove the venvs, packaged templates and caches
	rm -rf $(VENV) $(CHECKOV_VENV) $(PACKAGED) .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

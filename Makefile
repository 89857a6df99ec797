# Set-up is two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Every setting (RECORDS_DATABASE_URL, EXPORTS_DIR, DAGSTER_HOME, ...) that the environment
# leaves unset gets its default from record_exports/settings.py, the one place defaults are
# written, and is exported to every recipe.
$(foreach setting,$(shell $(PYTHON) -m record_exports.settings --make),$(eval export $(setting)))

DEMO_FORMATS := csv ndjson json xlsx parquet

.PHONY: install demo test lint dev bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/record-exports init-db
	$(BIN)/record-exports seed --records 20000 --accounts 5 --seed 1 --if-empty
	@echo "The synthetic records hold some texts longer than Excel's 32,767-character cell limit"
	@echo "on purpose: the xlsx export warns that it cut them, as it would with real data."
	@for format in $(DEMO_FORMATS); do \
		$(BIN)/record-exports export --format $$format || exit 1; \
	done
	@echo "Exports are under $(EXPORTS_DIR)/on-demand; open the UI with 'make dev'."

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# init-db also writes DAGSTER_HOME/dagster.yaml when missing (from deploy/dagster.yaml).
dev: install
	$(BIN)/record-exports init-db
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .dagster_home exports data .mypy_cache .ruff_cache .pytest_cache

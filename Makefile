# Short named targets; `make setup` then `make test` is what CI runs (`make test` alone sets up too).
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: setup movielens demo dev test test-rust miri print-miri-toolchain test-python lint bench bench-report bench-fm bench-ratings clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Builds the extension (release) and installs fmfast with its test extra; again only when the
# Rust sources or the dependencies change (the Python package is installed editable).
INSTALLED := $(VENV)/.installed
RUST_SOURCES := $(shell find rust -name '*.rs' -o -name Cargo.toml)

$(INSTALLED): $(PY) pyproject.toml Cargo.toml Cargo.lock $(RUST_SOURCES)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# MovieLens-100K for the SageMaker notebook test (tests/sagemaker/test_sagemaker_sdk.py): RecBole's wheel
# ships it; fetched once from the package index, never committed.
MOVIELENS_WHEEL := .cache/recbole-1.2.1-py3-none-any.whl

$(MOVIELENS_WHEEL): $(PY)
	$(PY) -m pip download --quiet --no-deps recbole==1.2.1 -d .cache/

movielens: $(MOVIELENS_WHEEL)

setup: $(INSTALLED) $(MOVIELENS_WHEEL)

demo: setup
	$(BIN)/fmfast demo

# Debug build of the extension into the venv, for quick iterations (the test targets then use it).
dev:
	$(BIN)/maturin develop --quiet
	touch $(INSTALLED)

test: lint test-rust miri test-python

test-rust:
	cargo test -p fmfast-core --quiet

# Miri (undefined behaviour, data races) on the unit tests of fm and recordio, which hold the
# unsafe code; tests too slow for it are `#[cfg_attr(miri, ignore)]` and have small variants.
# Skipped where that nightly has no miri (`.ci/run` installs it). The nightly is pinned, so that
# a new one cannot fail a build that passed.
# Tree borrows: rayon's crossbeam-epoch breaks stacked borrows (crossbeam-rs/crossbeam#545) but
# not these, which crossbeam's own CI checks; its integer-to-pointer casts need permissive
# provenance; isolation off for the tests' temp files; leaks ignored because rayon's pool
# threads live as long as the process.
MIRI_TOOLCHAIN := nightly-2026-10-30
MIRIFLAGS ?= -Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-disable-isolation -Zmiri-ignore-leaks

miri:
	@if cargo +$(MIRI_TOOLCHAIN) miri --version >/dev/null 2>&1; then \
		MIRIFLAGS="$(MIRIFLAGS)" cargo +$(MIRI_TOOLCHAIN) miri test -p fmfast-core --lib -- fm:: recordio::; \
	else \
		echo "miri: skipped (no $(MIRI_TOOLCHAIN) toolchain with miri: rustup toolchain install $(MIRI_TOOLCHAIN) --component miri,rust-src)"; \
	fi

test-python: $(INSTALLED) $(MOVIELENS_WHEEL)
	SAGEMAKER_SUPPRESS_V2_WARNING=1 $(BIN)/pytest -q

lint: $(INSTALLED)
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc -p fmfast-core --no-deps --document-private-items --quiet
	$(BIN)/ruff check python tests benches examples
	$(BIN)/ruff format --check python tests benches examples
	$(BIN)/python -m mypy.stubtest fmfast._fmfast --allowlist stubtest-allowlist.txt
	$(BIN)/python -m mypy python/fmfast

# Benchmarks for real (pytest-benchmark); `make test` only smoke-runs them once.
bench:
	SAGEMAKER_SUPPRESS_V2_WARNING=1 $(BIN)/pytest benches -q --benchmark-enable --benchmark-columns=mean,stddev,rounds

# One-run report (fmfast vs SDK vs raw disk writes, peak memory of streaming) with ratios and targets.
# BENCH_REPORT_ARGS: e.g. `--rows 200000`, `--json report.json`.
bench-report:
	SAGEMAKER_SUPPRESS_V2_WARNING=1 $(PY) benches/report.py $(BENCH_REPORT_ARGS)

# FM training speed (5M generated ratings, and MovieLens-100K when FMFAST_MOVIELENS is set): fmfast on
# 1 and 2 threads and the default n_threads=0 vs the NumPy reference, same run. BENCH_FM_ARGS: e.g. `--repeat 5`.
bench-fm: setup
	$(PY) benches/fm_speed_report.py $(BENCH_FM_ARGS)

# Reading a ratings CSV (5M generated ratings): fmfast.read_ratings vs pandas.read_csv(engine="pyarrow"), time and
# peak memory, each in its own process. BENCH_RATINGS_ARGS: e.g. `--rows 1000000`.
bench-ratings: setup
	$(PY) benches/ratings_report.py $(BENCH_RATINGS_ARGS)

# Parquet to RecordIO shards (20M generated rows, cached in .cache/): fmfast.convert_table on 1 and 2 threads, peak
# memory at 2M and 20M rows, the pure-Python route on a sample, scaled. BENCH_TABLES_ARGS: e.g. `--rows 2000000`, `--spark`.
.PHONY: bench-tables
bench-tables: setup
	SAGEMAKER_SUPPRESS_V2_WARNING=1 $(PY) benches/table_report.py $(BENCH_TABLES_ARGS)

clean:
	cargo clean
	rm -f python/fmfast/_fmfast*.so

# The nightly `make miri` runs on (for `.ci/run` to install).
print-miri-toolchain:
	@echo $(MIRI_TOOLCHAIN)

.PHONY: setup demo test lint bench clean

setup:            ## create .venv and install everything
	bash scripts/setup.sh

demo:             ## set up, then run the main job on the embedded default
	bash scripts/demo.sh

test:             ## set up, then run the whole test suite (what CI runs)
	bash scripts/test.sh

lint:
	.venv/bin/ruff check lyra apps tests benchmarks && .venv/bin/mypy lyra

bench:            ## print the performance figures
	for f in benchmarks/bench_*.py; do .venv/bin/python $$f || exit 1; done

clean:
	rm -rf .venv .lyra .pytest_cache .mypy_cache .ruff_cache

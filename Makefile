.PHONY: setup demo test test-fast lint bench clean

setup:            ## create .venv and install everything
	bash scripts/setup.sh

demo:             ## set up, then run the main job on the embedded default
	bash scripts/demo.sh

test:             ## set up, ruff, mypy, then every test in parallel (what CI runs)
	bash scripts/test.sh full

test-fast:        ## set up, then the quick lane: no slow/subprocess/browser/notebook/postgres tests
	bash scripts/test.sh fast

lint:
	.venv/bin/ruff check lyra apps tests benchmarks && .venv/bin/mypy lyra

bench:            ## print the performance figures
	for f in benchmarks/bench_*.py; do .venv/bin/python $$f || exit 1; done

clean:
	rm -rf .venv .lyra .pytest_cache .mypy_cache .ruff_cache

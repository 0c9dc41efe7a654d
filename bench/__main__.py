"""``python -m bench``: the whole bench suite (see bench/suite.py)."""

from bench.suite import main

main()

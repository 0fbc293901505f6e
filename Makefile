# Shortcuts; each target is a plain command you can also run by hand.
.PHONY: run test lint bench bench-peers

run:
	python3 dev.py run

test:
	python3 dev.py test

lint:
	.venv/bin/python -m ruff check .

bench:
	python3 dev.py bench

bench-peers:
	python3 dev.py bench-peers

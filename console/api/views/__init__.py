"""One DRF view per action of the operator API, grouped by what it acts on."""

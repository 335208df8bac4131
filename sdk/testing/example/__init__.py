# Only so that this directory's conftest.py gets its own module name
# (example.conftest) when pytest collects it in one run together with
# tests/integration, whose test modules import from their own `conftest`.
# An out-of-tree connector's test directory does not need this file.

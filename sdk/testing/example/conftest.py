# An out-of-tree connector's conftest.py: the kit's fixtures, nothing else.
# The sys.path line says where the ingest_testing package is (sdk/testing in
# the source tree); with the package on PYTHONPATH it can go.
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

pytest_plugins = ["ingest_testing.pytest_plugin"]

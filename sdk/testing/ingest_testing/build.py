"""Where the binaries under test are.

    INGEST_BUILD_DIR  a meson build directory of ingest-host: host/ingest-hostd,
                      host/ingest-hostctl, plugins/<name>/ingest_<name>.so,
                      tests/plugins/ingest_<name>.so. Default: <source>/build
                      when this kit is used from an ingest-host source tree.
    INGEST_HOSTD      ingest-hostd to run (default: the build directory's,
                      else `ingest-hostd` in PATH, i.e. an installed daemon)
    INGEST_HOSTCTL    likewise for ingest-hostctl
    INGEST_PLUGIN     plugin files or directories holding them, separated by
                      ":"; searched first by find_plugin(), so an out-of-tree
                      connector's ingest_<name>.so is found by its name
"""
import os
import shutil
from pathlib import Path

import pytest

# sdk/testing/ingest_testing/build.py -> the source tree's root, if this is one.
_SOURCE = Path(__file__).resolve().parents[3]
SOURCE_ROOT = _SOURCE if (_SOURCE / "host").is_dir() and (_SOURCE / "sdk").is_dir() else None


def default_build_dir():
    """INGEST_BUILD_DIR, else <source>/build in a source tree, else None."""
    d = os.environ.get("INGEST_BUILD_DIR")
    if d:
        return Path(d).resolve()
    return (SOURCE_ROOT / "build").resolve() if SOURCE_ROOT else None


def _plugin_dirs_and_files():
    for part in filter(None, os.environ.get("INGEST_PLUGIN", "").split(":")):
        yield Path(part)


def find_plugin(name, build_dir=None):
    """Path of a plugin by name ("example" or "ingest_example"): the files and
    directories in INGEST_PLUGIN first, then the build tree's
    plugins/<name>/ingest_<name>.so and tests/plugins/ingest_<name>.so.
    Fails the test if none exists."""
    short = name[len("ingest_"):] if name.startswith("ingest_") else name
    fname = f"ingest_{short}.so"
    candidates = []
    for p in _plugin_dirs_and_files():
        candidates.append(p / fname if p.is_dir() else p)
    candidates = [c for c in candidates if c.name == fname]
    b = build_dir or default_build_dir()
    if b is not None:
        b = Path(b)
        candidates += [b / "plugins" / short / fname, b / "tests" / "plugins" / fname]
    for c in candidates:
        if c.is_file():
            return c
    pytest.fail(f"plugin {name!r} not built; looked for: " + ", ".join(map(str, candidates))
                + " (set INGEST_PLUGIN or INGEST_BUILD_DIR)")


def require(path, what):
    """path if it is a file; fails the test otherwise."""
    if not path.is_file():
        pytest.fail(f"{what} not built: {path} (run meson compile -C {path.parents[1]})")
    return path


def _binary(env_var, name, build_dir):
    if os.environ.get(env_var):
        return require(Path(os.environ[env_var]).resolve(), name)
    if build_dir is not None:
        return require(Path(build_dir) / "host" / name, name)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: set {env_var}, INGEST_BUILD_DIR or PATH")
    return Path(found)


def find_hostd(build_dir=None):
    """INGEST_HOSTD, else <build>/host/ingest-hostd, else ingest-hostd in PATH."""
    return _binary("INGEST_HOSTD", "ingest-hostd", build_dir)


def find_hostctl(build_dir=None):
    """INGEST_HOSTCTL, else <build>/host/ingest-hostctl, else ingest-hostctl in PATH."""
    return _binary("INGEST_HOSTCTL", "ingest-hostctl", build_dir)

"""Several commits in one transaction (store_commit_parts, what the webhook
dispatcher uses to finish a chunk of deliveries) behave as if each part had
been committed alone: per-part counts, first row wins for a repeated key, a
lost lease or bad data fails only its own part. The checks are C
(tests/unit/store_parts_check.c) against this suite's real PostgreSQL."""
import subprocess
from pathlib import Path

from conftest import _require


def test_store_commit_parts(build_dir, db_url):
    exe = _require(Path(build_dir) / "tests" / "unit" / "store_parts_check",
                   "store_parts_check")
    r = subprocess.run([str(exe), db_url], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[  PASSED  ] 4 test(s)." in r.stdout + r.stderr, r.stdout + r.stderr

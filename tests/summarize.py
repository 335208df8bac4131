#!/usr/bin/env python3
"""Sum up test results of one or more build directories (written by etc/dev/test.sh).

For each BUILD_DIR it reads:
  meson-logs/testlog.json  meson test, one JSON object per line with "result"
  pytest-junit.xml         pytest --junitxml
  test-steps.txt           "<step> <exit code>" per step run by test.sh

A step that exited non-zero without any failing test to show for it (build
failure, crashed runner) counts as one failure. Prints one line per suite and a
final line "N passed, N failed"; exits 1 if anything failed or nothing ran.

usage: summarize.py BUILD_DIR...
"""
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

MESON_PASS = {"OK", "EXPECTEDFAIL"}
MESON_SKIP = {"SKIP"}  # everything else (FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS) fails


def meson_results(path):
    """-> (passed, failed, skipped, [failed names]) or None if no log."""
    if not path.is_file():
        return None
    p = f = s = 0
    bad = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            t = json.loads(line)
        except ValueError:  # truncated log (runner killed): count it, go on
            t = {"name": "<unparseable testlog.json line>"}
        r = t.get("result", "ERROR")
        if r in MESON_PASS:
            p += 1
        elif r in MESON_SKIP:
            s += 1
        else:
            f += 1
            bad.append(f"{t.get('name', '?')} ({r})")
    return p, f, s, bad


def junit_results(path):
    """Classify each <testcase> (a teardown error marks its test failed)."""
    if not path.is_file():
        return None
    p = f = s = 0
    bad = []
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        return 0, 1, 0, [f"{path} unreadable: {e}"]
    for tc in root.iter("testcase"):
        tags = {child.tag for child in tc}
        if tags & {"failure", "error"}:
            f += 1
            name = tc.get("name", "?")
            cls = tc.get("classname")
            bad.append(f"{cls}::{name}" if cls else name)
        elif "skipped" in tags:
            s += 1
        else:
            p += 1
    return p, f, s, bad


def read_steps(path):
    steps = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            name, _, rc = line.partition(" ")
            steps[name] = int(rc or 1)
    return steps


def main(dirs):
    if not dirs:
        print(__doc__, file=sys.stderr)
        return 2
    total_p = total_f = 0
    for d in map(Path, dirs):
        steps = read_steps(d / "test-steps.txt")
        for step in ("setup", "compile"):
            if steps.get(step, 0) != 0:
                print(f"{d.name}: {step} FAILED (exit {steps[step]})")
                total_f += 1
        suites = [
            ("meson", "meson-test", meson_results(d / "meson-logs" / "testlog.json")),
            ("pytest", "pytest", junit_results(d / "pytest-junit.xml")),
        ]
        for label, step, res in suites:
            rc = steps.get(step)
            if res is None:
                if rc not in (None, 0, 5):  # it ran, failed, and left no results
                    print(f"{d.name}: {label}: no results (exit {rc}) FAILED")
                    total_f += 1
                elif rc is not None:
                    print(f"{d.name}: {label}: no tests")
                continue
            p, f, s, bad = res
            # pytest exit 5 = nothing collected; not a failure by itself
            if f == 0 and rc not in (None, 0, 5):
                bad.append(f"{label} exited {rc} without a failing test")
                f += 1
            print(f"{d.name}: {label}: {p} passed, {f} failed, {s} skipped")
            for name in bad:
                print(f"    FAILED {name}")
            total_p += p
            total_f += f
    print(f"{total_p} passed, {total_f} failed")
    if total_p + total_f == 0:
        print("no tests ran", file=sys.stderr)
        return 1
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

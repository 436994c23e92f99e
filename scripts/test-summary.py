"""Sums the results of the test runs of scripts/test and prints one line:
`N passed, M failed`. Arguments: build directories whose `make check` ran (each holds
check.rc and the suites' .trs/.log files); a fuzz.out beside them counts one test per
fuzz target. A program that failed without reporting a failing case (a crash, a sanitizer
or valgrind error) counts as one failure."""

import glob
import os
import re
import sys

passed = failed = 0


def suite(build):
    global passed, failed
    trs_files = sorted(glob.glob(os.path.join(build, "tests", "**", "*.trs"), recursive=True))
    for trs in trs_files:
        name, log = trs[:-4], trs[:-4] + ".log"
        result = ""
        with open(trs) as f:
            for line in f:
                if line.startswith(":test-result:"):
                    result = line.split(":", 2)[2].strip()
        text = open(log, errors="replace").read() if os.path.exists(log) else ""
        p = f = None
        m = re.findall(r"^(\d+) passed, (\d+) failed", text, re.M)
        c = re.findall(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)", text)
        if m:
            p, f = map(int, m[-1])
        elif c:
            n, fl, er = map(int, c[-1])
            p, f = n - fl - er, fl + er
        for line in text.splitlines():
            if line.startswith("not ok") or re.search(r":[EF]:", line):
                print("  %s: %s" % (name, line.strip()))
        if p is None:
            p, f = (1, 0) if result in ("PASS", "SKIP") else (0, 1)
        elif result not in ("PASS", "SKIP") and f == 0:
            f = 1
        if result not in ("PASS", "SKIP"):
            print("  %s: %s, see %s" % (name, result or "did not finish", log))
            for line in text.splitlines()[-15:]:
                print("    | " + line)
        passed += p
        failed += f
    rc_file = os.path.join(build, "check.rc")
    rc = int(open(rc_file).read().strip() or 1) if os.path.exists(rc_file) else 1
    if rc != 0 and not trs_files:
        failed += 1
        print("  %s: make check failed before running the tests; its output:" % build)
        out = os.path.join(build, "check.out")
        if os.path.exists(out):
            print("".join(open(out, errors="replace").readlines()[-40:]))
    elif rc != 0 and failed == 0:
        failed += 1
        print("  %s: make check failed (see %s/check.out)" % (build, build))


def fuzz(build):
    global passed, failed
    out = os.path.join(build, "fuzz.out")
    if not os.path.exists(out):
        return
    text = open(out, errors="replace").read()
    ok = re.findall(r"^fuzz: (\S+) ok", text, re.M)
    bad = re.findall(r"^fuzz: (\S+) FAILED", text, re.M)
    passed += len(ok)
    failed += len(bad)
    rc_file = os.path.join(build, "fuzz.rc")
    if (not ok and not bad) or (os.path.exists(rc_file) and open(rc_file).read().strip() != "0" and not bad):
        failed += 1
        print("  fuzz run failed:")
        print(text[-3000:])
    for b in bad:
        print("  fuzz target %s found a failure (see %s)" % (b, out))


for d in sys.argv[1:] or ["."]:
    if os.path.isdir(d):
        suite(d)
        fuzz(d)
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)

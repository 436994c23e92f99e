"""Sums the results of every test program run by `make check` and prints one line:
`N passed, M failed`. A program that failed without reporting a failing case (a crash,
a sanitizer or valgrind error) counts as one failure."""

import glob
import os
import re
import sys

make_rc = int(sys.argv[1]) if len(sys.argv) > 1 else 0
passed = failed = 0
programs = 0
for trs in sorted(glob.glob("tests/**/*.trs", recursive=True)):
    programs += 1
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
    passed += p
    failed += f
if make_rc != 0 and failed == 0:
    failed += 1
    print("  make check failed outside the tests; its output:")
    if os.path.exists("tests/check.out"):
        print("".join(open("tests/check.out", errors="replace").readlines()[-40:]))
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)

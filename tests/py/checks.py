"""The reference tests' one assertion helper: check() prints each result and collects the failures, so a test
reports every broken property in one run instead of stopping at the first; the test exits non-zero if
`failures` is not empty."""

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)

#!/usr/bin/env python3
"""Checks docs/bucketing.md's test vectors against an independent murmur3
implementation (the `mmh3` package), so Rust and the vectors cannot drift together."""
import json
import pathlib
import sys

try:
    import mmh3
except ImportError:
    sys.exit("mmh3 is missing: pip install mmh3 (scripts/test.sh installs it)")

PATH = pathlib.Path(__file__).resolve().parent.parent / "crates/core/testdata/bucketing-vectors.json"
UNLEASH_VARIANT_SEED = 86028157


def murmur(text, seed=0):
    return mmh3.hash(text.encode("utf-8"), seed, signed=False)


def main():
    data = json.loads(PATH.read_text(encoding="utf-8"))
    failures, checked = [], 0
    for v in data["switchyard"]:
        h = murmur(v["salt"] + "/" + v["value"])
        bucket = (h * 100_000) >> 32
        checked += 1
        if (h, bucket) != (v["hash"], v["bucket"]):
            failures.append(f"switchyard {v}: mmh3 says hash={h} bucket={bucket}")
    for v in data["unleash_percentage"]:
        p = murmur(v["group"] + ":" + v["value"]) % 100 + 1
        checked += 1
        if p != v["percentage"]:
            failures.append(f"unleash percentage {v}: mmh3 says {p}")
    for v in data["unleash_variant"]:
        t = murmur(v["group"] + ":" + v["value"], UNLEASH_VARIANT_SEED) % v["total"] + 1
        checked += 1
        if t != v["target"]:
            failures.append(f"unleash variant {v}: mmh3 says {t}")
    if len(data["switchyard"]) < 50:
        failures.append(f"only {len(data['switchyard'])} Switchyard vectors; at least 50 are required")
    for f in failures:
        print("MISMATCH", f)
    print(f"bucketing vectors: {checked - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

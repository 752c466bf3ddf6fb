"""Fail when a resolved dependency declares a rust-version newer than poolwarden's."""
import json
import sys


def ver(v):
    return tuple(int(x) for x in (v.split(".") + ["0"])[:2])


meta = json.load(sys.stdin)
ours = next(p for p in meta["packages"] if p["name"] == "poolwarden")["rust_version"]
newer = [
    "%s %s needs Rust %s" % (p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if p.get("rust_version") and ver(p["rust_version"]) > ver(ours)
]
print("rust-version %s: %d crates resolved, %d need a newer Rust" % (ours, len(meta["packages"]), len(newer)))
sys.exit("\n".join(newer) if newer else 0)

#!/usr/bin/env python3
"""Prints the medians criterion measured and each Pamoja/reference ratio.

Run after `cargo bench --bench identity` and `cargo bench --bench dht_network`; reads
target/criterion/<group>/<name>/new/estimates.json and target/criterion/dht_rss.json.
A ratio is Pamoja's median time (or memory) over the reference's: lower is better.
"""
import json
import pathlib
import sys

PAIRS = [
    ("account_creation", "pamoja", "openssl_genpkey_x3", 1.2),
    ("archive_open", "pamoja", "argon2_cffi", 1.1),
    # put+get rounds: at least 1.5x the rate, so at most 1/1.5 of the time.
    ("dht_network", "pamoja_16", "dhtnode_16", 1 / 1.5),
]

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def median(group, name):
    path = root / group / name / "new" / "estimates.json"
    if not path.exists():
        return None
    est = json.loads(path.read_text())["median"]
    return est["point_estimate"], est["confidence_interval"]["lower_bound"], est["confidence_interval"]["upper_bound"]


failed = False
print("| benchmark | Pamoja median | reference | reference median | ratio | target |")
print("|---|---|---|---|---|---|")
for group, ours, ref, target in PAIRS:
    a, b = median(group, ours), median(group, ref)
    if a is None or b is None:
        print(f"| {group} | missing | {ref} | missing | - | <= {target} |")
        failed = True
        continue
    ratio = a[0] / b[0]
    ok = ratio <= target
    failed |= not ok
    print(f"| {group} | {a[0] / 1e6:.0f} ms [{a[1] / 1e6:.0f}, {a[2] / 1e6:.0f}] | {ref} "
          f"| {b[0] / 1e6:.0f} ms [{b[1] / 1e6:.0f}, {b[2] / 1e6:.0f}] | {ratio:.2f} | <= {target:.2g} {'ok' if ok else 'MISSED'} |")
rss = root / "dht_rss.json"
if rss.exists():
    r = json.loads(rss.read_text())
    ours, ref = r.get("pamoja"), r.get("dhtnode")
    if ours and ref:
        ratio = ours["rss_kib"] / ref["rss_kib"]
        ok = ratio <= 0.5
        failed |= not ok
        print(f"| dht_rss (node with {ours['values_acked']} values) | {ours['rss_kib']} KiB | dhtnode "
              f"| {ref['rss_kib']} KiB | {ratio:.2f} | <= 0.5 {'ok' if ok else 'MISSED'} |")
sys.exit(1 if failed else 0)

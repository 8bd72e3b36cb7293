#!/usr/bin/env python3
"""Prints the medians criterion measured and each Pamoja/reference ratio.

Run after `cargo bench --bench identity`, `--bench dht_network`, `--bench ice`,
`--bench ice_lab`, `--bench secure_dht`, `--bench channel`, `--bench channel_lab`,
`--bench swarm`, `--bench swarm_lab`, `--bench client_lab`, `--bench sync_lab`,
`--bench call_lab` and
`cargo bench -p pamoja-media --bench srtp`, `--bench opus` and `--bench vp8`; reads
target/criterion/<group>/<name>/new/estimates.json, target/criterion/dht_rss.json,
target/criterion/ice_lab.json, target/criterion/channel.json and
target/criterion/channel_lab.json.
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
    # An ICE check written, and read with integrity and fingerprint checked, vs pion/stun.
    ("stun_check_encode", "pamoja", "pion", 1.0),
    ("stun_check_decode", "pamoja", "pion", 1.0),
    # SecureDht rounds on one loopback network, vs a C++ peer on libopendht: >= 1x the rate.
    ("signed_put_get", "pamoja", "libopendht", 1.0),
    ("encrypted_put_get", "pamoja", "libopendht", 1.0),
    # SRTP AES_CM_128_HMAC_SHA1_80 vs libsrtp2: >= 1x the rate.
    ("srtp_protect_128", "pamoja", "libsrtp2", 1.0),
    ("srtp_unprotect_128", "pamoja", "libsrtp2", 1.0),
    ("srtp_protect_1200", "pamoja", "libsrtp2", 1.0),
    ("srtp_unprotect_1200", "pamoja", "libsrtp2", 1.0),
    # 10 s of Opus at 48 kb/s vs libopus's own opusenc: real-time factor at least as high.
    ("opus_encode_10s", "pamoja", "opusenc", 1.0),
    # 2 s of 720p VP8 at 2 Mb/s vs libvpx's own vpxenc, same settings.
    ("vp8_encode_720p_2s", "pamoja", "vpxenc", 1.0),
]

# Compared without a target: the same agents through coturn vs on a direct path.
INFO = [
    ("udp_echo_1000x1000", "via_coturn", "direct"),
]


def fmt(ns):
    """A duration in ns with a unit that keeps 3 significant digits."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_ci(m):
    return f"{fmt(m[0])} [{fmt(m[1])}, {fmt(m[2])}]"

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
    print(f"| {group} | {fmt_ci(a)} | {ref} | {fmt_ci(b)} | {ratio:.2f} "
          f"| <= {target:.2g} {'ok' if ok else 'MISSED'} |")
for group, ours, ref in INFO:
    a, b = median(group, ours), median(group, ref)
    if a is not None and b is not None:
        print(f"| {group} ({ours}) | {fmt_ci(a)} | {ref} | {fmt_ci(b)} | {a[0] / b[0]:.2f} | - |")
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
lab = root / "ice_lab.json"
if lab.exists():
    print()
    print("| NAT lab scenario | path | first nominated pair, median of 7 | min | max |")
    print("|---|---|---|---|---|")
    for r in json.loads(lab.read_text()):
        print(f"| {r['scenario']} | {r['path']} | {r['median_ms']:.0f} ms | {r['min_ms']:.0f} ms "
              f"| {r['max_ms']:.0f} ms |")
ch = root / "channel.json"
if ch.exists():
    r = json.loads(ch.read_text())
    ratio = r["ratio"]
    ok = ratio >= 0.8
    failed |= not ok
    print()
    print("| device link | Pamoja | reference | ratio | goal |")
    print("|---|---|---|---|---|")
    print(f"| 1 GiB on one channel (ICE-TCP + TLS 1.3 + mux), median of {r['runs']} "
          f"| {r['median_link_bytes_per_s'] / 1e6:.0f} MB/s | plain TCP "
          f"{r['median_plain_tcp_bytes_per_s'] / 1e6:.0f} MB/s | {ratio:.2f} "
          f"| >= 0.8 {'ok' if ok else 'MISSED'} |")
    if "median_tls_over_tcp_bytes_per_s" in r:
        print(f"| the same 1 GiB, against TLS 1.3 alone over that TCP path "
              f"| {r['median_link_bytes_per_s'] / 1e6:.0f} MB/s | TLS over TCP "
              f"{r['median_tls_over_tcp_bytes_per_s'] / 1e6:.0f} MB/s "
              f"| {r['ratio_to_tls_over_tcp']:.2f} | - |")
    print(f"| heap per open channel, {r['channels']} on one link (both ends) "
          f"| {r['bytes_per_channel_both_ends'] / 1024:.1f} KiB | - | - | - |")
lab = root / "channel_lab.json"
if lab.exists():
    r = json.loads(lab.read_text())
    ratio = r["ratio"]
    ok = ratio <= 1.0
    failed |= not ok
    print(f"| send to 200 OK over a link, median of {r['messages'] - 1} "
          f"| {r['median_pamoja_ms']:.2f} ms | jamid to jamid {r['median_jamid_ms']:.2f} ms "
          f"| {ratio:.2f} | <= 1 {'ok' if ok else 'MISSED'} |")
    print(f"| first message, link made | {r['first_pamoja_ms']:.0f} ms "
          f"| jamid to jamid {r['first_jamid_ms']:.0f} ms | - | - |")
sw = root / "swarm.json"
lab = root / "swarm_lab.json"
if sw.exists() or lab.exists():
    print()
    print("| conversations | Pamoja | jamid, same run | ratio | goal |")
    print("|---|---|---|---|---|")
if lab.exists():
    r = json.loads(lab.read_text())
    ok = r["load_ratio"] <= 0.5
    failed |= not ok
    print(f"| post a message (median of {r['posts']}) | {r['pamoja_post_median_ms']:.1f} ms "
          f"| {r['jamid_post_median_ms']:.1f} ms | {r['post_ratio']:.2f} | - |")
    print(f"| load the last 50 of jamid's conversation | {r['pamoja_load_median_ms']:.2f} ms "
          f"| {r['jamid_load_median_ms']:.2f} ms | {r['load_ratio']:.3f} "
          f"| <= 0.5 {'ok' if ok else 'MISSED'} |")
    print(f"| validate jamid's {r['validated_commits']} commits | {r['pamoja_validate_ms']:.0f} ms "
          f"| - | - | - |")
    if "take_fetched_ratio" in r:
        ok = r["take_fetched_ratio"] <= 0.5
        failed |= not ok
        print(f"| take in a fetched history of {r['posts']} commits (fetch, validate, merge) "
              f"| {r['pamoja_take_fetched_ms']:.0f} ms | {r['jamid_take_fetched_ms']:.0f} ms "
              f"| {r['take_fetched_ratio']:.2f} | <= 0.5 {'ok' if ok else 'MISSED'} |")
if sw.exists():
    r = json.loads(sw.read_text())
    print(f"| post {r['posts']} signed messages | {r['post_total_s']:.1f} s "
          f"({r['post_median_ms']:.1f} ms each) | - | - | - |")
    print(f"| validate a fetched history of {r['validate_commits']} commits "
          f"| {r['validate_median_s']:.2f} s | - | - | - |")
    print(f"| load the last 50 of {r['load_last_50_of']} commits | {r['load_median_ms']:.2f} ms "
          f"| - | - | - |")
cl = root / "client_lab.json"
if cl.exists():
    r = json.loads(cl.read_text())
    m, c = r["message_ms"], r["contact_confirmed_ms"]
    print()
    print("| contacts and messages | Pamoja | jamid to jamid, same run | ratio | goal |")
    print("|---|---|---|---|---|")
    for key, label in (("pamoja_to_jamid", "Pamoja -> jamid"), ("jamid_to_pamoja", "jamid -> Pamoja")):
        ratio = m[key] / m["jamid_to_jamid"]
        ok = ratio <= 1.0
        failed |= not ok
        print(f"| message post -> shown, {label} (median of {r['rounds']}) | {m[key]:.1f} ms "
              f"| {m['jamid_to_jamid']:.1f} ms | {ratio:.2f} | <= 1 {'ok' if ok else 'MISSED'} |")
    for key, label in (("pamoja_to_jamid", "Pamoja -> jamid"), ("jamid_to_pamoja", "jamid -> Pamoja")):
        ratio = c[key] / c["jamid_to_jamid"]
        ok = ratio <= 1.0
        failed |= not ok
        print(f"| contact add -> confirmed, {label} | {c[key]:.0f} ms "
              f"| {c['jamid_to_jamid']:.0f} ms | {ratio:.3f} | <= 1 {'ok' if ok else 'MISSED'} |")
    ok = c["pamoja_to_pamoja"] <= 5000
    failed |= not ok
    print(f"| contact add -> confirmed, Pamoja -> Pamoja | {c['pamoja_to_pamoja']:.0f} ms | - | - "
          f"| <= 5 s {'ok' if ok else 'MISSED'} |")
sy = root / "sync_lab.json"
if sy.exists():
    r = json.loads(sy.read_text())
    t, hwm, rss = r["first_sync_s"], r["peak_rss_mib"], r["rss_before_mib"]
    print()
    print(f"| first sync of {r['messages']} messages from jamid | Pamoja | jamid, same run | ratio |")
    print("|---|---|---|---|")
    print(f"| time (accept -> conversation ready) | {t['pamoja']:.1f} s | {t['jamid']:.1f} s "
          f"| {t['pamoja'] / t['jamid']:.2f} |")
    print(f"| peak RSS of the receiving process | {hwm['pamoja']:.1f} MiB (from {rss['pamoja']:.1f}) "
          f"| {hwm['jamid']:.1f} MiB (from {rss['jamid']:.1f}) | {hwm['pamoja'] / hwm['jamid']:.2f} |")
    print(f"| (writing them as signed commits, Pamoja) | {r['pamoja_write_s']:.1f} s | - | - |")
    print(f"| (jamid fetching and validating them from Pamoja) | - | {r['jamid_fetch_from_pamoja_s']:.1f} s | - |")
cl = root / "call_lab.json"
if cl.exists():
    r = json.loads(cl.read_text())
    su, cpu = r["setup_ms"], r["caller_cpu_percent"]
    print()
    print("| audio calls (to a jamid that answers by itself) | Pamoja | jamid, same run | ratio | goal |")
    print("|---|---|---|---|---|")
    ratio = su["pamoja_to_jamid"] / su["jamid_to_jamid"]
    print(f"| call placed -> current, caller side (median of {r['rounds']}) | {su['pamoja_to_jamid']:.0f} ms "
          f"| {su['jamid_to_jamid']:.0f} ms | {ratio:.2f} | - |")
    ratio = cpu["pamoja"] / cpu["jamid"]
    print(f"| caller CPU per active audio call, % of one core over {r['hold_s']} s (median) "
          f"| {cpu['pamoja']:.1f} % | {cpu['jamid']:.1f} % | {ratio:.2f} | - |")
    if "jamid_video" in cpu:
        ratio = cpu["pamoja_video"] / cpu["jamid_video"]
        print(f"| caller CPU per active audio + video call (VP8 320x240, 15 fps, the same raw file) "
              f"| {cpu['pamoja_video']:.1f} % | {cpu['jamid_video']:.1f} % | {ratio:.2f} | - |")
sys.exit(1 if failed else 0)

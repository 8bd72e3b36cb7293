//! Time from the start of gathering to the first selected (nominated) pair, for our agent,
//! in each scenario of the NAT lab (network namespaces, nftables routers, coturn on the
//! lab's wan): the scenarios of tests/nat_lab.rs, each run 7 times; medians and spreads are
//! printed and written to `target/criterion/ice_lab.json`. Needs root and nftables.
//!
//! `cargo bench --bench ice_lab`

mod common;
#[path = "../tests/nat_scenarios/mod.rs"]
mod nat_scenarios;

use std::time::Duration;

use nat_scenarios::Host;
use pamoja::ice::candidate::Transport;
use pamoja_lab::Nat;

const RUNS: usize = 7;

fn host(nat: Nat, block_udp: bool) -> Host {
    Host { nat, block_udp }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(why) = nat_scenarios::missing() {
        eprintln!("ice_lab skipped: {why}");
        return;
    }
    let scenarios = [
        (
            "one network",
            host(Nat::None, false),
            host(Nat::None, false),
            Transport::Udp,
        ),
        (
            "one behind NAT",
            host(Nat::EndpointIndependent, false),
            host(Nat::None, false),
            Transport::Udp,
        ),
        (
            "both behind EIM NATs (hole punch)",
            host(Nat::EndpointIndependent, false),
            host(Nat::EndpointIndependent, false),
            Transport::Udp,
        ),
        (
            "both behind symmetric NATs (relay)",
            host(Nat::Symmetric, false),
            host(Nat::Symmetric, false),
            Transport::Udp,
        ),
        (
            "UDP blocked (TCP)",
            host(Nat::EndpointIndependent, true),
            host(Nat::None, false),
            Transport::Tcp,
        ),
        (
            "TCP, both behind symmetric NATs (TCP relay)",
            host(Nat::Symmetric, false),
            host(Nat::Symmetric, false),
            Transport::Tcp,
        ),
    ];
    let mut out = Vec::new();
    println!(
        "{:<46} {:>10} {:>8} {:>8} {:>10}  path (A's local -> remote)",
        "scenario", "median ms", "min ms", "max ms", "checks ms"
    );
    for (name, a, b, transport) in scenarios {
        let mut path = String::new();
        let mut checks = Vec::new();
        let mut times: Vec<Duration> = (0..RUNS)
            .map(|_| {
                let (x, y) = nat_scenarios::run(a, b, transport);
                assert!(
                    x.received.len() == 5 && y.received.len() == 5,
                    "data both ways"
                );
                path = format!(
                    "{:?} -> {:?}",
                    x.selected.local.kind, x.selected.remote.kind
                );
                checks.push(x.checks.max(y.checks));
                x.to_nomination.max(y.to_nomination)
            })
            .collect();
        checks.sort();
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let median = times[RUNS / 2];
        println!(
            "{name:<46} {:>10.0} {:>8.0} {:>8.0} {:>10.0}  {path}",
            ms(median),
            ms(times[0]),
            ms(times[RUNS - 1]),
            ms(checks[RUNS / 2])
        );
        out.push(format!(
            "{{\"scenario\": \"{name}\", \"path\": \"{path}\", \"median_ms\": {:.1}, \"min_ms\": {:.1}, \"max_ms\": {:.1}}}",
            ms(median),
            ms(times[0]),
            ms(times[RUNS - 1])
        ));
    }
    let path = common::results_dir().join("ice_lab.json");
    std::fs::write(&path, format!("[{}]\n", out.join(",\n"))).expect("results");
    println!("written to {}", path.display());
}

//! `dht_sim`: a whole DHT network of Pamoja nodes in one process, with virtual time, latency
//! (5-50 ms) and loss; prints one JSON object with get success, get times, datagrams per get
//! and memory per node.
//!
//! ```text
//! cargo run --release --example dht_sim -- --nodes 10000 --loss-permille 50 --keys 1000
//! ```

use anyhow::Result;
use clap::Parser;
use pamoja::dht::sim::Sim;
use serde_json::json;

#[derive(Parser)]
#[command(name = "dht_sim", about = "Simulate a network of Pamoja DHT nodes")]
struct Args {
    /// Number of nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Datagrams lost, per thousand.
    #[arg(long, default_value_t = 0)]
    loss_permille: u64,
    /// Keys put and read back.
    #[arg(long, default_value_t = 500)]
    keys: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Resident memory of this process in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

fn main() -> Result<()> {
    let args = Args::parse();
    let before = rss();
    let started = std::time::Instant::now();
    let mut sim = Sim::bootstrapped(args.nodes, args.loss_permille, args.seed);
    let after = rss();
    let report = sim.put_get(args.keys);
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{}",
        json!({
            "nodes": args.nodes,
            "loss_permille": args.loss_permille,
            "keys": args.keys,
            "stored": report.stored,
            "found": report.found,
            "get_success": report.found as f64 / args.keys as f64,
            "get_ms_median": ms(report.get_time_quantile(0.5)),
            "get_ms_p99": ms(report.get_time_quantile(0.99)),
            "datagrams_per_get": report.datagrams_per_get,
            "bytes_per_node": (after.saturating_sub(before)) / args.nodes as u64,
            "wall_seconds": started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

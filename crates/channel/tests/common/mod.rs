//! Helpers shared by this crate's integration tests.

use std::sync::Arc;
use std::time::Duration;

use pamoja_dht::{Config, Runner};

/// `n` DHT nodes on loopback, all bootstrapped from the first, given half a second to meet.
pub async fn loopback_dht(n: usize) -> Vec<Arc<Runner>> {
    let mut nodes: Vec<Arc<Runner>> = Vec::new();
    for i in 0..n {
        let r = Runner::bind("127.0.0.1:0".parse().unwrap(), Config::default())
            .await
            .unwrap();
        if i > 0 {
            r.bootstrap(nodes[0].local_addr());
        }
        nodes.push(Arc::new(r));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    nodes
}

//! Embedding the communicator: two accounts on a private loopback DHT become contacts and
//! exchange a message.
//!
//! ```text
//! cargo run --release --example embed
//! ```
//! Nothing leaves 127.0.0.1: the example runs its own DHT node as the bootstrap.

use std::time::Duration;

use pamoja::client::{Client, Config, Event, Events};
use pamoja::dht::{Config as DhtConfig, Runner};
use pamoja::identity::Account;

/// Waits (at most a minute) for the first event `pick` accepts, printing each.
async fn until<T>(
    who: &str,
    events: &mut Events,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> anyhow::Result<T> {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("{who} stopped"))?;
        println!("{who}: {e:?}");
        if let Some(t) = pick(&e) {
            return Ok(t);
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let boot = Runner::bind("127.0.0.1:0".parse()?, DhtConfig::default()).await?;
    let dirs = (tempfile::tempdir()?, tempfile::tempdir()?);
    let config = |dir: &std::path::Path| Config {
        data_dir: dir.to_owned(),
        bootstrap: vec![boot.local_addr()],
        ice_addr: "127.0.0.1".parse().expect("an address"),
    };
    eprintln!("creating two accounts (RSA-4096 keys)...");
    let (alice, mut alice_events) =
        Client::start(Account::create(|_| {})?, config(dirs.0.path())).await?;
    let (bob, mut bob_events) =
        Client::start(Account::create(|_| {})?, config(dirs.1.path())).await?;

    // Alice asks; Bob accepts the request when it comes.
    let conversation = alice.add_contact(&bob.jami_id()).await?;
    let from = until("bob", &mut bob_events, |e| match e {
        Event::TrustRequest { from, .. } => Some(*from),
        _ => None,
    })
    .await?;
    bob.accept_contact(&from).await?;
    until("bob", &mut bob_events, |e| match e {
        Event::ConversationReady { conversation: c } if *c == conversation => Some(()),
        _ => None,
    })
    .await?;

    // Bob writes; Alice reads.
    bob.send_message(&conversation, "hello Alice").await?;
    let text = until("alice", &mut alice_events, |e| match e {
        Event::Message { body, .. } => body.get("body").map(str::to_owned),
        _ => None,
    })
    .await?;
    println!("alice read: {text}");

    alice.shutdown().await;
    bob.shutdown().await;
    Ok(())
}

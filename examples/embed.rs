//! Embedding the communicator: two accounts on a private loopback DHT become contacts and
//! exchange a message, printing every event they see.
//!
//! ```text
//! cargo run --release --example embed
//! ```
//! Nothing leaves 127.0.0.1: the example runs its own DHT node as the bootstrap.

use std::time::Duration;

use pamoja::client::{Client, Config, Event, Events};
use pamoja::dht::{Config as DhtConfig, Runner};
use pamoja::identity::Account;

async fn until<T>(
    who: &str,
    ev: &mut Events,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> anyhow::Result<T> {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(60), ev.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("{who} stopped"))?;
        println!("{who}: {}", e.to_json());
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
    let (alice, mut alice_ev) =
        Client::start(Account::create(|_| {})?, config(dirs.0.path())).await?;
    let (bob, mut bob_ev) = Client::start(Account::create(|_| {})?, config(dirs.1.path())).await?;

    let conv = alice.add_contact(bob.jami_id()).await?;
    until("bob", &mut bob_ev, |e| {
        matches!(e, Event::TrustRequest { .. }).then_some(())
    })
    .await?;
    bob.accept_contact(alice.jami_id()).await?;
    until("bob", &mut bob_ev, |e| {
        matches!(e, Event::ConversationReady { conversation } if *conversation == conv)
            .then_some(())
    })
    .await?;
    until("alice", &mut alice_ev, |e| {
        matches!(e, Event::Message { kind, .. } if kind == "member").then_some(())
    })
    .await?;
    bob.send_message(&conv, "hello Alice").await?;
    until("alice", &mut alice_ev, |e| match e {
        Event::Message { body, .. } if body["body"] == "hello Alice" => Some(()),
        _ => None,
    })
    .await?;
    Ok(())
}

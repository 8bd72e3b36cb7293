//! The fuzz targets, one module each: `run(data)` takes one input and panics only on a
//! finding. cargo-fuzz runs them (`fuzz/fuzz_targets/`), and `tests/fuzz_corpora.rs` replays
//! their checked-in corpora (`fuzz/corpus/<target>/`) as ordinary tests.

pub mod archive;
pub mod certificate;
pub mod channel;
pub mod client_instant;
pub mod client_state;
pub mod connection_request;
pub mod crl;
pub mod dht_json;
pub mod dht_message;
pub mod dht_node;
pub mod dht_secure;
pub mod http_servers;
pub mod ice_agent;
pub mod media_control;
pub mod media_decode;
pub mod media_dialog;
pub mod media_rtp;
pub mod media_sdp;
pub mod media_srtp;
pub mod media_y4m;
pub mod name_registration;
pub mod password;
pub mod signed_value;
pub mod stun;
pub mod swarm;
pub mod swarm_history;
pub mod swarm_serve;

/// A target: one input in, a panic on a finding.
pub type Target = fn(&[u8]);

/// Every target by name.
pub const ALL: &[(&str, Target)] = &[
    ("archive", archive::run),
    ("certificate", certificate::run),
    ("channel", channel::run),
    ("client_instant", client_instant::run),
    ("client_state", client_state::run),
    ("connection_request", connection_request::run),
    ("crl", crl::run),
    ("dht_json", dht_json::run),
    ("dht_message", dht_message::run),
    ("dht_node", dht_node::run),
    ("dht_secure", dht_secure::run),
    ("http_servers", http_servers::run),
    ("ice_agent", ice_agent::run),
    ("media_control", media_control::run),
    ("media_decode", media_decode::run),
    ("media_dialog", media_dialog::run),
    ("media_rtp", media_rtp::run),
    ("media_sdp", media_sdp::run),
    ("media_srtp", media_srtp::run),
    ("media_y4m", media_y4m::run),
    ("name_registration", name_registration::run),
    ("password", password::run),
    ("signed_value", signed_value::run),
    ("stun", stun::run),
    ("swarm", swarm::run),
    ("swarm_history", swarm_history::run),
    ("swarm_serve", swarm_serve::run),
];

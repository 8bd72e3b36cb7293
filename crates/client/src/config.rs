//! Where and how an account runs, and what its user may switch.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde_json::{Value as Json, json};

/// What the user may switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The name in our profile (sent with trust requests).
    pub display_name: String,
    /// Send read receipts, and report those received.
    pub read_receipts: bool,
    /// Send typing indicators, and report those received.
    pub typing: bool,
    /// Answer incoming calls at once (with the options of
    /// [`Client::set_call_options`](crate::Client::set_call_options)).
    pub auto_answer: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            display_name: String::new(),
            read_receipts: true,
            typing: true,
            auto_answer: false,
        }
    }
}

impl Settings {
    /// The JSON kept in `settings.json`.
    pub fn to_json(&self) -> Json {
        json!({"display_name": self.display_name, "read_receipts": self.read_receipts,
            "typing": self.typing, "auto_answer": self.auto_answer})
    }

    /// Reads `settings.json` (missing fields take their defaults).
    pub fn from_json(j: &Json) -> Self {
        let d = Self::default();
        Self {
            display_name: j["display_name"].as_str().unwrap_or_default().to_owned(),
            read_receipts: j["read_receipts"].as_bool().unwrap_or(d.read_receipts),
            typing: j["typing"].as_bool().unwrap_or(d.typing),
            auto_answer: j["auto_answer"].as_bool().unwrap_or(d.auto_answer),
        }
    }
}

/// Where and how an account runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data directory (created when missing).
    pub data_dir: PathBuf,
    /// DHT nodes to join.
    pub bootstrap: Vec<SocketAddr>,
    /// The address for ICE host candidates (the one peers reach us at).
    pub ice_addr: IpAddr,
}

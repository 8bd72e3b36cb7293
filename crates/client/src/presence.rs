//! Presence: whether a contact is reachable, as Jami shows it.
//!
//! A contact is *reachable* while one of its devices' announcements, seen on the DHT at its
//! Jami ID, is younger than ten minutes (announcements expire unless re-published), and
//! *connected* while a link to one of its devices is up. This module is pure: it is told
//! what was seen and when, and answers with the changes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How long an announcement keeps a device reachable.
pub const ANNOUNCE_TTL: Duration = Duration::from_secs(600);

/// A contact's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Nothing seen for ten minutes.
    Offline,
    /// A device announced itself on the DHT.
    Reachable,
    /// A link to one of its devices is up.
    Connected,
}

impl Status {
    /// The lower-case name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Reachable => "reachable",
            Self::Connected => "connected",
        }
    }
}

#[derive(Debug, Default)]
struct Peer {
    announced: BTreeMap<String, Instant>,
    linked: BTreeSet<String>,
    shown: Option<Status>,
}

impl Peer {
    fn status(&self, now: Instant) -> Status {
        if !self.linked.is_empty() {
            Status::Connected
        } else if self
            .announced
            .values()
            .any(|t| now.saturating_duration_since(*t) < ANNOUNCE_TTL)
        {
            Status::Reachable
        } else {
            Status::Offline
        }
    }
}

/// Presence of every tracked contact.
#[derive(Debug, Default)]
pub struct Presence {
    peers: BTreeMap<String, Peer>,
}

impl Presence {
    /// The contact's status now (`Offline` for contacts never seen).
    pub fn status(&self, contact: &str, now: Instant) -> Status {
        self.peers
            .get(contact)
            .map_or(Status::Offline, |p| p.status(now))
    }

    fn changed(&mut self, contact: &str, now: Instant) -> Option<Status> {
        let p = self.peers.entry(contact.to_owned()).or_default();
        let s = p.status(now);
        (p.shown != Some(s)).then(|| {
            p.shown = Some(s);
            s
        })
    }

    /// An announcement of `device` was seen at `now`; the new status when it changed.
    pub fn announced(&mut self, contact: &str, device: &str, now: Instant) -> Option<Status> {
        self.peers
            .entry(contact.to_owned())
            .or_default()
            .announced
            .insert(device.to_owned(), now);
        self.changed(contact, now)
    }

    /// A link to `device` went up or down.
    pub fn linked(
        &mut self,
        contact: &str,
        device: &str,
        up: bool,
        now: Instant,
    ) -> Option<Status> {
        let p = self.peers.entry(contact.to_owned()).or_default();
        if up {
            p.linked.insert(device.to_owned());
            // A live link is fresher than any announcement.
            p.announced.insert(device.to_owned(), now);
        } else {
            p.linked.remove(device);
        }
        self.changed(contact, now)
    }

    /// Expires old announcements; the contacts whose status changed.
    pub fn tick(&mut self, now: Instant) -> Vec<(String, Status)> {
        let ids: Vec<String> = self.peers.keys().cloned().collect();
        ids.into_iter()
            .filter_map(|id| self.changed(&id, now).map(|s| (id, s)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_links_and_expiry() {
        let t0 = Instant::now();
        let mut p = Presence::default();
        assert_eq!(p.status("a", t0), Status::Offline);
        assert_eq!(p.announced("a", "d1", t0), Some(Status::Reachable));
        assert_eq!(p.announced("a", "d1", t0 + Duration::from_secs(1)), None);
        assert_eq!(
            p.linked("a", "d1", true, t0 + Duration::from_secs(2)),
            Some(Status::Connected)
        );
        assert_eq!(
            p.linked("a", "d1", false, t0 + Duration::from_secs(3)),
            Some(Status::Reachable)
        );
        assert!(p.tick(t0 + Duration::from_secs(300)).is_empty());
        assert_eq!(
            p.tick(t0 + Duration::from_secs(2) + ANNOUNCE_TTL),
            vec![("a".to_string(), Status::Offline)]
        );
        assert!(
            p.tick(t0 + Duration::from_secs(2000)).is_empty(),
            "reported once"
        );
    }
}

//! A NAT lab: a small "internet" in network namespaces with hosts behind NAT routers.
//!
//! ```text
//!                      wan namespace: bridge `wan0`, 100.64.0.254 (servers run here)
//!        ┌──────────────────────────┼───────────────────────────┐
//!   public peer                router (nft masquerade)       router ...
//!   100.64.0.N                 wan 100.64.0.N, lan 10.N.0.1
//!                                   │
//!                              peer 10.N.0.2 (default route via the router)
//! ```
//!
//! Routers translate with nftables: [`Nat::EndpointIndependent`] is plain `masquerade`
//! (Linux keeps the source port, so one internal address maps to one external address
//! whatever the destination, and hole punching works); [`Nat::Symmetric`] is
//! `masquerade random,fully-random` (a new external port per destination: hole punching
//! fails and only a relay gets through). A router can also drop all forwarded UDP. Every
//! address is inside namespaces this lab created; all are deleted on drop.

use std::net::{IpAddr, Ipv4Addr};

use crate::{LabError, Netns, Result};

/// How a peer reaches the wan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// On the wan itself, with a public address.
    None,
    /// Behind an endpoint-independent mapping NAT.
    EndpointIndependent,
    /// Behind a symmetric (address- and port-dependent mapping) NAT.
    Symmetric,
}

/// One peer host of the lab.
pub struct Peer {
    /// The namespace to run the peer in.
    pub ns: Netns,
    /// Its own address.
    pub addr: IpAddr,
    /// Its router, when behind NAT.
    pub router: Option<Netns>,
    /// Its address on the wan (the router's when behind NAT).
    pub public: IpAddr,
}

/// The lab: a wan namespace and the peers added to it.
pub struct NatLab {
    wan: Netns,
    next: u8,
}

/// The wan namespace's own address (where STUN/TURN servers listen).
pub const WAN_SERVER: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 254);

fn nft(ns: &Netns, rules: &str) -> Result<()> {
    use std::io::Write;
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| LabError::Setup {
            cmd: "nft".into(),
            detail: format!("{e} (is nftables installed?)"),
        })?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(rules.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(LabError::Setup {
            cmd: "nft -f -".into(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

impl NatLab {
    /// Creates the wan namespace with its bridge and [`WAN_SERVER`] address.
    pub fn new() -> Result<Self> {
        let wan = Netns::bare()?;
        wan.ip(&["link", "add", "wan0", "type", "bridge"])?;
        wan.ip(&["addr", "add", &format!("{WAN_SERVER}/24"), "dev", "wan0"])?;
        wan.ip(&["link", "set", "wan0", "up"])?;
        Ok(Self { wan, next: 1 })
    }

    /// The wan namespace (run servers there, on [`WAN_SERVER`]).
    pub fn wan(&self) -> &Netns {
        &self.wan
    }

    /// Connects `ns` to the wan bridge with address `100.64.0.n` on its link `wan`.
    fn attach(&self, ns: &Netns, n: u8) -> Result<IpAddr> {
        let outside = format!("w{n}");
        self.wan.ip(&[
            "link",
            "add",
            &outside,
            "type",
            "veth",
            "peer",
            "name",
            "wan",
            "netns",
            ns.name(),
        ])?;
        self.wan.ip(&["link", "set", &outside, "master", "wan0"])?;
        self.wan.ip(&["link", "set", &outside, "up"])?;
        let addr = Ipv4Addr::new(100, 64, 0, n);
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "wan"])?;
        ns.ip(&["link", "set", "wan", "up"])?;
        Ok(IpAddr::V4(addr))
    }

    /// Adds a peer behind `nat`; `block_udp` makes its router (or, for a public peer, its
    /// own namespace) drop every UDP packet going out or coming in.
    pub fn add_peer(&mut self, nat: Nat, block_udp: bool) -> Result<Peer> {
        let n = self.next;
        self.next += 1;
        let ns = Netns::bare()?;
        let drop_udp = "table inet pamoja_filter {\n\
             chain pamoja_fwd { type filter hook forward priority 0; meta l4proto udp drop; }\n\
             chain pamoja_out { type filter hook output priority 0; meta l4proto udp oifname \"wan\" drop; }\n\
             chain pamoja_in { type filter hook input priority 0; meta l4proto udp iifname \"wan\" drop; }\n\
             }\n";
        if nat == Nat::None {
            let addr = self.attach(&ns, n)?;
            if block_udp {
                nft(&ns, drop_udp)?;
            }
            return Ok(Peer {
                ns,
                addr,
                router: None,
                public: addr,
            });
        }
        let router = Netns::bare()?;
        let public = self.attach(&router, n)?;
        router.ip(&[
            "link",
            "add",
            "lan",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ])?;
        let gw = format!("10.{n}.0.1");
        let addr = Ipv4Addr::new(10, n, 0, 2);
        router.ip(&["addr", "add", &format!("{gw}/24"), "dev", "lan"])?;
        router.ip(&["link", "set", "lan", "up"])?;
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        ns.ip(&["route", "add", "default", "via", &gw])?;
        router.sysctl(&["net.ipv4.ip_forward=1"])?;
        let how = match nat {
            Nat::Symmetric => "masquerade random,fully-random",
            _ => "masquerade",
        };
        // Unsolicited packets from the wan are dropped before conntrack confirms them, as
        // a home router's firewall does: otherwise an early inbound packet would leave an
        // entry that makes the later outbound packet of a hole punch take another port.
        nft(
            &router,
            &format!(
                "table ip pamoja_nat {{\n\
                 chain post {{ type nat hook postrouting priority 100; oifname \"wan\" {how}; }}\n\
                 chain guard {{ type filter hook input priority 0; iifname \"wan\" ct state new drop; }}\n\
                 }}\n"
            ),
        )?;
        if block_udp {
            nft(&router, drop_udp)?;
        }
        Ok(Peer {
            ns,
            addr: IpAddr::V4(addr),
            router: Some(router),
            public,
        })
    }
}

impl Peer {
    /// Narrows this peer's link to the wan, in the direction out of it: at most `kbit`
    /// kb/s (a token bucket with a 200 ms queue, as a slow access link) and `loss_percent`
    /// of its UDP packets dropped at random. Apply it to both peers of a call to narrow
    /// both directions. (Debian's `tc netem` would do both, but the kernels here are built
    /// without it; `tbf` and an nftables `numgen` rule are.)
    pub fn limit_link(&self, kbit: u32, loss_percent: u32) -> Result<()> {
        let rate = format!("{kbit}kbit");
        let out = self
            .ns
            .command("tc")
            .args(["qdisc", "add", "dev", "wan", "root", "tbf", "rate", &rate])
            .args(["burst", "16kbit", "latency", "200ms"])
            .output()?;
        if !out.status.success() {
            return Err(LabError::Setup {
                cmd: "tc qdisc add ... tbf".into(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        nft(
            &self.ns,
            &format!(
                "table inet pamoja_loss {{\n\
                 chain out {{ type filter hook output priority 0; \
                 meta l4proto udp oifname \"wan\" numgen random mod 100 < {loss_percent} drop; }}\n\
                 }}\n"
            ),
        )
    }
}

/// Why the NAT lab cannot run here, if it cannot (root, `ip`, `nft`).
pub fn nat_lab_missing() -> Option<String> {
    if !crate::is_root() {
        return Some("network namespaces need root".into());
    }
    for bin in ["/usr/sbin/nft", "/usr/sbin/ip"] {
        if !std::path::Path::new(bin).exists() {
            return Some(format!("{bin} is not installed"));
        }
    }
    None
}

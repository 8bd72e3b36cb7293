//! LAN peer discovery, as OpenDHT's `PeerDiscovery` does it: nodes on one link find each other
//! through a multicast group, with no bootstrap address.
//!
//! * A node joining sends the query `"q"` (msgpack string) to `239.192.0.1:8888`.
//! * Nodes answer a query, and announce themselves when they start, with a msgpack map of
//!   services; the DHT's is `{"dht": [node id (bin 20), port, network id]}`. (OpenDHT sends
//!   its answer to the querier; this sends it to the group, which every querier hears too.)
//! * A receiver ignores its own id and other network ids, and contacts the node at the
//!   sender's address and the announced port.
//!
//! [`Packet`] is the codec; [`bind_socket`] and [`Discovery`] the I/O on top of a [`Runner`].
//! Multicast reaches every host of the link: use it on a network you run (a private network
//! namespace in tests).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use pamoja_identity::msgpack::{self, DecodeError, Kind, Reader};
use tokio::net::UdpSocket;

use crate::infohash::InfoHash;
use crate::runner::Runner;

/// OpenDHT's IPv4 discovery group.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 192, 0, 1);
/// OpenDHT's discovery port (also the source port).
pub const PORT: u16 = 8888;
/// The DHT's service name.
pub const DHT_SERVICE: &str = "dht";

/// A DHT node's announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhtPeer {
    /// Node id.
    pub id: InfoHash,
    /// The node's UDP port (on the sender's address).
    pub port: u16,
    /// Network id.
    pub network: u32,
}

/// A discovery datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `"q"`: who is there?
    Query,
    /// Services announced; `dht` is the DHT node's, when present. Other services are skipped.
    Announce(Option<DhtPeer>),
}

fn e(s: &str) -> DecodeError {
    DecodeError(s.to_owned())
}

impl Packet {
    /// The bytes OpenDHT sends.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::Query => msgpack::str(&mut out, "q"),
            Self::Announce(None) => msgpack::map(&mut out, 0),
            Self::Announce(Some(p)) => {
                msgpack::map(&mut out, 1);
                msgpack::str(&mut out, DHT_SERVICE);
                msgpack::array(&mut out, 3);
                msgpack::bin(&mut out, &p.id.0);
                msgpack::uint(&mut out, u64::from(p.port));
                msgpack::uint(&mut out, u64::from(p.network));
            }
        }
        out
    }

    /// Reads a datagram.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(data);
        match r.peek()? {
            Kind::Str => {
                if r.str()? == "q" {
                    Ok(Self::Query)
                } else {
                    Err(e("unknown query"))
                }
            }
            Kind::Map => {
                let mut dht = None;
                for _ in 0..r.map_len()? {
                    let service = r.str()?;
                    if service != DHT_SERVICE {
                        r.skip()?;
                        continue;
                    }
                    let n = r.array_len()?;
                    if n < 3 {
                        return Err(e("short dht announcement"));
                    }
                    let id = InfoHash::from_slice(r.bin()?).ok_or_else(|| e("id size"))?;
                    let port = u16::try_from(r.uint()?).map_err(|_| e("port"))?;
                    let network = u32::try_from(r.uint()?).map_err(|_| e("network"))?;
                    // Fields a later version may add.
                    for _ in 3..n {
                        r.skip()?;
                    }
                    dht = Some(DhtPeer { id, port, network });
                }
                Ok(Self::Announce(dht))
            }
            _ => Err(e("not a discovery packet")),
        }
    }
}

/// What a node does with a datagram from `from`: the node to contact, if any.
pub fn peer_to_contact(
    packet: &Packet,
    from: SocketAddr,
    own: InfoHash,
    network: u32,
) -> Option<SocketAddr> {
    match packet {
        Packet::Announce(Some(p)) if p.id != own && p.network == network && p.port != 0 => {
            Some(SocketAddr::new(from.ip(), p.port))
        }
        _ => None,
    }
}

/// A UDP socket on `0.0.0.0:8888` with `SO_REUSEADDR` (other nodes on the host share the
/// port), member of [`GROUP_V4`] on the interface of `interface` (`0.0.0.0`: the one the
/// routing table picks). Create it inside the network namespace it is meant for.
pub fn bind_socket(interface: Ipv4Addr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)).into())?;
    s.join_multicast_v4(&GROUP_V4, &interface)?;
    s.set_multicast_loop_v4(true)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// What a [`Discovery`] does, as OpenDHT's `peer_discovery` and `peer_publish` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Announce this node and answer queries, and contact the nodes heard of.
    Both,
    /// Only announce this node and answer queries.
    PublishOnly,
    /// Only ask, and contact the nodes heard of.
    DiscoverOnly,
}

/// Discovery running beside a [`Runner`]: announces it, answers queries, and bootstraps the
/// runner from every node of the same network it hears of (as `mode` says). Dropping it
/// stops it.
pub struct Discovery {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Discovery {
    /// Starts on `socket` (from [`bind_socket`]) for `runner`, in network `network`.
    pub fn start(
        socket: std::net::UdpSocket,
        runner: Arc<Runner>,
        network: u32,
        mode: Mode,
    ) -> std::io::Result<Self> {
        let (discover, publish) = match mode {
            Mode::Both => (true, true),
            Mode::PublishOnly => (false, true),
            Mode::DiscoverOnly => (true, false),
        };
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let own = DhtPeer {
            id: runner.id(),
            port: runner.local_addr().port(),
            network,
        };
        let task = tokio::spawn(async move {
            let group = SocketAddr::from((GROUP_V4, PORT));
            let announce = Packet::Announce(Some(own)).encode();
            if discover {
                let _ = socket.send_to(&Packet::Query.encode(), group).await;
            }
            if publish {
                let _ = socket.send_to(&announce, group).await;
            }
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let Ok(packet) = Packet::decode(&buf[..n]) else {
                    continue;
                };
                match packet {
                    Packet::Query if publish => {
                        // OpenDHT answers the querier's address; on one host that address is
                        // shared by every node's socket (port 8888 is reused) and only one of
                        // them would get it, so the answer goes to the group instead.
                        let _ = socket.send_to(&announce, group).await;
                    }
                    Packet::Query => {}
                    Packet::Announce(_) if discover => {
                        if let Some(peer) = peer_to_contact(&packet, from, own.id, network) {
                            tracing::debug!("discovered {peer}");
                            runner.bootstrap(peer);
                        }
                    }
                    Packet::Announce(_) => {}
                }
            }
        });
        Ok(Self { task })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opendht_bytes() {
        assert_eq!(Packet::Query.encode(), [0xa1, b'q']);
        let id = InfoHash([7; 20]);
        let a = Packet::Announce(Some(DhtPeer {
            id,
            port: 0xbb81,
            network: 7,
        }));
        let mut want = vec![0x81, 0xa3, b'd', b'h', b't', 0x93, 0xc4, 0x14];
        want.extend_from_slice(&[7; 20]);
        want.extend_from_slice(&[0xcd, 0xbb, 0x81, 0x07]);
        assert_eq!(a.encode(), want);
        assert_eq!(Packet::decode(&want).unwrap(), a);
        assert_eq!(Packet::decode(&[0xa1, b'q']).unwrap(), Packet::Query);
    }

    #[test]
    fn receivers_ignore_themselves_other_networks_and_junk() {
        let own = InfoHash([1; 20]);
        let from: SocketAddr = "10.200.0.1:8888".parse().unwrap();
        let peer = |id, network| {
            Packet::Announce(Some(DhtPeer {
                id,
                port: 4222,
                network,
            }))
        };
        assert_eq!(
            peer_to_contact(&peer(InfoHash([2; 20]), 0), from, own, 0),
            Some("10.200.0.1:4222".parse().unwrap())
        );
        assert_eq!(peer_to_contact(&peer(own, 0), from, own, 0), None);
        assert_eq!(
            peer_to_contact(&peer(InfoHash([2; 20]), 5), from, own, 0),
            None
        );
        // Other services are skipped; broken packets are errors, never panics.
        let mut other = Vec::new();
        msgpack::map(&mut other, 1);
        msgpack::str(&mut other, "other");
        msgpack::array(&mut other, 2);
        msgpack::uint(&mut other, 1);
        msgpack::uint(&mut other, 2);
        assert_eq!(Packet::decode(&other).unwrap(), Packet::Announce(None));
        // Extra fields in the dht array are skipped, and the services after it still read.
        let mut longer = Vec::new();
        msgpack::map(&mut longer, 2);
        msgpack::str(&mut longer, DHT_SERVICE);
        msgpack::array(&mut longer, 4);
        msgpack::bin(&mut longer, &[2; 20]);
        msgpack::uint(&mut longer, 4222);
        msgpack::uint(&mut longer, 0);
        msgpack::str(&mut longer, "future");
        msgpack::str(&mut longer, "other");
        msgpack::uint(&mut longer, 1);
        assert_eq!(
            Packet::decode(&longer).unwrap(),
            Packet::Announce(Some(DhtPeer {
                id: InfoHash([2; 20]),
                port: 4222,
                network: 0
            }))
        );
        for bad in [
            &[][..],
            &[0x81],
            &[0xa1, b'x'],
            &[0x81, 0xa3, b'd', b'h', b't', 0x91],
        ] {
            assert!(Packet::decode(bad).is_err());
        }
    }
}

//! ICE candidates and the connection manager's ICE message, in the text format jamid's
//! pjnath fork writes and reads:
//!
//! ```text
//! <ufrag>\n<password>\n<candidate>\n<candidate>\n...
//! Hc0a80002 1 TCP 2130706431 192.168.0.2 43421 typ host tcptype passive
//! ```
//!
//! Parsing follows pjnath's scanner, not a stricter grammar: seven or eight fields, only `TCP`
//! (upper case) is TCP, anything after the type other than a directly following `tcptype`
//! is ignored, and a line that does not scan is dropped. Lines we write scan there.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Transport of a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP (media).
    Udp,
    /// TCP (RFC 6544; device links).
    Tcp,
}

/// Candidate type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A local interface address.
    Host,
    /// Server reflexive (seen by a STUN server).
    Srflx,
    /// Peer reflexive (seen by the peer).
    Prflx,
    /// A TURN relay address.
    Relay,
}

/// RFC 6544 TCP candidate type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpType {
    /// Connects out (its port is a placeholder, 9).
    Active,
    /// Accepts connections.
    Passive,
    /// Simultaneous open.
    So,
}

/// One candidate line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Foundation (at most 31 characters).
    pub foundation: String,
    /// Component id (1 for the connection manager's single component).
    pub component: u32,
    /// Transport.
    pub transport: Transport,
    /// Priority.
    pub priority: u32,
    /// Address and port.
    pub addr: SocketAddr,
    /// Type.
    pub kind: Kind,
    /// TCP type (TCP candidates).
    pub tcp_type: Option<TcpType>,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Srflx => "srflx",
            Self::Prflx => "prflx",
            Self::Relay => "relay",
        }
    }

    /// RFC 8445 type preference (host 126, prflx 110, srflx 100, relay 0).
    pub fn preference(self) -> u32 {
        match self {
            Self::Host => 126,
            Self::Prflx => 110,
            Self::Srflx => 100,
            Self::Relay => 0,
        }
    }
}

impl TcpType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Passive => "passive",
            Self::So => "so",
        }
    }
}

/// RFC 8445 candidate priority: `2^24 * type + 2^8 * local + (256 - component)`.
pub fn priority(type_preference: u32, local_preference: u32, component: u32) -> u32 {
    (type_preference << 24) + ((local_preference & 0xFFFF) << 8) + (256 - component.min(256))
}

/// pjnath's foundation: the type letter (`H`, `S`, `P`, `R`) and the base address as lower-case
/// hex (IPv4 as a 32-bit number; IPv6 as a 32-bit hash of its bytes).
pub fn foundation(kind: Kind, base: IpAddr) -> String {
    let letter = match kind {
        Kind::Host => 'H',
        Kind::Srflx => 'S',
        Kind::Prflx => 'P',
        Kind::Relay => 'R',
    };
    let n = match base {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => a.octets().chunks(4).fold(0u32, |h, c| {
            h.rotate_left(5) ^ u32::from_be_bytes([c[0], c[1], c[2], c[3]])
        }),
    };
    format!("{letter}{n:x}")
}

impl Candidate {
    /// A local candidate of component 1 as pjnath would write it: foundation from `base`,
    /// priority from the type preference and `local_preference` (65535 for the first
    /// candidate of a socket, one less for each next one).
    pub fn local(
        kind: Kind,
        transport: Transport,
        tcp_type: Option<TcpType>,
        addr: SocketAddr,
        base: IpAddr,
        local_preference: u32,
    ) -> Self {
        Self {
            foundation: foundation(kind, base),
            component: 1,
            transport,
            priority: priority(kind.preference(), local_preference, 1),
            addr,
            kind,
            tcp_type,
        }
    }

    /// The same candidate for another component (a media stream's RTCP, or a later
    /// stream's components, numbered as jamid does): its priority follows the component.
    pub fn for_component(mut self, component: u32) -> Self {
        let component = component.clamp(1, 256);
        self.priority = (self.priority & !0xFF) + (256 - component);
        self.component = component;
        self
    }

    /// Scans a candidate line as pjnath does; `None` for a line it would drop.
    pub fn parse(line: &str) -> Option<Self> {
        let mut f = line.split_whitespace();
        let foundation = f.next()?;
        let component: u32 = f.next()?.parse().ok()?;
        let transport = f.next()?;
        let priority: u32 = f.next()?.parse().ok()?;
        let address = f.next()?;
        let port: u16 = f.next()?.parse().ok()?;
        if f.next()? != "typ" {
            return None;
        }
        let kind = match f.next()? {
            "host" => Kind::Host,
            "srflx" => Kind::Srflx,
            "prflx" => Kind::Prflx,
            "relay" => Kind::Relay,
            _ => return None,
        };
        if foundation.len() > 31 || transport.len() > 11 || address.len() > 79 {
            return None;
        }
        let transport = if transport == "TCP" {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let tcp_type = match (f.next(), f.next()) {
            (Some("tcptype"), Some("active")) => Some(TcpType::Active),
            (Some("tcptype"), Some("passive")) => Some(TcpType::Passive),
            (Some("tcptype"), Some("so")) => Some(TcpType::So),
            _ => None,
        };
        if transport == Transport::Tcp && tcp_type.is_none() {
            return None;
        }
        // Literal addresses only: IPv6 when it has a colon.
        let ip: IpAddr = address.parse().ok()?;
        Some(Self {
            foundation: foundation.to_owned(),
            component,
            transport,
            priority,
            addr: SocketAddr::new(ip, port),
            kind,
            tcp_type,
        })
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match self.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        };
        write!(
            f,
            "{} {} {} {} {} {} typ {}",
            self.foundation,
            self.component,
            transport,
            self.priority,
            self.addr.ip(),
            self.addr.port(),
            self.kind.as_str()
        )?;
        if let Some(t) = self.tcp_type {
            write!(f, " tcptype {}", t.as_str())?;
        }
        Ok(())
    }
}

/// The connection manager's ICE message: credentials and candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceMessage {
    /// Username fragment.
    pub ufrag: String,
    /// Password.
    pub pwd: String,
    /// Candidates (lines that do not scan are dropped, as pjnath drops them).
    pub candidates: Vec<Candidate>,
}

impl IceMessage {
    /// Reads the text: ufrag, password, then candidates; empty lines ignored. `None` without
    /// credentials.
    pub fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let ufrag = lines.next()?.to_owned();
        let pwd = lines.next()?.to_owned();
        let candidates = lines.filter_map(Candidate::parse).collect();
        Some(Self {
            ufrag,
            pwd,
            candidates,
        })
    }

    /// The text, every line ending with `\n`.
    pub fn to_text(&self) -> String {
        let mut s = format!("{}\n{}\n", self.ufrag, self.pwd);
        for c in &self.candidates {
            s.push_str(&c.to_string());
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = "1a2b3c4d\n0123456789abcdef01234567\n\
        Hc0a80002 1 TCP 2130706431 192.168.0.2 43421 typ host tcptype passive\n\
        Hc0a80002 1 TCP 2130706175 192.168.0.2 9 typ host tcptype active\n\
        Sc0a80002 1 TCP 1694498559 203.0.113.7 9 typ srflx tcptype active\n";

    #[test]
    fn pjnath_text_round_trips() {
        let m = IceMessage::parse(MSG).unwrap();
        assert_eq!((m.ufrag.as_str(), m.pwd.len()), ("1a2b3c4d", 24));
        assert_eq!(m.candidates.len(), 3);
        let c = &m.candidates[0];
        assert_eq!(c.transport, Transport::Tcp);
        assert_eq!(c.tcp_type, Some(TcpType::Passive));
        assert_eq!(c.addr, "192.168.0.2:43421".parse().unwrap());
        assert_eq!(c.priority, 2130706431);
        assert_eq!(m.candidates[2].kind, Kind::Srflx);
        assert_eq!(m.to_text(), MSG);
    }

    #[test]
    fn scanner_rules() {
        // Lower-case tcp is UDP for pjnath; anything after the type is ignored.
        let c = Candidate::parse("H1 1 tcp 1 10.0.0.1 5000 typ host generation 0").unwrap();
        assert_eq!((c.transport, c.tcp_type), (Transport::Udp, None));
        // A tcptype after raddr is lost, and a TCP candidate without one is dropped.
        assert!(
            Candidate::parse("S1 1 TCP 1 1.2.3.4 9 typ srflx raddr 0.0.0.0 rport 0 tcptype active")
                .is_none()
        );
        let v6 = Candidate::parse("H2 1 UDP 5 2001:db8::1 4000 typ host").unwrap();
        assert!(v6.addr.is_ipv6());
        for bad in [
            "",
            "H1 1 UDP 1 10.0.0.1 5000",
            "H1 1 UDP 1 10.0.0.1 5000 type host",
            "H1 1 UDP 1 10.0.0.1 5000 typ lan",
            "H1 x UDP 1 10.0.0.1 5000 typ host",
            "H1 1 UDP 1 example.org 5000 typ host",
            "H1 1 UDP 1 10.0.0.1 70000 typ host",
        ] {
            assert!(Candidate::parse(bad).is_none(), "{bad}");
        }
        // Bad lines are dropped; credentials are required.
        let m = IceMessage::parse("u\np\n\nnonsense\nH1 1 UDP 1 10.0.0.1 5000 typ host\n").unwrap();
        assert_eq!(m.candidates.len(), 1);
        assert!(IceMessage::parse("only-ufrag\n").is_none());
    }

    #[test]
    fn priorities_as_rfc_8445() {
        assert_eq!(priority(126, 65535, 1), 2130706431);
        assert_eq!(priority(100, 65535, 1), 1694498815);
        assert!(
            priority(Kind::Host.preference(), 0, 1) > priority(Kind::Relay.preference(), 65535, 1)
        );
    }
}

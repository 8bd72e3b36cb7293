//! SDP (RFC 8866) offers and answers as jamid writes and reads them.
//!
//! [`Sdp`] is a faithful, loss-free model of any session description (lines kept in
//! order), with accessors for what a Jami call needs: the **session-level** ICE
//! credentials (jamid reads them nowhere else), each media section's codecs, direction,
//! first usable `a=crypto` line, `a=rtcp` port and candidates.
//!
//! [`Sdp::jami`] writes a description in jamid's shape: session-level `ice-ufrag` and
//! `ice-pwd`, one `a=crypto` per section, `a=rtcp` at RTP port + 1, no rtcp-mux, and
//! candidates whose component ids run across sections (audio 1 and 2, video 3 and 4).
//! [`answer_codecs`] applies jamid's negotiation rule: one codec per section, the first of
//! the offer's order we support, at the offer's payload type.

use std::fmt::Write as _;

use crate::sdes::Crypto;

/// Why a description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// A line that is not `<letter>=<value>`.
    #[error("line {0}: not <type>=<value>")]
    Syntax(usize),
    /// An `m=` line that is not `<media> <port> <proto> <fmt> ...`.
    #[error("line {0}: malformed m= line")]
    Media(usize),
    /// No `v=0` first line.
    #[error("not an SDP description (no v=0)")]
    Version,
}

/// An attribute: `a=<name>` or `a=<name>:<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The name.
    pub name: String,
    /// The value, for `name:value` attributes.
    pub value: Option<String>,
}

impl Attribute {
    /// `a=name:value`.
    pub fn new(name: &str, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: Some(value.into()),
        }
    }

    /// `a=name`.
    pub fn flag(name: &str) -> Self {
        Self {
            name: name.into(),
            value: None,
        }
    }

    fn parse(v: &str) -> Self {
        match v.split_once(':') {
            Some((n, val)) => Self::new(n, val),
            None => Self::flag(v),
        }
    }
}

/// Media direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `sendrecv` (also the default when none is written).
    SendRecv,
    /// `sendonly` (on hold, for jamid).
    SendOnly,
    /// `recvonly` (video muted, for jamid).
    RecvOnly,
    /// `inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction seen from the other side (the answer to an offer of `self` when both
    /// would send and receive).
    pub fn reversed(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Whether this side sends.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side receives.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// What both allow: sending when both send, receiving when both receive.
    pub fn intersect(self, other: Self) -> Self {
        Self::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// The direction that sends and receives as told.
    pub fn from_flags(send: bool, receive: bool) -> Self {
        match (send, receive) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }
}

/// A codec of a media section (from its `a=rtpmap` and `a=fmtp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// Payload type.
    pub pt: u8,
    /// Encoding name, compared case-sensitively as jamid does (`opus`, `VP8`, `H264`).
    pub name: String,
    /// Clock rate.
    pub clock: u32,
    /// Channels (audio), when written.
    pub channels: Option<u8>,
    /// The `a=fmtp` parameters, when present.
    pub fmtp: Option<String>,
}

impl Codec {
    /// A codec without format parameters.
    pub fn new(pt: u8, name: &str, clock: u32, channels: Option<u8>) -> Self {
        Self {
            pt,
            name: name.into(),
            clock,
            channels,
            fmtp: None,
        }
    }

    /// Opus as jamid offers it: `104 opus/48000/2`.
    pub fn opus() -> Self {
        Self::new(104, "opus", 48000, Some(2))
    }

    /// DTMF: `101 telephone-event/8000`, `fmtp 0-15`.
    pub fn telephone_event() -> Self {
        Self {
            fmtp: Some("0-15".into()),
            ..Self::new(101, "telephone-event", 8000, None)
        }
    }

    /// VP8 at payload type `pt` (jamid numbers video from 96 in its codec order).
    pub fn vp8(pt: u8) -> Self {
        Self::new(pt, "VP8", 90000, None)
    }

    /// Whether this is the DTMF pseudo-codec.
    pub fn is_telephone_event(&self) -> bool {
        self.name.eq_ignore_ascii_case("telephone-event")
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`, ...
    pub kind: String,
    /// Port (0: disabled).
    pub port: u16,
    /// Transport protocol (`RTP/SAVP` in every Jami call).
    pub proto: String,
    /// Formats (payload types), in preference order.
    pub formats: Vec<String>,
    /// The section's `c=` value, if any.
    pub connection: Option<String>,
    /// Other lines of the section (`b=`, `i=`, ...), kept as written.
    pub other: Vec<(char, String)>,
    /// Attributes, in order.
    pub attributes: Vec<Attribute>,
}

impl Media {
    /// The values of attribute `name`.
    pub fn attrs<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes
            .iter()
            .filter(move |a| a.name == name)
            .filter_map(|a| a.value.as_deref())
    }

    /// Whether flag attribute `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.attributes.iter().any(|a| a.name == name)
    }

    /// The codecs, in the order of the m= line. A payload type without `a=rtpmap` is
    /// skipped, static ones included (jamid's rule).
    pub fn codecs(&self) -> Vec<Codec> {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter_map(|pt| {
                let map = self.attrs("rtpmap").find_map(|v| {
                    let (p, rest) = v.split_once(' ')?;
                    (p.parse::<u8>().ok()? == pt).then_some(rest.trim())
                })?;
                let mut parts = map.split('/');
                let name = parts.next()?.to_owned();
                let clock = parts.next()?.parse().ok()?;
                let channels = parts.next().and_then(|c| c.parse().ok());
                let fmtp = self.attrs("fmtp").find_map(|v| {
                    let (p, rest) = v.split_once(' ')?;
                    (p.parse::<u8>().ok()? == pt).then(|| rest.trim().to_owned())
                });
                Some(Codec {
                    pt,
                    name,
                    clock,
                    channels,
                    fmtp,
                })
            })
            .collect()
    }

    /// The direction attribute (`sendrecv` when none).
    pub fn direction(&self) -> Direction {
        for a in &self.attributes {
            match a.name.as_str() {
                "sendonly" => return Direction::SendOnly,
                "recvonly" => return Direction::RecvOnly,
                "inactive" => return Direction::Inactive,
                "sendrecv" => return Direction::SendRecv,
                _ => {}
            }
        }
        Direction::SendRecv
    }

    /// The first `a=crypto` line whose suite and key we can use (jamid's rule).
    pub fn crypto(&self) -> Option<Crypto> {
        self.attrs("crypto").find_map(|v| Crypto::parse(v).ok())
    }

    /// The `a=rtcp` port, if written.
    pub fn rtcp_port(&self) -> Option<u16> {
        self.attrs("rtcp")
            .next()?
            .split_ascii_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// The `a=candidate` values (without `candidate:`'s attribute name).
    pub fn candidates(&self) -> Vec<&str> {
        self.attrs("candidate").collect()
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// The `o=` value.
    pub origin: String,
    /// The `s=` value.
    pub session_name: String,
    /// The session-level `c=` value.
    pub connection: Option<String>,
    /// The `t=` value.
    pub timing: String,
    /// Other session-level lines (`b=`, `i=`, ...), kept as written.
    pub other: Vec<(char, String)>,
    /// Session-level attributes.
    pub attributes: Vec<Attribute>,
    /// Media sections.
    pub media: Vec<Media>,
}

impl Sdp {
    /// Reads a description (CRLF or LF line ends).
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        let mut sdp = Sdp {
            origin: String::new(),
            session_name: String::new(),
            connection: None,
            timing: "0 0".into(),
            other: Vec::new(),
            attributes: Vec::new(),
            media: Vec::new(),
        };
        let mut saw_version = false;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (kind, value) = line.split_once('=').ok_or(SdpError::Syntax(n + 1))?;
            let mut k = kind.chars();
            let (Some(kind), None) = (k.next(), k.next()) else {
                return Err(SdpError::Syntax(n + 1));
            };
            if !saw_version {
                if kind != 'v' || value.trim() != "0" {
                    return Err(SdpError::Version);
                }
                saw_version = true;
                continue;
            }
            if kind == 'm' {
                let mut f = value.split_ascii_whitespace();
                let kind = f.next().ok_or(SdpError::Media(n + 1))?.to_owned();
                // `<port>[/<count>]`.
                let port = f
                    .next()
                    .and_then(|p| p.split('/').next()?.parse().ok())
                    .ok_or(SdpError::Media(n + 1))?;
                let proto = f.next().ok_or(SdpError::Media(n + 1))?.to_owned();
                let formats: Vec<String> = f.map(str::to_owned).collect();
                if formats.is_empty() {
                    return Err(SdpError::Media(n + 1));
                }
                sdp.media.push(Media {
                    kind,
                    port,
                    proto,
                    formats,
                    connection: None,
                    other: Vec::new(),
                    attributes: Vec::new(),
                });
                continue;
            }
            match (sdp.media.last_mut(), kind) {
                (None, 'o') => sdp.origin = value.into(),
                (None, 's') => sdp.session_name = value.into(),
                (None, 't') => sdp.timing = value.into(),
                (None, 'c') => sdp.connection = Some(value.into()),
                (None, 'a') => sdp.attributes.push(Attribute::parse(value)),
                (None, k) => sdp.other.push((k, value.into())),
                (Some(m), 'c') => m.connection = Some(value.into()),
                (Some(m), 'a') => m.attributes.push(Attribute::parse(value)),
                (Some(m), k) => m.other.push((k, value.into())),
            }
        }
        if !saw_version {
            return Err(SdpError::Version);
        }
        Ok(sdp)
    }

    /// The value of the first session-level attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.value.as_deref())
    }

    /// The session-level `ice-ufrag` and `ice-pwd`, the only ones jamid reads.
    pub fn ice_credentials(&self) -> Option<(&str, &str)> {
        Some((self.attr("ice-ufrag")?, self.attr("ice-pwd")?))
    }

    /// A description in jamid's shape: `o=<user> <id> 0 IN IP4 <addr>`, `s=<name>`,
    /// `c=IN IP4 <addr>`, `t=0 0`, the ICE credentials at session level, then `media`.
    pub fn jami(
        user: &str,
        session_id: u64,
        name: &str,
        addr: std::net::IpAddr,
        ice: Option<(&str, &str)>,
        media: Vec<Media>,
    ) -> Self {
        let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
        let mut attributes = Vec::new();
        if let Some((ufrag, pwd)) = ice {
            attributes.push(Attribute::new("ice-ufrag", ufrag));
            attributes.push(Attribute::new("ice-pwd", pwd));
        }
        Self {
            origin: format!("{user} {session_id} 0 IN {family} {addr}"),
            session_name: name.into(),
            connection: Some(format!("IN {family} {addr}")),
            timing: "0 0".into(),
            other: Vec::new(),
            attributes,
            media,
        }
    }

    /// The description as text, CRLF line ends.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let attr = |s: &mut String, a: &Attribute| {
            let _ = match &a.value {
                Some(v) => write!(s, "a={}:{v}\r\n", a.name),
                None => write!(s, "a={}\r\n", a.name),
            };
        };
        let _ = write!(s, "v=0\r\no={}\r\ns={}\r\n", self.origin, self.session_name);
        for (k, v) in self.other.iter().filter(|(k, _)| *k == 'i' || *k == 'u') {
            let _ = write!(s, "{k}={v}\r\n");
        }
        if let Some(c) = &self.connection {
            let _ = write!(s, "c={c}\r\n");
        }
        for (k, v) in self.other.iter().filter(|(k, _)| *k == 'b') {
            let _ = write!(s, "{k}={v}\r\n");
        }
        let _ = write!(s, "t={}\r\n", self.timing);
        for (k, v) in self
            .other
            .iter()
            .filter(|(k, _)| !matches!(k, 'i' | 'u' | 'b'))
        {
            let _ = write!(s, "{k}={v}\r\n");
        }
        self.attributes.iter().for_each(|a| attr(&mut s, a));
        for m in &self.media {
            let _ = write!(
                s,
                "m={} {} {} {}\r\n",
                m.kind,
                m.port,
                m.proto,
                m.formats.join(" ")
            );
            for (k, v) in m.other.iter().filter(|(k, _)| *k == 'i') {
                let _ = write!(s, "{k}={v}\r\n");
            }
            if let Some(c) = &m.connection {
                let _ = write!(s, "c={c}\r\n");
            }
            for (k, v) in m.other.iter().filter(|(k, _)| *k != 'i') {
                let _ = write!(s, "{k}={v}\r\n");
            }
            m.attributes.iter().for_each(|a| attr(&mut s, a));
        }
        s
    }
}

/// A media section in jamid's shape: `m=<kind> <port> RTP/SAVP <pts>`, `a=rtpmap` (and
/// `a=fmtp`) per codec, `a=rtcp:<port+1> IN IP4 <addr>`, the direction, one `a=crypto`,
/// then `candidates` (full `a=candidate` values, components numbered across sections).
pub fn jami_media(
    kind: &str,
    port: u16,
    addr: std::net::IpAddr,
    codecs: &[Codec],
    direction: Direction,
    crypto: &Crypto,
    candidates: &[String],
) -> Media {
    let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
    let mut attributes = Vec::new();
    for c in codecs {
        let map = match c.channels {
            Some(ch) => format!("{} {}/{}/{ch}", c.pt, c.name, c.clock),
            None => format!("{} {}/{}", c.pt, c.name, c.clock),
        };
        attributes.push(Attribute::new("rtpmap", map));
        if let Some(f) = &c.fmtp {
            attributes.push(Attribute::new("fmtp", format!("{} {f}", c.pt)));
        }
    }
    if port != 0 {
        attributes.push(Attribute::new(
            "rtcp",
            format!("{} IN {family} {addr}", port.wrapping_add(1)),
        ));
    }
    attributes.push(Attribute::flag(direction.as_str()));
    attributes.push(Attribute::new("crypto", crypto.to_value()));
    attributes.extend(
        candidates
            .iter()
            .map(|c| Attribute::new("candidate", c.clone())),
    );
    Media {
        kind: kind.into(),
        port,
        proto: "RTP/SAVP".into(),
        formats: codecs.iter().map(|c| c.pt.to_string()).collect(),
        connection: None,
        other: Vec::new(),
        attributes,
    }
}

/// jamid's answer rule for one section: the first codec of `offered` (in its order) whose
/// name (case-sensitive) and clock rate are among `supported`, at the offer's payload
/// type, plus the offer's `telephone-event` when we support DTMF. `None` when no codec
/// matches (the section is then refused with port 0).
pub fn answer_codecs(offered: &[Codec], supported: &[Codec]) -> Option<Vec<Codec>> {
    let known = |c: &Codec| {
        supported
            .iter()
            .any(|s| s.name == c.name && s.clock == c.clock)
    };
    let first = offered
        .iter()
        .find(|c| !c.is_telephone_event() && known(c))?;
    let mut out = vec![first.clone()];
    if supported.iter().any(Codec::is_telephone_event)
        && let Some(dtmf) = offered.iter().find(|c| c.is_telephone_event())
    {
        out.push(dtmf.clone());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::Suite;

    /// An offer in the shape jamid 20230206 writes (audio + video, default codecs).
    const JAMID_OFFER: &str = "v=0\r
o=- 3910000000 0 IN IP4 10.99.0.2\r
s=Call ID 1234567890\r
c=IN IP4 10.99.0.2\r
t=0 0\r
a=ice-ufrag:5ad3c1e2\r
a=ice-pwd:4b7a3d29187c0e5f6a1b2c3d\r
m=audio 16402 RTP/SAVP 104 101\r
a=rtpmap:104 opus/48000/2\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-15\r
a=rtcp:16403 IN IP4 10.99.0.2\r
a=sendrecv\r
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\r
a=candidate:Hc0a80002 1 UDP 2130706431 10.99.0.2 47020 typ host\r
a=candidate:Hc0a80002 2 UDP 2130706430 10.99.0.2 47021 typ host\r
m=video 20000 RTP/SAVP 96 97\r
a=rtpmap:96 H264/90000\r
a=fmtp:96 profile-level-id=428029\r
a=rtpmap:97 VP8/90000\r
a=rtcp:20001 IN IP4 10.99.0.2\r
a=sendrecv\r
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk\r
a=candidate:Hc0a80002 3 UDP 2130706429 10.99.0.2 47022 typ host\r
a=candidate:Hc0a80002 4 UDP 2130706428 10.99.0.2 47023 typ host\r
";

    #[test]
    fn reads_jamids_offer() {
        let s = Sdp::parse(JAMID_OFFER).unwrap();
        assert_eq!(
            s.ice_credentials(),
            Some(("5ad3c1e2", "4b7a3d29187c0e5f6a1b2c3d"))
        );
        assert_eq!(s.media.len(), 2);
        let (a, v) = (&s.media[0], &s.media[1]);
        assert_eq!(a.codecs(), vec![Codec::opus(), Codec::telephone_event()]);
        assert_eq!(a.rtcp_port(), Some(16403));
        assert_eq!(a.direction(), Direction::SendRecv);
        assert_eq!(a.crypto().unwrap().suite, Suite::AesCm128HmacSha1_80);
        assert_eq!(a.candidates().len(), 2);
        assert!(v.candidates()[1].starts_with("Hc0a80002 4 UDP"));
        let vc = v.codecs();
        assert_eq!(vc[0].fmtp.as_deref(), Some("profile-level-id=428029"));
        assert_eq!(vc[1], Codec::vp8(97));
        // Written back, it reads the same.
        assert_eq!(Sdp::parse(&s.to_text()).unwrap(), s);
        assert_eq!(s.to_text(), JAMID_OFFER);
    }

    #[test]
    fn writes_jamids_shape() {
        let addr = "10.99.0.3".parse().unwrap();
        let crypto = Crypto::random(Suite::AesCm128HmacSha1_80);
        let audio = jami_media(
            "audio",
            4000,
            addr,
            &[Codec::opus(), Codec::telephone_event()],
            Direction::SendRecv,
            &crypto,
            &["H1 1 UDP 2130706431 10.99.0.3 5000 typ host".into()],
        );
        let s = Sdp::jami("-", 7, "Call ID x", addr, Some(("uf", "pw")), vec![audio]);
        let text = s.to_text();
        assert!(text.starts_with(
            "v=0\r\no=- 7 0 IN IP4 10.99.0.3\r\ns=Call ID x\r\nc=IN IP4 10.99.0.3\r\nt=0 0\r\na=ice-ufrag:uf\r\na=ice-pwd:pw\r\nm=audio 4000 RTP/SAVP 104 101\r\n"
        ));
        assert!(text.contains("a=rtcp:4001 IN IP4 10.99.0.3\r\na=sendrecv\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
        let back = Sdp::parse(&text).unwrap();
        assert_eq!(back.media[0].crypto(), Some(crypto));
        assert_eq!(back.media[0].codecs()[1].fmtp.as_deref(), Some("0-15"));
    }

    #[test]
    fn answer_follows_the_offer_order() {
        let offer = Sdp::parse(JAMID_OFFER).unwrap();
        let ours = [Codec::opus(), Codec::telephone_event()];
        assert_eq!(
            answer_codecs(&offer.media[0].codecs(), &ours),
            Some(vec![Codec::opus(), Codec::telephone_event()])
        );
        // Video: H.264 first in the offer but unsupported, so VP8 at the offer's PT 97.
        assert_eq!(
            answer_codecs(&offer.media[1].codecs(), &[Codec::vp8(96)]),
            Some(vec![Codec::vp8(97)])
        );
        // Case matters, as in jamid.
        assert_eq!(
            answer_codecs(&[Codec::new(100, "OPUS", 48000, Some(2))], &ours),
            None
        );
    }

    #[test]
    fn odd_and_hostile_descriptions() {
        assert_eq!(Sdp::parse(""), Err(SdpError::Version));
        assert_eq!(Sdp::parse("o=x\r\n"), Err(SdpError::Version));
        assert_eq!(Sdp::parse("v=0\r\nnonsense\r\n"), Err(SdpError::Syntax(2)));
        assert_eq!(Sdp::parse("v=0\r\nm=audio\r\n"), Err(SdpError::Media(2)));
        assert_eq!(
            Sdp::parse("v=0\r\nm=audio 99999 RTP/SAVP 0\r\n"),
            Err(SdpError::Media(2))
        );
        // A payload type without rtpmap is skipped; bad crypto lines are passed over.
        let s = Sdp::parse(
            "v=0\nm=audio 1/2 RTP/SAVP 0 104\na=rtpmap:104 opus/48000/2\na=crypto:1 F8_128_HMAC_SHA1_80 inline:x\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\na=recvonly\n",
        )
        .unwrap();
        let m = &s.media[0];
        assert_eq!(m.port, 1);
        assert_eq!(m.codecs(), vec![Codec::opus()]);
        assert_eq!(m.crypto().unwrap().tag, 2);
        assert_eq!(m.direction(), Direction::RecvOnly);
        assert_eq!(s.ice_credentials(), None);
    }
}

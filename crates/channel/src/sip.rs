//! SIP as it crosses a `sip` channel: out-of-dialog MESSAGE requests written the way jamid
//! writes them and reads them, their `200 OK`, and a reader that splits the channel's byte
//! stream into messages (`Content-Length` is mandatory on a stream).
//!
//! ```text
//! MESSAGE sips:<peer account>@<addr>:<port>;transport=tls SIP/2.0
//! Via: SIP/2.0/TLS <addr>:<port>;branch=z9hG4bK...
//! From: <sip:<our account>@ring.dht>;tag=...
//! To: <sips:<peer account>@<addr>:<port>;transport=tls>
//! Call-ID, CSeq, Max-Forwards, Date (ctime), Message-ID (16 hex), User-Agent, Content-Type
//! Content-Length: N
//! ```
//!
//! jamid takes the sender from the `From` user part (at least 40 hex digits), drops a
//! `Message-ID` it has seen before, and answers `200 OK` before it looks at the body. Send one
//! whole message per channel write: jamid's reader mishandles two in one read.

use std::fmt::Write as _;

/// Largest SIP message jamid accepts (`PJSIP_MAX_PKT_LEN`).
pub const MAX_MESSAGE: usize = 8000;

/// Our `User-Agent`: jamid reads `Jami Daemon <version>` as a peer with its features.
pub const USER_AGENT: &str = concat!("Pamoja ", env!("CARGO_PKG_VERSION"));

/// Why bytes are not a SIP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    /// Not SIP, or a header line that does not parse.
    #[error("malformed SIP message: {0}")]
    Malformed(&'static str),
    /// Over [`MAX_MESSAGE`].
    #[error("SIP message too large")]
    TooLarge,
}

/// A request or response start line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD uri SIP/2.0`
    Request {
        /// Method (`MESSAGE`, `INVITE`...).
        method: String,
        /// Request-URI.
        uri: String,
    },
    /// `SIP/2.0 code reason`
    Response {
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
}

/// A SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMessage {
    /// Start line.
    pub start: StartLine,
    /// Headers in order, names as written.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// Compact header forms (RFC 3261 §7.3.3) and their long names.
fn long_name(name: &str) -> &str {
    match name {
        "i" | "I" => "Call-ID",
        "f" | "F" => "From",
        "t" | "T" => "To",
        "v" | "V" => "Via",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        "m" | "M" => "Contact",
        other => other,
    }
}

impl SipMessage {
    /// The first header named `name` (case-insensitive, compact forms understood).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| long_name(n).eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads one whole message.
    pub fn parse(data: &[u8]) -> Result<Self, SipError> {
        if data.len() > MAX_MESSAGE {
            return Err(SipError::TooLarge);
        }
        let end = find(data, b"\r\n\r\n").ok_or(SipError::Malformed("no end of headers"))?;
        let head =
            std::str::from_utf8(&data[..end]).map_err(|_| SipError::Malformed("not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let first = lines.next().ok_or(SipError::Malformed("empty"))?;
        let start = if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let code: u16 = code
                .parse()
                .map_err(|_| SipError::Malformed("status code"))?;
            if !(100..700).contains(&code) {
                return Err(SipError::Malformed("status code"));
            }
            StartLine::Response {
                code,
                reason: reason.to_owned(),
            }
        } else {
            let mut p = first.split(' ');
            let (Some(method), Some(uri), Some("SIP/2.0"), None) =
                (p.next(), p.next(), p.next(), p.next())
            else {
                return Err(SipError::Malformed("request line"));
            };
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(SipError::Malformed("method"));
            }
            StartLine::Request {
                method: method.to_owned(),
                uri: uri.to_owned(),
            }
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // Folded continuation of the previous header.
                let last = headers.last_mut().ok_or(SipError::Malformed("folding"))?;
                last.1.push(' ');
                last.1.push_str(line.trim());
                continue;
            }
            let (n, v) = line
                .split_once(':')
                .ok_or(SipError::Malformed("header line"))?;
            let n = n.trim();
            if n.is_empty() || n.contains(' ') {
                return Err(SipError::Malformed("header name"));
            }
            headers.push((n.to_owned(), v.trim().to_owned()));
        }
        let mut m = Self {
            start,
            headers,
            body: Vec::new(),
        };
        let len: usize = m
            .header("Content-Length")
            .ok_or(SipError::Malformed("no Content-Length"))?
            .parse()
            .map_err(|_| SipError::Malformed("Content-Length"))?;
        let body = &data[end + 4..];
        if body.len() != len {
            return Err(SipError::Malformed("body length"));
        }
        m.body = body.to_vec();
        Ok(m)
    }

    /// The bytes, `Content-Length` set from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = match &self.start {
            StartLine::Request { method, uri } => format!("{method} {uri} SIP/2.0\r\n"),
            StartLine::Response { code, reason } => format!("SIP/2.0 {code} {reason}\r\n"),
        };
        for (n, v) in &self.headers {
            if long_name(n).eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            let _ = write!(s, "{n}: {v}\r\n");
        }
        let _ = write!(s, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// The Jami account id of the sender: the `From` URI's user part, after an optional
    /// `ring:`/`jami:`/`sip:`/`sips:` scheme, at least 40 hex digits, the first 40 kept (as
    /// jamid's `parseJamiUri`).
    pub fn from_account(&self) -> Option<String> {
        let from = self.header("From")?;
        let uri = match (from.find('<'), from.find('>')) {
            (Some(a), Some(b)) if a < b => &from[a + 1..b],
            _ => from.split(';').next()?,
        };
        let mut user = uri.trim();
        for scheme in ["sips:", "sip:", "ring:", "jami:"] {
            if let Some(rest) = user.strip_prefix(scheme) {
                user = rest;
            }
        }
        let user = user.split('@').next()?;
        let hex: String = user.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        (hex.len() >= 40).then(|| hex[..40].to_ascii_lowercase())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    crate::random::Random::fill(&mut crate::random::OsRandom, &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A new `Message-ID`: 16 lowercase hex digits.
pub fn new_message_id() -> String {
    random_hex(8)
}

/// `Date` in C `ctime` form (`Mon Feb  6 15:34:23 2023`), UTC, as jamid writes it.
pub fn ctime(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{weekday} {month} {d:>2} {:02}:{:02}:{:02} {y}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// What a MESSAGE says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMessage {
    /// Sender's account id (from `From`).
    pub from: String,
    /// `Message-ID`, if any.
    pub id: Option<String>,
    /// `Content-Type`.
    pub content_type: String,
    /// Body (UTF-8).
    pub body: String,
}

/// Who talks to whom over which link: the accounts, and the ICE pair's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Our account id (40 hex).
    pub from: String,
    /// The peer's account id (40 hex).
    pub to: String,
    /// Our end of the link.
    pub local: std::net::SocketAddr,
    /// The peer's end.
    pub remote: std::net::SocketAddr,
}

/// An out-of-dialog MESSAGE along `route`, with `Message-ID` `message_id` and `Date` from
/// `unix_now`.
pub fn message(
    route: &Route,
    content_type: &str,
    body: &str,
    message_id: &str,
    unix_now: u64,
) -> SipMessage {
    message_with_random(route, content_type, body, message_id, unix_now, &mut |b| {
        random_hex(b)
    })
}

/// [`message`], its Via branch, From tag and Call-ID drawn from `hex` (which gives `n`
/// random bytes as lowercase hex), for a caller that draws its own randomness.
pub fn message_with_random(
    route: &Route,
    content_type: &str,
    body: &str,
    message_id: &str,
    unix_now: u64,
    hex: &mut dyn FnMut(usize) -> String,
) -> SipMessage {
    let Route {
        from,
        to,
        local,
        remote,
    } = route;
    let target = format!("sips:{to}@{remote};transport=tls");
    SipMessage {
        start: StartLine::Request {
            method: "MESSAGE".into(),
            uri: target.clone(),
        },
        headers: vec![
            (
                "Via".into(),
                format!("SIP/2.0/TLS {local};rport;branch=z9hG4bK{}", hex(12)),
            ),
            ("Max-Forwards".into(), "70".into()),
            (
                "From".into(),
                format!("<sip:{from}@ring.dht>;tag={}", hex(8)),
            ),
            ("To".into(), format!("<{target}>")),
            ("Call-ID".into(), hex(16)),
            ("CSeq".into(), "1 MESSAGE".into()),
            ("Date".into(), ctime(unix_now)),
            ("Message-ID".into(), message_id.into()),
            ("User-Agent".into(), USER_AGENT.into()),
            ("Content-Type".into(), content_type.into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

/// The `200 OK` (or another final answer) to `request`: Via, From, To (with a tag), Call-ID
/// and CSeq copied back.
pub fn response(request: &SipMessage, code: u16, reason: &str) -> SipMessage {
    response_with_tag(request, code, reason, &random_hex(8))
}

/// [`response`] with the `To` tag given (for a caller that draws its own randomness): it is
/// added when the request's `To` has none.
pub fn response_with_tag(request: &SipMessage, code: u16, reason: &str, tag: &str) -> SipMessage {
    let mut headers = Vec::new();
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for (n, v) in &request.headers {
            if long_name(n).eq_ignore_ascii_case(name) {
                let v = if name == "To" && !v.contains(";tag=") {
                    format!("{v};tag={tag}")
                } else {
                    v.clone()
                };
                headers.push((name.to_owned(), v));
            }
        }
    }
    headers.push(("User-Agent".into(), USER_AGENT.into()));
    SipMessage {
        start: StartLine::Response {
            code,
            reason: reason.into(),
        },
        headers,
        body: Vec::new(),
    }
}

/// Reads a MESSAGE request as jamid does: sender from `From`, UTF-8 body.
pub fn read_message(m: &SipMessage) -> Option<TextMessage> {
    let StartLine::Request { method, .. } = &m.start else {
        return None;
    };
    if method != "MESSAGE" {
        return None;
    }
    Some(TextMessage {
        from: m.from_account()?,
        id: m
            .header("Message-ID")
            .or_else(|| m.header("imdn.Message-ID"))
            .map(str::to_owned),
        content_type: m.header("Content-Type").unwrap_or("text/plain").to_owned(),
        body: String::from_utf8(m.body.clone()).ok()?,
    })
}

/// A MESSAGE whose `From` names another account than the one its link authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message names {claimed} as its sender on a link of {authenticated}")]
pub struct ForgedSender {
    /// The account the `From` header names.
    pub claimed: String,
    /// The account the link's TLS certificate chain proved.
    pub authenticated: String,
}

/// [`read_message`] on a link whose peer proved it holds account `authenticated`: the
/// sender is that account. A `From` naming another account is an error, not a message:
/// otherwise any linked device could speak in anyone's name. `None`: not a MESSAGE.
pub fn read_message_from(
    m: &SipMessage,
    authenticated: &str,
) -> Option<Result<TextMessage, ForgedSender>> {
    let t = read_message(m)?;
    Some(if t.from == authenticated {
        Ok(t)
    } else {
        Err(ForgedSender {
            claimed: t.from,
            authenticated: authenticated.to_owned(),
        })
    })
}

/// Splits a `sip` channel's bytes into messages.
#[derive(Debug, Default)]
pub struct SipReader {
    buf: Vec<u8>,
}

impl SipReader {
    /// Adds bytes from the channel.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole message: `None` until one is complete; `Some(Err)` for a message that
    /// does not parse or is too large (the caller should close the channel).
    pub fn next_message(&mut self) -> Option<Result<SipMessage, SipError>> {
        // Keep-alive CRLFs between messages are skipped.
        while self.buf.starts_with(b"\r\n") {
            self.buf.drain(..2);
        }
        let Some(end) = find(&self.buf, b"\r\n\r\n") else {
            return (self.buf.len() > MAX_MESSAGE).then_some(Err(SipError::TooLarge));
        };
        let head = String::from_utf8_lossy(&self.buf[..end]);
        let len = head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            long_name(n.trim())
                .eq_ignore_ascii_case("Content-Length")
                .then(|| v.trim().parse::<usize>().ok())?
        });
        let Some(len) = len else {
            return Some(Err(SipError::Malformed("no Content-Length")));
        };
        // `len` is the peer's number: no arithmetic on it that could overflow.
        let total = end.saturating_add(4).saturating_add(len);
        if total > MAX_MESSAGE {
            return Some(Err(SipError::TooLarge));
        }
        if self.buf.len() < total {
            return None;
        }
        let msg: Vec<u8> = self.buf.drain(..total).collect();
        Some(SipMessage::parse(&msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "0123456789abcdef0123456789abcdef01234567";
    const BOB: &str = "89abcdef0123456789abcdef0123456789abcdef";

    fn msg(body: &str) -> SipMessage {
        let route = Route {
            from: ALICE.into(),
            to: BOB.into(),
            local: "10.200.0.1:4000".parse().unwrap(),
            remote: "10.200.0.1:5000".parse().unwrap(),
        };
        message(
            &route,
            "text/plain",
            body,
            "00000000000000ff",
            1_675_697_663,
        )
    }

    #[test]
    fn message_as_jamid_reads_it() {
        let m = msg("héllo");
        let bytes = m.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(&format!(
            "MESSAGE sips:{BOB}@10.200.0.1:5000;transport=tls SIP/2.0\r\n"
        )));
        assert!(
            text.contains("Date: Mon Feb  6 15:34:23 2023\r\n"),
            "{text}"
        );
        assert!(text.contains(&format!("Content-Length: {}\r\n", "héllo".len())));
        let back = SipMessage::parse(&bytes).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.start, m.start);
        let t = read_message(&back).unwrap();
        assert_eq!(t.from, ALICE);
        assert_eq!(t.id.as_deref(), Some("00000000000000ff"));
        assert_eq!(
            (t.content_type.as_str(), t.body.as_str()),
            ("text/plain", "héllo")
        );
        let ok = response(&back, 200, "OK");
        let ok = SipMessage::parse(&ok.to_bytes()).unwrap();
        assert_eq!(
            ok.start,
            StartLine::Response {
                code: 200,
                reason: "OK".into()
            }
        );
        assert_eq!(ok.header("Call-ID"), back.header("Call-ID"));
        assert!(ok.header("To").unwrap().contains(";tag="));
    }

    #[test]
    fn jamid_from_forms() {
        for from in [
            format!("\"Bob\" <sip:{BOB}@ring.dht>;tag=abc"),
            format!("<sips:{BOB}@10.0.0.1:5060;transport=tls>"),
            format!("sip:{}@ring.dht", BOB.to_uppercase()),
            format!("<ring:{BOB}ffff@ring.dht>"),
        ] {
            let m = SipMessage {
                start: StartLine::Request {
                    method: "MESSAGE".into(),
                    uri: "sip:x".into(),
                },
                headers: vec![("f".into(), from.clone())],
                body: vec![],
            };
            assert_eq!(m.from_account().as_deref(), Some(BOB), "{from}");
        }
    }

    #[test]
    fn stream_reader_splits_and_refuses() {
        let mut r = SipReader::default();
        let a = msg("one").to_bytes();
        let b = msg(&"x".repeat(7000)).to_bytes();
        let mut all = a.clone();
        all.extend_from_slice(b"\r\n");
        all.extend_from_slice(&b);
        for chunk in all.chunks(333) {
            r.push(chunk);
        }
        assert_eq!(r.next_message().unwrap().unwrap().body, b"one");
        assert_eq!(r.next_message().unwrap().unwrap().body.len(), 7000);
        assert!(r.next_message().is_none());
        let mut r = SipReader::default();
        r.push(b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 9000\r\n\r\n");
        assert_eq!(r.next_message(), Some(Err(SipError::TooLarge)));
        // A length at the edge of usize is refused, not added up.
        let mut r = SipReader::default();
        r.push(format!("MESSAGE sip:x SIP/2.0\r\nl: {}\r\n\r\n", usize::MAX).as_bytes());
        assert_eq!(r.next_message(), Some(Err(SipError::TooLarge)));
        for bad in [
            &b"garbage"[..],
            b"MESSAGE sip:x SIP/2.0\r\n\r\n",
            b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 3\r\n\r\nab",
            b"SIP/2.0 99 x\r\nContent-Length: 0\r\n\r\n",
            b"MES SAGE sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n",
        ] {
            assert!(
                SipMessage::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn ctime_like_c() {
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(1_675_697_663), "Mon Feb  6 15:34:23 2023");
        assert_eq!(ctime(1_795_392_000), "Mon Nov 23 00:00:00 2026");
    }

    #[test]
    fn a_message_is_from_the_linked_account_only() {
        let alice = "a".repeat(40);
        let mallory = "b".repeat(40);
        let route = Route {
            from: alice.clone(),
            to: "c".repeat(40),
            local: "10.0.0.1:1".parse().unwrap(),
            remote: "10.0.0.2:1".parse().unwrap(),
        };
        let m = message(&route, "text/plain", "hi", "0000000000000001", 1);
        let t = read_message_from(&m, &alice).unwrap().unwrap();
        assert_eq!((t.from.as_str(), t.body.as_str()), (alice.as_str(), "hi"));
        let forged = read_message_from(&m, &mallory).unwrap().unwrap_err();
        assert_eq!((forged.claimed, forged.authenticated), (alice, mallory));
        let ok = response(&m, 200, "OK");
        assert!(read_message_from(&ok, "x").is_none());
    }
}

//! Offer and answer of a Jami call: what each stream ends up with.
//!
//! [`answer`] applies jamid's rules to an offer: one section per offered one, the first
//! offered codec we support (at the offer's payload type, plus DTMF for audio), our own SRTP
//! key, a refused section at port 0. [`Negotiated`] then says, per stream, what to send with
//! (the first codec of the **peer's** answer, since a jamid receiver listens for that one
//! only; answering, the codec we chose, which is all jamid keeps of its offer), the keys of both directions, and the peer's candidates with component ids counted
//! across streams (audio 1-2, video 3-4; per-stream numbering is mapped as jamid maps it).

use std::net::IpAddr;

use crate::sdes::Crypto;
use crate::sdp::{self, Codec, Direction, Media, Sdp};
use crate::srtp::Suite;

/// What we can do for one kind of media.
#[derive(Debug, Clone)]
pub struct Capability {
    /// `audio` or `video`.
    pub kind: String,
    /// Codecs we can send and receive, in our order of preference.
    pub codecs: Vec<Codec>,
    /// Our direction for it.
    pub direction: Direction,
    /// `false`: offered as a refused section (port 0), as a re-offer keeps a section that
    /// was dropped (an offer never has fewer sections than the one before).
    pub enabled: bool,
}

impl Capability {
    /// An enabled capability sending and receiving `codecs`.
    pub fn new(kind: &str, codecs: Vec<Codec>) -> Self {
        Self {
            kind: kind.into(),
            codecs,
            direction: Direction::SendRecv,
            enabled: true,
        }
    }
}

/// Our side of a session: address, ICE credentials and what we support.
#[derive(Debug, Clone)]
pub struct Local {
    /// The address in `o=` and `c=`.
    pub addr: IpAddr,
    /// Session-level ICE credentials.
    pub ice: (String, String),
    /// What we support, by kind.
    pub capabilities: Vec<Capability>,
}

/// One stream after negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// Index of the section.
    pub index: usize,
    /// `audio` or `video`.
    pub kind: String,
    /// Whether both sides kept it (a nonzero port on both, a common codec).
    pub enabled: bool,
    /// The codec to send with: the first of the peer's section.
    pub send: Option<Codec>,
    /// The codecs of our section (what we receive).
    pub receive: Vec<Codec>,
    /// Our key: we protect with it.
    pub local_crypto: Option<Crypto>,
    /// The peer's key: we unprotect with it.
    pub remote_crypto: Option<Crypto>,
    /// Our direction.
    pub direction: Direction,
    /// The peer's candidates as (global component id, candidate text).
    pub remote_candidates: Vec<(u32, String)>,
}

/// A negotiated session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's session-level ICE credentials.
    pub remote_ice: Option<(String, String)>,
    /// The streams, in section order.
    pub streams: Vec<Stream>,
}

/// Why an offer cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// No audio section with a codec we support.
    #[error("no common audio codec")]
    NoAudio,
}

/// The global component id of a candidate of section `index` written with `component`.
fn global_component(index: usize, component: u32) -> u32 {
    if index > 0 && component <= 2 {
        2 * index as u32 + component
    } else {
        component
    }
}

fn remote_candidates(index: usize, m: &Media) -> Vec<(u32, String)> {
    m.candidates()
        .into_iter()
        .filter_map(|c| {
            let comp: u32 = c.split_ascii_whitespace().nth(1)?.parse().ok()?;
            Some((global_component(index, comp), c.to_owned()))
        })
        .collect()
}

/// Our offer: a section per capability, fresh keys, `candidates(index)` for each; a
/// capability that is not enabled is a refused section (port 0, no key, no candidates).
pub fn offer(
    local: &Local,
    port: impl Fn(usize) -> u16,
    candidates: impl Fn(usize) -> Vec<String>,
) -> Sdp {
    let media = local
        .capabilities
        .iter()
        .enumerate()
        .map(|(i, cap)| {
            if !cap.enabled {
                let mut m = sdp::jami_media(
                    &cap.kind,
                    0,
                    local.addr,
                    &cap.codecs,
                    Direction::Inactive,
                    &Crypto::random(Suite::AesCm128HmacSha1_80),
                    &[],
                );
                m.attributes.retain(|a| a.name != "crypto");
                return m;
            }
            sdp::jami_media(
                &cap.kind,
                port(i),
                local.addr,
                &cap.codecs,
                cap.direction,
                &Crypto::random(Suite::AesCm128HmacSha1_80),
                &candidates(i),
            )
        })
        .collect();
    Sdp::jami(
        "-",
        session_id(),
        "Pamoja call",
        local.addr,
        Some((&local.ice.0, &local.ice.1)),
        media,
    )
}

fn session_id() -> u64 {
    let mut b = [0u8; 4];
    pamoja_channel::random::Random::fill(&mut pamoja_channel::random::OsRandom, &mut b);
    u32::from_be_bytes(b) as u64
}

/// Our answer to `offer`, and the session it sets up.
pub fn answer(
    offer: &Sdp,
    local: &Local,
    port: impl Fn(usize) -> u16,
    candidates: impl Fn(usize) -> Vec<String>,
) -> Result<(Sdp, Negotiated), NegotiationError> {
    let mut media = Vec::new();
    let mut streams = Vec::new();
    for (i, m) in offer.media.iter().enumerate() {
        let cap = local.capabilities.iter().find(|c| c.kind == m.kind);
        let chosen = match (cap, m.port) {
            (Some(cap), p) if p != 0 && cap.enabled => sdp::answer_codecs(&m.codecs(), &cap.codecs),
            _ => None,
        };
        let remote_crypto = m.crypto();
        match (chosen, cap, &remote_crypto) {
            (Some(codecs), Some(cap), Some(_)) => {
                let crypto = Crypto::random(Suite::AesCm128HmacSha1_80);
                let direction = m.direction().reversed().intersect(cap.direction);
                media.push(sdp::jami_media(
                    &m.kind,
                    port(i),
                    local.addr,
                    &codecs,
                    direction,
                    &crypto,
                    &candidates(i),
                ));
                streams.push(Stream {
                    index: i,
                    kind: m.kind.clone(),
                    enabled: true,
                    // The codec we chose: jamid, as offerer, keeps only the answer's
                    // codecs in its negotiated session and listens for that one.
                    send: codecs.iter().find(|c| !c.is_telephone_event()).cloned(),
                    receive: codecs,
                    local_crypto: Some(crypto),
                    remote_crypto,
                    direction,
                    remote_candidates: remote_candidates(i, m),
                });
            }
            _ => {
                media.push(Media {
                    port: 0,
                    attributes: vec![],
                    other: vec![],
                    connection: None,
                    ..m.clone()
                });
                streams.push(Stream {
                    index: i,
                    kind: m.kind.clone(),
                    enabled: false,
                    send: None,
                    receive: vec![],
                    local_crypto: None,
                    remote_crypto,
                    direction: Direction::Inactive,
                    remote_candidates: vec![],
                });
            }
        }
    }
    if !streams.iter().any(|s| s.enabled && s.kind == "audio") {
        return Err(NegotiationError::NoAudio);
    }
    let sdp = Sdp::jami(
        "-",
        session_id(),
        "Pamoja call",
        local.addr,
        Some((&local.ice.0, &local.ice.1)),
        media,
    );
    let remote_ice = offer
        .ice_credentials()
        .map(|(u, p)| (u.to_owned(), p.to_owned()));
    Ok((
        sdp,
        Negotiated {
            remote_ice,
            streams,
        },
    ))
}

/// The session our `offer` set up once `answer` came back.
pub fn answered(offer: &Sdp, answer: &Sdp) -> Negotiated {
    let streams = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, ours)| {
            let theirs = answer.media.get(i);
            let enabled = ours.port != 0 && theirs.is_some_and(|t| t.port != 0);
            Stream {
                index: i,
                kind: ours.kind.clone(),
                enabled,
                send: theirs
                    .filter(|_| enabled)
                    .and_then(|t| t.codecs().into_iter().find(|c| !c.is_telephone_event())),
                receive: ours.codecs(),
                local_crypto: ours.crypto(),
                remote_crypto: theirs.and_then(Media::crypto),
                direction: if enabled {
                    theirs.map_or(Direction::Inactive, |t| t.direction().reversed())
                } else {
                    Direction::Inactive
                },
                remote_candidates: theirs.map(|t| remote_candidates(i, t)).unwrap_or_default(),
            }
        })
        .collect();
    Negotiated {
        remote_ice: answer
            .ice_credentials()
            .map(|(u, p)| (u.to_owned(), p.to_owned())),
        streams,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(video: bool) -> Local {
        let mut capabilities = vec![Capability::new(
            "audio",
            vec![Codec::opus(), Codec::telephone_event()],
        )];
        if video {
            capabilities.push(Capability::new("video", vec![Codec::vp8(96)]));
        }
        Local {
            addr: "10.99.0.9".parse().unwrap(),
            ice: ("abcd1234".into(), "0123456789abcdef01234567".into()),
            capabilities,
        }
    }

    fn cands(i: usize) -> Vec<String> {
        // Per-stream numbering, as the RFC would have it: mapped on the other side.
        vec![
            format!("H1 1 UDP 2130706431 10.99.0.9 {} typ host", 5000 + 2 * i),
            format!("H1 2 UDP 2130706430 10.99.0.9 {} typ host", 5001 + 2 * i),
        ]
    }

    #[test]
    fn audio_and_video_both_ways() {
        let a = offer(&local(true), |i| 4000 + 2 * i as u16, cands);
        let (ans, neg_b) = answer(&a, &local(true), |i| 6000 + 2 * i as u16, cands).unwrap();
        let neg_a = answered(&a, &ans);
        for neg in [&neg_a, &neg_b] {
            assert_eq!(neg.streams.len(), 2);
            assert!(neg.streams.iter().all(|s| s.enabled));
            assert_eq!(neg.streams[0].send, Some(Codec::opus()));
            assert_eq!(neg.streams[1].send, Some(Codec::vp8(96)));
            let comps: Vec<u32> = neg.streams[1]
                .remote_candidates
                .iter()
                .map(|c| c.0)
                .collect();
            assert_eq!(comps, vec![3, 4]);
        }
        // Each side unprotects with the key the other protects with.
        assert_eq!(
            neg_a.streams[0].remote_crypto,
            neg_b.streams[0].local_crypto
        );
        assert_eq!(
            neg_b.streams[0].remote_crypto,
            neg_a.streams[0].local_crypto
        );
        assert_eq!(
            neg_a.remote_ice,
            Some(("abcd1234".into(), "0123456789abcdef01234567".into()))
        );
    }

    #[test]
    fn answering_h264_then_vp8_sends_vp8() {
        let mut theirs = local(true);
        theirs.capabilities[1].codecs = vec![
            Codec::new(96, "H264", 90_000, None),
            Codec::new(97, "VP8", 90_000, None),
        ];
        let a = offer(&theirs, |i| 4000 + 2 * i as u16, cands);
        let (ans, neg) = answer(&a, &local(true), |_| 6000, cands).unwrap();
        assert_eq!(
            ans.media[1].codecs(),
            vec![Codec::new(97, "VP8", 90_000, None)]
        );
        assert_eq!(
            neg.streams[1].send,
            Some(Codec::new(97, "VP8", 90_000, None))
        );
        assert_eq!(neg.streams[0].send, Some(Codec::opus()));
    }

    #[test]
    fn video_refused_when_audio_only() {
        let a = offer(&local(true), |_| 4000, cands);
        let (ans, neg_b) = answer(&a, &local(false), |_| 6000, cands).unwrap();
        assert_eq!(ans.media.len(), 2);
        assert_eq!(ans.media[1].port, 0);
        assert!(!neg_b.streams[1].enabled);
        let neg_a = answered(&a, &ans);
        assert!(neg_a.streams[0].enabled && !neg_a.streams[1].enabled);
        assert_eq!(neg_a.streams[1].send, None);
    }

    #[test]
    fn re_offers_keep_dropped_sections_and_hold() {
        // Video dropped: its section stays, refused, and the answer refuses it too.
        let mut ours = local(true);
        ours.capabilities[1].enabled = false;
        ours.capabilities[0].direction = Direction::SendOnly;
        let a = offer(&ours, |i| 4000 + 2 * i as u16, cands);
        assert_eq!(a.media.len(), 2);
        assert_eq!(a.media[1].port, 0);
        assert!(a.media[1].crypto().is_none() && a.media[1].candidates().is_empty());
        assert_eq!(a.media[0].direction(), Direction::SendOnly);
        let (ans, neg_b) = answer(&a, &local(true), |_| 6000, cands).unwrap();
        assert_eq!(ans.media[1].port, 0);
        assert_eq!(neg_b.streams[0].direction, Direction::RecvOnly);
        let neg_a = answered(&a, &ans);
        assert_eq!(neg_a.streams[0].direction, Direction::SendOnly);
        assert!(!neg_a.streams[1].enabled);
        // Held ourselves, answering a peer's sendrecv: we only send.
        let mut held = local(false);
        held.capabilities[0].direction = Direction::SendOnly;
        let b = offer(&local(false), |_| 4000, cands);
        let (ans, neg) = answer(&b, &held, |_| 6000, cands).unwrap();
        assert_eq!(ans.media[0].direction(), Direction::SendOnly);
        assert_eq!(neg.streams[0].direction, Direction::SendOnly);
        // Both held: inactive.
        let (ans, _) = answer(&a, &held, |_| 6000, cands).unwrap();
        assert_eq!(ans.media[0].direction(), Direction::Inactive);
    }

    #[test]
    fn held_offer_and_no_common_codec() {
        let mut a = offer(&local(false), |_| 4000, cands);
        a.media[0].attributes.retain(|x| x.name != "sendrecv");
        a.media[0].attributes.push(sdp::Attribute::flag("sendonly"));
        let (ans, neg) = answer(&a, &local(false), |_| 6000, cands).unwrap();
        assert_eq!(ans.media[0].direction(), Direction::RecvOnly);
        assert_eq!(neg.streams[0].direction, Direction::RecvOnly);
        let pcmu = Local {
            capabilities: vec![Capability::new(
                "audio",
                vec![Codec::new(0, "PCMU", 8000, None)],
            )],
            ..local(false)
        };
        assert_eq!(
            answer(&a, &pcmu, |_| 6000, cands).map(|_| ()),
            Err(NegotiationError::NoAudio)
        );
    }
}

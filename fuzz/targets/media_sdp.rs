//! SDP from a peer: parsed, read the way a call reads it, answered, written back.
use pamoja_media::negotiate::{self, Capability, Local};
use pamoja_media::sdp::{Codec, Sdp};

/// One input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sdp) = Sdp::parse(text) else {
        return;
    };
    let _ = sdp.ice_credentials();
    for m in &sdp.media {
        let _ = (
            m.codecs(),
            m.crypto(),
            m.rtcp_port(),
            m.direction(),
            m.candidates(),
        );
    }
    let local = Local {
        addr: "10.0.0.1".parse().unwrap(),
        ice: ("u".into(), "p".into()),
        capabilities: vec![Capability::new(
            "audio",
            vec![Codec::opus(), Codec::telephone_event()],
        )],
    };
    if let Ok((answer, _)) = negotiate::answer(&sdp, &local, |_| 4000, |_| vec![]) {
        let _ = negotiate::answered(&answer, &sdp);
    }
    let again = Sdp::parse(&sdp.to_text()).expect("what we write parses");
    assert_eq!(again.media.len(), sdp.media.len());
}

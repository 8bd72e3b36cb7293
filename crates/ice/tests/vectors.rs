//! Candidate lines written by pjnath, captured from real jamids in the lab
//! (`tests/interop_ice.rs` with `PAMOJA_VECTORS_OUT`): we read each one, write it back
//! byte for byte, and our own local candidates follow the same rules.

use std::net::{IpAddr, SocketAddr};

use pamoja_ice::candidate::{
    Candidate, IceMessage, Kind, TcpType, Transport, foundation, priority,
};

const JAMID: &str = include_str!("vectors/jamid-candidates.txt");

#[test]
fn jamid_lines_follow_pjnath_rules() {
    let lines: Vec<&str> = JAMID.lines().filter(|l| !l.is_empty()).collect();
    assert!(lines.len() >= 3);
    for line in &lines {
        let c = Candidate::parse(line).unwrap_or_else(|| panic!("{line}"));
        assert_eq!(c.to_string(), *line);
        assert_eq!((c.component, c.transport), (1, Transport::Tcp));
        match c.tcp_type {
            Some(TcpType::Active) => assert_eq!(c.addr.port(), 9, "{line}"),
            Some(TcpType::Passive) => assert_ne!(c.addr.port(), 9, "{line}"),
            other => panic!("{other:?} in {line}"),
        }
        // (type << 24) + (local preference << 8) + (256 - 1).
        let (type_pref, local) = (c.priority >> 24, (c.priority >> 8) & 0xFFFF);
        assert_eq!(c.priority & 0xFF, 255);
        assert_eq!(type_pref, c.kind.preference(), "{line}");
        assert_eq!(priority(type_pref, local, 1), c.priority);
    }
    // One host address gives a passive and an active candidate with the same foundation;
    // the srflx candidate's foundation is derived from the same base address.
    let host: Vec<Candidate> = lines
        .iter()
        .filter_map(|l| Candidate::parse(l))
        .filter(|c| c.kind == Kind::Host)
        .collect();
    let base = host[0].addr.ip();
    assert_eq!(host[0].foundation, foundation(Kind::Host, base));
    let srflx = lines
        .iter()
        .filter_map(|l| Candidate::parse(l))
        .find(|c| c.kind == Kind::Srflx)
        .expect("jamid's generic srflx candidate");
    assert_eq!(srflx.foundation, foundation(Kind::Srflx, base));
}

#[test]
fn our_local_candidates_are_written_as_pjnath_writes_them() {
    // The same host as in jamid's lines: our writer gives the same passive, active and
    // srflx lines (ports aside).
    let ip: IpAddr = "10.200.0.1".parse().unwrap();
    let passive = Candidate::local(
        Kind::Host,
        Transport::Tcp,
        Some(TcpType::Passive),
        SocketAddr::new(ip, 57721),
        ip,
        65535,
    );
    let active = Candidate::local(
        Kind::Host,
        Transport::Tcp,
        Some(TcpType::Active),
        SocketAddr::new(ip, 9),
        ip,
        65534,
    );
    let srflx = Candidate::local(
        Kind::Srflx,
        Transport::Tcp,
        Some(TcpType::Active),
        "127.0.0.1:9".parse().unwrap(),
        ip,
        // pjnath's third candidate of the socket.
        65533,
    );
    let jamid: Vec<&str> = JAMID.lines().collect();
    assert_eq!(passive.to_string(), jamid[0]);
    assert_eq!(active.to_string(), jamid[1]);
    assert_eq!(srflx.to_string(), jamid[2]);
    // A whole message of ours scans in pjnath's format and back.
    let m = IceMessage {
        ufrag: "0a1b2c3d".into(),
        pwd: "00112233445566778899aabb".into(),
        candidates: vec![passive, active, srflx],
    };
    assert_eq!(IceMessage::parse(&m.to_text()), Some(m));
}

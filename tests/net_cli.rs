//! `jami net stun` and `jami net turn` against a real coturn on loopback: the JSON contract,
//! over UDP and TCP, `--hold` until SIGTERM, and one clear stderr line for an unreachable
//! server or wrong credentials.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pamoja_lab::{Coturn, TURN_USER};
use serde_json::Value;

mod common;
use common::jami_bin;

fn coturn(test: &str, min_port: u16) -> Option<Coturn> {
    if !pamoja_lab::coturn_available(test) {
        return None;
    }
    Some(Coturn::start(IpAddr::V4(Ipv4Addr::LOCALHOST), None, min_port, &[]).unwrap())
}

fn jami(args: &[&str], password: &str) -> Output {
    Command::new(jami_bin())
        .args(args)
        .env("PAMOJA_TURN_PASSWORD", password)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "one JSON object: {text}");
    serde_json::from_str(&text).unwrap()
}

fn addr(v: &Value, field: &str) -> SocketAddr {
    v[field].as_str().unwrap().parse().unwrap()
}

fn one_error_line(out: &Output, want: &str) {
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(want), "{err}");
}

#[test]
fn stun_over_udp_and_tcp() {
    let Some(server) = coturn("stun_over_udp_and_tcp", 49600) else {
        return;
    };
    let s = server.addr().to_string();
    for tcp in [false, true] {
        let mut args = vec!["net", "stun", "--server", &s];
        if tcp {
            args.push("--tcp");
        }
        let v = json(&jami(&args, ""));
        assert_eq!(addr(&v, "mapped").ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_ne!(addr(&v, "mapped").port(), 0);
    }
}

#[test]
fn turn_over_udp_and_tcp() {
    let Some(server) = coturn("turn_over_udp_and_tcp", 49650) else {
        return;
    };
    let s = server.addr().to_string();
    for tcp in [false, true] {
        let mut args = vec!["net", "turn", "--server", &s, "--user", TURN_USER.0];
        if tcp {
            args.push("--tcp");
        }
        let v = json(&jami(&args, TURN_USER.1));
        let relayed = addr(&v, "relayed");
        assert!((49650..=49690).contains(&relayed.port()), "{relayed}");
        assert_eq!(addr(&v, "mapped").ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        // Wrong credentials: one clear line.
        one_error_line(&jami(&args, "wrong"), "refused the credentials");
    }
}

#[test]
fn unreachable_server_is_one_clear_line() {
    // A port nothing listens on (UDP and TCP).
    let free = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let s = free.local_addr().unwrap().to_string();
    drop(free);
    let started = Instant::now();
    one_error_line(
        &jami(&["net", "stun", "--server", &s, "--timeout", "1"], ""),
        "no answer",
    );
    one_error_line(
        &jami(&["net", "stun", "--server", &s, "--tcp"], ""),
        "cannot connect",
    );
    one_error_line(
        &jami(
            &[
                "net",
                "turn",
                "--server",
                &s,
                "--user",
                "u",
                "--timeout",
                "1",
            ],
            "p",
        ),
        "no answer",
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn turn_hold_keeps_the_allocation_until_sigterm() {
    let Some(server) = coturn("turn_hold_keeps_the_allocation_until_sigterm", 49700) else {
        return;
    };
    let s = server.addr().to_string();
    let mut child = Command::new(jami_bin())
        .args([
            "net",
            "turn",
            "--server",
            &s,
            "--user",
            TURN_USER.0,
            "--hold",
        ])
        .env("PAMOJA_TURN_PASSWORD", TURN_USER.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    let relayed = addr(&v, "relayed");
    // Still held a moment later: a second allocation gets another relay port.
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "exited while holding");
    let other = json(&jami(
        &["net", "turn", "--server", &s, "--user", TURN_USER.0],
        TURN_USER.1,
    ));
    assert_ne!(addr(&other, "relayed"), relayed);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

//! The seed inputs of each fuzz target, built from the real thing (a certificate, a DHT
//! message, a SIP MESSAGE...), written into `fuzz/corpus/<target>/seed-<n>` by
//! `PAMOJA_WRITE_SEEDS=1 cargo test --test fuzz_corpora`.

use std::path::Path;

use pamoja_dht::message::{Body, Message, MessageKind, Method};
use pamoja_dht::{InfoHash, Value};
use pamoja_identity::Account;

fn msg(from: &str, to: &str, mime: &str, body: &str) -> Vec<u8> {
    format!(
        "MESSAGE sip:{to}@ring.dht SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.1:1;branch=z9hG4bK1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{from}@ring.dht>;tag=1\r\nTo: <sip:{to}@ring.dht>\r\n\
         Call-ID: 1@x\r\nCSeq: 1 MESSAGE\r\nContent-Type: {mime}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Seeds by target.
fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let mut account = Account::create(|_| {}).expect("an account");
    let device = account.add_device().expect("a device");
    account
        .revoke_device(&device.cert.device_id())
        .expect("a revocation");
    let cert = account.account_cert().der().to_vec();
    let crl = account.crl().expect("a CRL").der().to_vec();
    let archive = account.archive().encode(None).expect("an archive");
    let ping = Message::new(
        1,
        MessageKind::Query(Method::Ping),
        Body {
            id: InfoHash::get(b"seed"),
            ..Body::default()
        },
    )
    .encode();
    let put = Message::new(
        2,
        MessageKind::Query(Method::Put),
        Body {
            id: InfoHash::get(b"seed"),
            key: Some(InfoHash::get(b"key")),
            values: vec![pamoja_dht::message::ValueEntry::Inline(Value::new("hi"))],
            token: Some(vec![0; 32]),
            ..Body::default()
        },
    )
    .encode();
    let value = Value::new("seed value").to_bytes();
    let json = pamoja_dht::json::to_json(&Value::new("seed")).to_string();
    let a = account.jami_id().to_string();
    let b = "89abcdef0123456789abcdef0123456789abcdef";
    let node_record = |data: &[u8]| {
        let mut r = vec![0u8, 1, data.len().min(255) as u8];
        r.extend_from_slice(&data[..data.len().min(255)]);
        r
    };
    let mut registration = vec![5u8];
    registration.extend_from_slice(b"alice");
    registration.extend_from_slice(
        br#"{"addr":"0123456789abcdef0123456789abcdef01234567","owner":"","signature":"","publickey":""}"#,
    );
    let mut http = vec![1u8, 8];
    http.extend_from_slice(b"key/abc");
    http.push(b'/');
    http.extend_from_slice(br#"{"id":"1","type":0,"data":"aGk="}"#);
    let mut http_name = vec![0u8, 10];
    http_name.extend_from_slice(b"name/alice");
    let password =
        pamoja_identity::password::encrypt_with_key(&[7u8; 32], b"seed").expect("encrypted");
    let trust = pamoja_client::trust::TrustRequest {
        service: "cx.ring".into(),
        conversation_id: "0123456789abcdef0123456789abcdef01234567".into(),
        payload: b"BEGIN:VCARD\r\nFN:Seed\r\nEND:VCARD\r\n".to_vec(),
        confirm: false,
    }
    .encode();
    let mut instant = vec![0u8];
    instant.extend_from_slice(br#"{"commit":"0123456789abcdef0123456789abcdef01234567","deviceId":"aa","id":"0123456789abcdef0123456789abcdef01234567"}"#);
    let mut invite = vec![1u8];
    invite.extend_from_slice(
        br#"{"conversationId":"0123456789abcdef0123456789abcdef01234567","metadatas":{"title":"t"}}"#,
    );
    let mut encoder = pamoja_media::video::Vp8Encoder::new(32, 32, 300_000, 30).expect("VP8");
    let key_frame = encoder
        .encode(&pamoja_media::video::test_pattern(32, 32, 0), true)
        .expect("a frame")
        .remove(0)
        .data;
    let mut opus = pamoja_media::audio::OpusEncoder::new().expect("Opus");
    let opus_frame = opus.encode(&[0i16; 960]).expect("an Opus frame");
    let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
               m=audio 5000 RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
               a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n\
               a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef0123456789\r\n\
               a=candidate:1 1 UDP 2130706431 10.0.0.1 5000 typ host\r\n";
    let mut rtp = vec![0x80u8, 111, 0, 1, 0, 0, 0, 160, 0, 0, 0, 1];
    rtp.extend_from_slice(&opus_frame);
    let mut rtp_run = vec![rtp.len() as u8];
    rtp_run.extend_from_slice(&rtp);
    vec![
        ("archive", vec![archive]),
        (
            "certificate",
            vec![cert.clone(), account.account_cert().to_pem().into_bytes()],
        ),
        (
            "channel",
            vec![
                msg(&a, b, "text/plain", "hello"),
                pamoja_channel::mux::frame(7, b"data"),
            ],
        ),
        ("client_instant", vec![instant, invite, trust]),
        (
            "client_state",
            vec![
                br#"{"display_name":"Seed","read_receipts":true,"typing":false,"auto_answer":false}"#.to_vec(),
                br#"{"0123456789abcdef0123456789abcdef01234567":{"from":"89abcdef0123456789abcdef0123456789abcdef","received":1,"metadatas":{}}}"#.to_vec(),
                vec![0x81, 0xc4, 0x14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 0x80],
            ],
        ),
        ("connection_request", vec![value.clone()]),
        ("crl", vec![crl]),
        ("dht_json", vec![json.into_bytes()]),
        ("dht_message", vec![ping.clone(), put.clone()]),
        ("dht_node", vec![node_record(&ping), node_record(&put)]),
        ("dht_secure", vec![value.clone()]),
        ("http_servers", vec![http, http_name]),
        ("ice_agent", vec![vec![1, 0, 0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]),
        (
            "media_control",
            vec![
                pamoja_media::control::Control::KeyFrame { stream: None }
                    .to_body()
                    .into_bytes(),
                b"Signal=5\r\nDuration=160\r\n".to_vec(),
            ],
        ),
        ("media_decode", vec![key_frame, opus_frame]),
        ("media_dialog", vec![msg(b, &a, "text/plain", "hi")]),
        ("media_rtp", vec![rtp_run]),
        ("media_sdp", vec![sdp.as_bytes().to_vec()]),
        ("media_srtp", vec![rtp]),
        ("media_y4m", vec![b"YUV4MPEG2 W2 H2 F30:1 C420jpeg\nFRAME\n\x10\x20\x30\x40\x80\x80".to_vec()]),
        ("name_registration", vec![registration]),
        ("password", vec![password]),
        (
            "signed_value",
            vec![
                pamoja_identity::announce::DeviceAnnouncement::new(
                    account.device().expect("a device").cert.public_key(),
                )
                .pack(),
            ],
        ),
        (
            "stun",
            vec![
                vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
                b"abcd\n0123456789abcdef01234567\n1 1 TCP 2130706431 10.0.0.1 5000 typ host tcptype passive\n"
                    .to_vec(),
            ],
        ),
        (
            "swarm",
            vec![
                br#"{"type":"text/plain","body":"hello"}"#.to_vec(),
                b"0032want 0123456789abcdef0123456789abcdef01234567\n00000009done\n".to_vec(),
            ],
        ),
        (
            "swarm_history",
            vec![br#"{"type":"initial","mode":0}{"type":"text/plain","body":"hi"}{"type":"member","action":"join","uri":"0123456789abcdef0123456789abcdef01234567"}"#.to_vec()],
        ),
        (
            "swarm_serve",
            vec![b"0032want 0123456789abcdef0123456789abcdef01234567\n00000009done\n".to_vec()],
        ),
    ]
}

/// Writes every seed into `root/<target>/seed-<n>`.
pub fn write(root: &Path) {
    for (target, inputs) in seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("a corpus directory");
        for (i, data) in inputs.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), data).expect("a seed");
        }
    }
}

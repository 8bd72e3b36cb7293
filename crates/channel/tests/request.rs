//! Connection requests sealed for one device and opened by it: the payload and the signer
//! survive; another device cannot open it; the rendezvous keys are jamid's.

use pamoja_channel::request::{
    PeerConnectionRequest, RequestError, USER_TYPE, long_key, short_key,
};
use pamoja_dht::InfoHash;
use pamoja_dht::secure;
use pamoja_identity::PrivateKey;

#[test]
fn sealed_for_one_device_only() {
    let alice = PrivateKey::generate().unwrap();
    let bob = PrivateKey::generate().unwrap();
    let req =
        PeerConnectionRequest::new("abcd1234\n00112233445566778899aabb\n".into(), "text/plain");
    let v = req.seal(&alice, bob.public_key()).unwrap();
    assert_eq!(v.value_type, 0);
    assert!(
        v.cypher.is_some() && v.data.is_empty(),
        "only ciphertext on the wire"
    );
    let (opened, signer) = PeerConnectionRequest::open(&v, &bob).unwrap();
    assert_eq!(opened, req);
    assert_eq!(signer.spki_der(), alice.public_key().spki_der());
    // Inside: signed by Alice, addressed to Bob, user type peer_request.
    let inner = secure::decrypt(&v, &bob).unwrap();
    assert_eq!(inner.user_type, USER_TYPE);
    assert_eq!(inner.recipient, Some(secure::key_id(bob.public_key())));
    // Alice cannot read what she sent to Bob, nor can anyone else.
    assert!(matches!(
        PeerConnectionRequest::open(&v, &alice),
        Err(RequestError::Secure(_))
    ));
    // The answer goes back the same way.
    let answer = opened.answer("efgh5678\n99887766554433221100ffee\n".into());
    let back = answer.seal(&bob, alice.public_key()).unwrap();
    let (a, _) = PeerConnectionRequest::open(&back, &alice).unwrap();
    assert!(a.is_answer && a.id == req.id);
}

#[test]
fn rendezvous_keys() {
    let k = PrivateKey::generate().unwrap();
    let short = secure::key_id(k.public_key());
    assert_eq!(
        short_key(k.public_key()),
        InfoHash::get(format!("peer:{short}").as_bytes())
    );
    let long = k.public_key().device_id();
    assert_eq!(long.to_string().len(), 64);
    assert_eq!(
        long_key(&long),
        InfoHash::get(format!("peer:{long}").as_bytes())
    );
}

//! Two media sessions connect on loopback with components numbered across streams, as a call
//! with audio and video does: each component's data arrives on the same component.

use pamoja_ice::agent::Role;
use pamoja_ice::candidate::IceMessage;
use pamoja_ice::media::MediaSession;
use pamoja_ice::session::Options;

#[tokio::test]
async fn four_components_carry_their_own_data() {
    let opts = || Options::udp(vec!["127.0.0.1:0".parse().unwrap()]);
    let a = MediaSession::gather(Role::Controlling, opts(), 4)
        .await
        .unwrap();
    let b = MediaSession::gather(Role::Controlled, opts(), 4)
        .await
        .unwrap();
    let da = a.local_description().clone();
    // One credential pair for the whole session, a candidate per component.
    let mut ids: Vec<u32> = da.candidates.iter().map(|c| c.component).collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    let mut prios: Vec<u32> = da.candidates.iter().map(|c| c.priority).collect();
    prios.dedup();
    assert_eq!(prios.len(), 4, "priority follows the component");
    // Through the text format and back.
    let db = IceMessage::parse(&b.local_description().to_text()).unwrap();
    let (ca, cb) = tokio::join!(a.connect(db), b.connect(da));
    let (mut ca, mut cb) = (ca.unwrap(), cb.unwrap());
    assert_eq!((ca.len(), cb.len()), (4, 4));
    for id in 1..=4u32 {
        let sel = ca.component(id).unwrap().selected().clone();
        assert_eq!(sel.local.component, id);
        assert_eq!(sel.remote.component, id);
    }
    for id in 1..=4u32 {
        ca.component(id)
            .unwrap()
            .send(&[id as u8; 50])
            .await
            .unwrap();
        cb.component(id)
            .unwrap()
            .send(&[0x80 | id as u8; 60])
            .await
            .unwrap();
    }
    for id in 1..=4u32 {
        assert_eq!(
            cb.component(id).unwrap().recv().await.unwrap(),
            vec![id as u8; 50]
        );
        assert_eq!(
            ca.component(id).unwrap().recv().await.unwrap(),
            vec![0x80 | id as u8; 60]
        );
    }
    assert!(ca.component(0).is_none() && ca.component(5).is_none());
}

#[tokio::test]
async fn component_count_is_bounded() {
    let opts = Options::udp(vec!["127.0.0.1:0".parse().unwrap()]);
    assert!(
        MediaSession::gather(Role::Controlling, opts.clone(), 0)
            .await
            .is_err()
    );
    assert!(
        MediaSession::gather(Role::Controlling, opts, 17)
            .await
            .is_err()
    );
}

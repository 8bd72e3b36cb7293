//! Our name server and client with a real jamid (Debian 20230206) in the lab: jamid registers
//! and looks up names on our server; our client reads what jamid registered; jamid reads what
//! our client registered for a Pamoja account.

mod common;

use std::time::Duration;

use pamoja::identity::Account;
use pamoja::nameserver::client::{Client, Lookup, Registered};
use pamoja::nameserver::server::{self, Config};
use pamoja::nameserver::store::Store;
use pamoja_lab::{Lab, available};

const SERVER: &str = "http://127.0.0.1:8099";
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamid_registers_and_finds_names_on_our_server() {
    if !available("jamid_registers_and_finds_names_on_our_server") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(4222).await.unwrap();
    // Our server on 127.0.0.1:8099 inside the namespace, where jamid's RingNS.uri points.
    let db = lab.dir().join("names.db");
    let store = Store::open(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    let listener = lab
        .netns()
        .tcp_listener("127.0.0.1:8099".parse().unwrap())
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let serving = tokio::spawn(server::serve(listener, store.clone(), Config::default()));

    let jamid = lab.start_jamid("names").await.unwrap();
    let account = jamid.add_account(4222, &[]).await.unwrap();
    jamid.wait_registered(&account, WAIT).await.unwrap();
    let jami_id = jamid.jami_id(&account).await.unwrap();

    // jamid registers (name as typed, sent lower-cased) and finds it.
    let status = jamid
        .register_name(&account, "", "Jamid_User-1", WAIT)
        .await
        .unwrap();
    assert_eq!(status, 0, "registration by jamid");
    let entry = store
        .by_name("jamid_user-1")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(entry.addr, jami_id);
    let (status, addr) = jamid
        .lookup_name(&account, SERVER, "jamid_user-1", WAIT)
        .await
        .unwrap();
    assert_eq!((status, addr.as_str()), (0, jami_id.as_str()));
    // jamid's own rules: too short a name is refused before any request.
    assert_eq!(
        jamid.register_name(&account, "", "ab", WAIT).await.unwrap(),
        2
    );

    // Our client, from inside the namespace, finds jamid's name both ways.
    let c = lab
        .netns()
        .run_inside({
            let jami_id = jami_id.clone();
            move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async move {
                        let c = Client::new(SERVER);
                        let by_name = c.lookup_name("jamid_user-1").await;
                        let by_addr = c.lookup_address(&jami_id).await;
                        // A Pamoja account registers through our client.
                        let ours = Account::create(|_| {}).unwrap();
                        let registered = c.register(&ours, "pamoja_user").await;
                        (by_name, by_addr, registered, ours.jami_id().to_string())
                    })
            }
        })
        .unwrap();
    let (by_name, by_addr, registered, our_id) = c;
    assert_eq!(by_name, Lookup::Found(jami_id.clone()));
    assert_eq!(by_addr, Lookup::Found("jamid_user-1".into()));
    assert_eq!(registered, Registered::Success);

    // jamid finds the Pamoja name both ways.
    let (status, addr) = jamid
        .lookup_name(&account, SERVER, "pamoja_user", WAIT)
        .await
        .unwrap();
    assert_eq!((status, addr.as_str()), (0, our_id.as_str()));
    let (status, name) = jamid
        .lookup_address(&account, SERVER, &our_id, WAIT)
        .await
        .unwrap();
    assert_eq!((status, name.as_str()), (0, "pamoja_user"));
    // And an unknown name is "not found" (2) for jamid, as for us.
    let (status, _) = jamid
        .lookup_name(&account, SERVER, "nobody_at_all", WAIT)
        .await
        .unwrap();
    assert_eq!(status, 2);
    serving.abort();
}

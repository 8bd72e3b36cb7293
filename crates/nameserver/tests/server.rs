//! The server and the client together on loopback, on SQLite and on PostgreSQL (a private
//! PostgreSQL instance started by the test, on a Unix socket in a temporary directory).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::Duration;

use pamoja_identity::Account;
use pamoja_nameserver::client::{Client, Lookup, Registered};
use pamoja_nameserver::name::Name;
use pamoja_nameserver::record::{NameRecord, Registration};
use pamoja_nameserver::server::{self, Config};
use pamoja_nameserver::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Three accounts shared by the tests (RSA-4096 keys are slow to make).
fn accounts() -> &'static [Account; 3] {
    static ACCOUNTS: OnceLock<[Account; 3]> = OnceLock::new();
    ACCOUNTS.get_or_init(|| std::array::from_fn(|_| Account::create(|_| {}).unwrap()))
}

async fn start(db: &str, config: Config) -> (SocketAddr, Store) {
    let store = Store::open(db).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(listener, store.clone(), config));
    (addr, store)
}

fn unlimited() -> Config {
    Config {
        registrations_per_minute: 0,
        ..Config::default()
    }
}

/// One HTTP/1.1 exchange: (status, JSON body).
async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: JamiDHT\r\nAccept: */*\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    let json = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

async fn registers_and_finds(db: &str) {
    let (addr, store) = start(db, unlimited()).await;
    let [alice, bob, _] = accounts();
    let client = Client::new(&format!("http://{addr}"));
    assert_eq!(client.register(alice, "Alice_1").await, Registered::Success);
    // Registering the same name again for the same account is harmless.
    let fresh = Client::new(&format!("http://{addr}"));
    assert_eq!(fresh.register(alice, "alice_1").await, Registered::Success);
    let id = alice.jami_id().to_string();
    assert_eq!(
        fresh.lookup_name("ALICE_1").await,
        Lookup::Found(id.clone())
    );
    assert_eq!(
        fresh.lookup_address(&id).await,
        Lookup::Found("alice_1".into())
    );
    assert_eq!(fresh.lookup_name("nobody-here").await, Lookup::NotFound);
    assert_eq!(
        fresh.lookup_address(&bob.jami_id().to_string()).await,
        Lookup::NotFound
    );
    assert_eq!(fresh.lookup_name("x").await, Lookup::InvalidResponse);
    assert_eq!(fresh.register(bob, "ab").await, Registered::InvalidName);
    // name@host asks that host.
    let other = Client::new("http://127.0.0.1:9");
    assert_eq!(
        other.lookup_name(&format!("alice_1@{addr}")).await,
        Lookup::Found(id.clone())
    );
    // The answer carries the registration, which checks out.
    let (status, json) = http(addr, "GET", "/name/alice_1", b"").await;
    assert_eq!(status, 200);
    let record: NameRecord = serde_json::from_value(json).unwrap();
    let name = Name::parse("alice_1").unwrap();
    assert_eq!(record.check(&name), Ok(Some(id)));
    assert_eq!(store.count().await.unwrap(), 1);
}

async fn refuses_bad_registrations(db: &str) {
    let (addr, store) = start(db, unlimited()).await;
    let [alice, bob, _] = accounts();
    let good = |name: &str| Registration::sign(alice, &Name::parse(name).unwrap()).unwrap();
    let post = |name: &str, body: Vec<u8>| {
        let path = format!("/name/{name}");
        async move { http(addr, "POST", &path, &body).await }
    };
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("malformed JSON", "carol", b"{\"addr\": ".to_vec(), 400),
        ("missing field", "carol", br#"{"addr":"00"}"#.to_vec(), 400),
        (
            "invalid name",
            "ab",
            good("abc").to_json().into_bytes(),
            400,
        ),
        (
            "name with a space",
            "a%20b",
            good("abc").to_json().into_bytes(),
            400,
        ),
        (
            "signature over another name",
            "carol",
            good("dave").to_json().into_bytes(),
            401,
        ),
        (
            "key not matching the address",
            "carol",
            Registration {
                addr: bob.jami_id().to_string(),
                ..good("carol")
            }
            .to_json()
            .into_bytes(),
            401,
        ),
        (
            "address not hex",
            "carol",
            Registration {
                addr: "zz".repeat(20),
                ..good("carol")
            }
            .to_json()
            .into_bytes(),
            400,
        ),
        (
            "public key not base64",
            "carol",
            Registration {
                publickey: "%%%".into(),
                ..good("carol")
            }
            .to_json()
            .into_bytes(),
            400,
        ),
        ("oversized body", "carol", vec![b' '; 64 * 1024], 413),
    ];
    for (what, name, body, want) in cases {
        let (status, json) = post(name, body).await;
        assert_eq!(status, want, "{what}: {json}");
        assert!(json["error"].is_string(), "{what}: {json}");
        assert_eq!(json["success"], false, "{what}");
    }
    assert_eq!(store.count().await.unwrap(), 0, "nothing stored");

    // First come, first served; a name never changes owner; one name per address.
    let (status, _) = post("carol", good("carol").to_json().into_bytes()).await;
    assert_eq!(status, 200);
    let bobs = Registration::sign(bob, &Name::parse("carol").unwrap()).unwrap();
    let (status, json) = post("carol", bobs.to_json().into_bytes()).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (409, Some("name already taken"))
    );
    let (status, json) = post("carol2", good("carol2").to_json().into_bytes()).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (409, Some("address already has a name"))
    );
    let client = Client::new(&format!("http://{addr}"));
    assert_eq!(
        client.register(bob, "carol").await,
        Registered::AlreadyTaken
    );
    assert_eq!(
        client.lookup_name("carol").await,
        Lookup::Found(alice.jami_id().to_string())
    );
    assert_eq!(store.count().await.unwrap(), 1);

    // Unknown endpoints and bad addresses answer JSON too.
    assert_eq!(http(addr, "GET", "/nothing", b"").await.0, 404);
    assert_eq!(http(addr, "GET", "/addr/xyz", b"").await.0, 400);
}

async fn one_winner_among_concurrent_registrations(db: &str) {
    let (addr, store) = start(db, unlimited()).await;
    let accounts = accounts();
    let bodies: Vec<Vec<u8>> = accounts
        .iter()
        .map(|a| {
            Registration::sign(a, &Name::parse("contested").unwrap())
                .unwrap()
                .to_json()
                .into_bytes()
        })
        .collect();
    let attempts = (0..60).map(|i| {
        let body = bodies[i % 3].clone();
        async move { (i % 3, http(addr, "POST", "/name/contested", &body).await.0) }
    });
    let results = futures_util::future::join_all(attempts).await;
    let winners: std::collections::HashSet<usize> = results
        .iter()
        .filter(|(_, status)| *status == 200)
        .map(|(who, _)| *who)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(who, status)| (*status == 200) == winners.contains(who)
                && (*status == 200 || *status == 409))
    );
    let winner = *winners.iter().next().unwrap();
    let entry = store.by_name("contested").await.unwrap().unwrap();
    assert_eq!(entry.addr, accounts[winner].jami_id().to_string());
    assert_eq!(store.count().await.unwrap(), 1);
}

async fn registrations_are_rate_limited(db: &str) {
    let config = Config {
        registrations_per_minute: 3,
        ..Config::default()
    };
    let (addr, _store) = start(db, config).await;
    let body = b"{}".to_vec();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(http(addr, "POST", "/name/limited", &body).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|(s, _)| *s).collect();
    assert_eq!(codes, vec![400, 400, 400, 429, 429]);
    assert_eq!(statuses[3].1["error"], "too many registrations");
    // Lookups are not limited.
    assert_eq!(http(addr, "GET", "/name/limited", b"").await.0, 404);
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite:{}", dir.join("names.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_registers_and_finds() {
    let dir = tempfile::tempdir().unwrap();
    registers_and_finds(&sqlite_url(dir.path())).await;
    // The file persists: a new server on it knows the name.
    let (addr, store) = start(&sqlite_url(dir.path()), unlimited()).await;
    assert_eq!(store.count().await.unwrap(), 1);
    let c = Client::new(&format!("http://{addr}"));
    assert!(matches!(c.lookup_name("alice_1").await, Lookup::Found(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_bad_registrations() {
    let dir = tempfile::tempdir().unwrap();
    refuses_bad_registrations(&sqlite_url(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_winner_among_concurrent_registrations() {
    let dir = tempfile::tempdir().unwrap();
    one_winner_among_concurrent_registrations(&sqlite_url(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_registrations_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    registrations_are_rate_limited(&sqlite_url(dir.path())).await;
}

/// A private PostgreSQL server on a Unix socket, stopped by its PID on drop.
struct Postgres {
    child: Child,
    dir: tempfile::TempDir,
}

impl Postgres {
    fn bin() -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("postgres").exists() && b.join("initdb").exists())
            .collect();
        found.sort();
        found.pop()
    }

    /// Starts one, or says why it cannot (a failure in CI, a skip elsewhere).
    fn start(test: &str) -> Option<Self> {
        let why = match (Self::bin(), Path::new("/usr/bin/setpriv").exists()) {
            (Some(bin), true) => match Self::try_start(&bin) {
                Ok(pg) => return Some(pg),
                Err(e) => e,
            },
            _ => "PostgreSQL server binaries or setpriv not installed".to_owned(),
        };
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
            panic!("{test}: {why}");
        }
        eprintln!("SKIPPED {test}: {why} (install them with scripts/install-deps)");
        None
    }

    fn as_postgres(bin: &Path, program: &str) -> Command {
        let mut c = Command::new("/usr/bin/setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(bin.join(program));
        c
    }

    fn try_start(bin: &Path) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("pamoja-pg.")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let chown = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .map_err(|e| e.to_string())?;
        if !chown.success() {
            return Err("cannot give the data directory to postgres (not root?)".into());
        }
        let data = dir.path().join("data");
        let init = Self::as_postgres(bin, "initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .output()
            .map_err(|e| e.to_string())?;
        if !init.status.success() {
            return Err(format!("initdb: {}", String::from_utf8_lossy(&init.stderr)));
        }
        let child = Self::as_postgres(bin, "postgres")
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=", "-k"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let pg = Self { child, dir };
        let socket = pg.dir.path().join(".s.PGSQL.5432");
        for _ in 0..200 {
            if socket.exists() {
                return Ok(pg);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("postgres did not open its socket in 10 s".into())
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@localhost/postgres?host={}",
            self.dir.path().display()
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown. Only the server this test started.
        let _ = Command::new("/usr/bin/kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_same_behaviour() {
    let Some(pg) = Postgres::start("postgres_same_behaviour") else {
        return;
    };
    // Each scenario on a fresh schema: drop the table between them.
    for scenario in 0..4 {
        {
            let store = Store::open(&pg.url()).await.unwrap();
            drop(store);
        }
        let url = pg.url();
        let reset = Command::new("/usr/bin/setpriv")
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(Postgres::bin().unwrap().join("psql"))
            .args(["-h"])
            .arg(pg.dir.path())
            .args(["-U", "postgres", "-q", "-c", "DROP TABLE IF EXISTS names"])
            .status()
            .unwrap();
        assert!(reset.success());
        match scenario {
            0 => registers_and_finds(&url).await,
            1 => refuses_bad_registrations(&url).await,
            2 => one_winner_among_concurrent_registrations(&url).await,
            _ => registrations_are_rate_limited(&url).await,
        }
    }
}

//! A mixed network: 8 real OpenDHT 2.4.12 `dhtnode`s, 8 OpenDHT nodes of python3-opendht
//! (libopendht in one Python process, used to put and get through OpenDHT) and 8 Pamoja nodes.
//! 200 keys are put through random nodes of both kinds, values above the fragmentation limit
//! included, and every key is read back from every node of the other kind. A second network
//! id stays apart.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::Arc;
use std::time::Duration;

use pamoja::dht::{Config, InfoHash, Runner, Value};
use pamoja_lab::{Lab, available};
use serde_json::{Value as Json, json};

const OPENDHT_NODES: &str = r#"
import json, os, sys, threading
import opendht as dht
n, boot, netid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
runners = []
for i in range(n):
    cfg = dht.DhtConfig()
    cfg.setNetwork(netid)
    r = dht.DhtRunner()
    r.run(port=0, ipv4="127.0.0.1", config=cfg)
    r.bootstrap("127.0.0.1", boot)
    runners.append(r)
print(json.dumps({"ready": n}), flush=True)

def wait_all(jobs):
    lock, left, done = threading.Lock(), [len(jobs)], threading.Event()
    def finished(*_):
        with lock:
            left[0] -= 1
            if left[0] == 0:
                done.set()
    for job in jobs:
        job(finished)
    if jobs:
        done.wait(180)
    return left[0]

for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "put":
        oks = {}
        def job(p):
            def run(finished):
                def cb(ok, *_):
                    oks[p["key"]] = bool(ok)
                    finished()
                runners[p["node"]].put(dht.InfoHash.get(p["key"]), dht.Value(p["data"].encode()), cb)
            return run
        left = wait_all([job(p) for p in cmd["items"]])
        print(json.dumps({"oks": oks, "left": left}), flush=True)
    elif cmd["op"] == "get":
        found, lock = {}, threading.Lock()
        def job(i, k):
            def run(finished):
                def got(v):
                    with lock:
                        found.setdefault(str(i), {}).setdefault(k, []).append(bytes(v.data).decode("utf-8", "replace"))
                    return True
                runners[i].get(dht.InfoHash.get(k), got, lambda *a: finished())
            return run
        left = wait_all([job(i, k) for i in range(n) for k in cmd["keys"]])
        print(json.dumps({"found": found, "left": left}), flush=True)
    else:
        break
sys.stdout.flush()
os._exit(0)
"#;

/// The Python process hosting OpenDHT nodes; stopped by PID on drop.
struct OpenDhtNodes {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl OpenDhtNodes {
    fn start(lab: &Lab, n: usize, boot_port: u16, network: u32) -> Self {
        let script = lab.dir().join(format!("nodes-{network}.py"));
        std::fs::write(&script, OPENDHT_NODES).unwrap();
        let mut child = lab
            .netns()
            .command("/usr/bin/python3")
            .arg(&script)
            .args([n.to_string(), boot_port.to_string(), network.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut nodes = Self {
            child,
            stdin,
            stdout,
        };
        assert_eq!(nodes.read()["ready"], n);
        nodes
    }

    fn read(&mut self) -> Json {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    fn call(&mut self, cmd: Json) -> Json {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        self.read()
    }
}

impl Drop for OpenDhtNodes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn our_nodes(lab: &Lab, n: usize, boot: SocketAddr, network: u32) -> Vec<Arc<Runner>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let socket = lab
            .netns()
            .udp_socket("127.0.0.1:0".parse().unwrap())
            .unwrap();
        let r = Runner::from_std(
            socket,
            Config {
                network,
                ..Config::default()
            },
        )
        .unwrap();
        r.bootstrap(boot);
        out.push(Arc::new(r));
    }
    out
}

fn data_for(k: usize) -> String {
    // Every tenth value is larger than one datagram, so it travels in fragments.
    if k % 10 == 0 {
        format!("big {k} ").repeat(300)
    } else {
        format!("value {k}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_network_of_opendht_and_pamoja_nodes() {
    if !available("mixed_network_of_opendht_and_pamoja_nodes") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    lab.start_dhtnode(4222).await.unwrap();
    for port in 4223..4230u16 {
        lab.spawn(
            &format!("dhtnode-{port}"),
            pamoja_lab::DHTNODE,
            &["-s", "-p", &port.to_string(), "-b", "127.0.0.1:4222"],
            &[],
        )
        .unwrap();
    }
    let boot: SocketAddr = "127.0.0.1:4222".parse().unwrap();
    let ours = our_nodes(&lab, 8, boot, 0).await;
    let opendht = tokio::task::block_in_place(|| OpenDhtNodes::start(&lab, 8, 4222, 0));
    let mut opendht = opendht;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // 200 keys: even ones through our nodes, odd ones through OpenDHT nodes.
    let keys: Vec<String> = (0..200).map(|k| format!("mixed-{k}")).collect();
    let mut tasks = Vec::new();
    for k in (0..200).step_by(2) {
        let node = ours[(k / 2) % 8].clone();
        let key = keys[k].clone();
        tasks.push(tokio::spawn(async move {
            node.put(InfoHash::get(key.as_bytes()), Value::new(data_for(k)))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert!(
            t.await.unwrap() >= 1,
            "a put through our node was stored nowhere"
        );
    }
    let items: Vec<Json> = (1..200)
        .step_by(2)
        .map(|k| json!({"node": (k / 2) % 8, "key": keys[k], "data": data_for(k)}))
        .collect();
    let put = tokio::task::block_in_place(|| opendht.call(json!({"op": "put", "items": items})));
    assert_eq!(put["left"], 0, "OpenDHT puts did not finish");
    assert!(
        put["oks"].as_object().unwrap().values().all(|v| v == true),
        "{put}"
    );

    // Every key put through ours is read by every OpenDHT node...
    let ours_keys: Vec<&String> = keys.iter().step_by(2).collect();
    let got = tokio::task::block_in_place(|| opendht.call(json!({"op": "get", "keys": ours_keys})));
    assert_eq!(got["left"], 0);
    let mut missing = Vec::new();
    for node in 0..8 {
        for k in (0..200).step_by(2) {
            let found = &got["found"][node.to_string()][&keys[k]];
            if !found
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == data_for(k).as_str()))
            {
                missing.push((node, k));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "OpenDHT nodes missed {} of 800 reads: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );

    // ...and every key put through OpenDHT is read by every one of ours.
    let mut reads = Vec::new();
    for (i, node) in ours.iter().enumerate() {
        for k in (1..200).step_by(2) {
            let node = node.clone();
            let key = keys[k].clone();
            reads.push(tokio::spawn(async move {
                (i, k, node.get(InfoHash::get(key.as_bytes())).await.unwrap())
            }));
        }
    }
    let mut missing = Vec::new();
    for r in reads {
        let (i, k, values) = r.await.unwrap();
        if !values.iter().any(|v| v.data == data_for(k).as_bytes()) {
            missing.push((i, k));
        }
    }
    assert!(
        missing.is_empty(),
        "our nodes missed {} of 800 reads: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let _ = tokio::task::block_in_place(|| writeln!(opendht.stdin, "{}", json!({"op": "quit"})));

    // A second network (id 7) next to this one stays apart.
    lab.spawn(
        "dhtnode-net7",
        pamoja_lab::DHTNODE,
        &["-s", "-p", "4300", "-n", "7"],
        &[],
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let net7 = our_nodes(&lab, 2, "127.0.0.1:4300".parse().unwrap(), 7).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        net7[0]
            .put(InfoHash::get(b"net7-key"), Value::new("seven"))
            .await
            .unwrap()
            >= 1
    );
    assert!(
        net7[1]
            .get(InfoHash::get(b"net7-key"))
            .await
            .unwrap()
            .iter()
            .any(|v| v.data == b"seven")
    );
    assert!(
        net7[1]
            .get(InfoHash::get(keys[0].as_bytes()))
            .await
            .unwrap()
            .is_empty(),
        "network 7 sees network 0's values"
    );
    assert!(
        ours[0]
            .get(InfoHash::get(b"net7-key"))
            .await
            .unwrap()
            .is_empty(),
        "network 0 sees network 7's values"
    );
    let stray = our_nodes(&lab, 1, boot, 7).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stray[0].stats().await.unwrap().nodes4,
        0,
        "a network-7 node learns nothing from network 0"
    );
}

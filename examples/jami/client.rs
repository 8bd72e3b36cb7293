//! `jami run --data DIR`: the full communicator, driven by JSON lines.
//!
//! Commands are read from stdin, one JSON object per line; events are written to stdout, one
//! JSON object per line. Each command is answered by one `{"event": "reply", "cmd": ...,
//! "ok": true|false, ...}` line (with the command's `"id"` echoed when it has one). The
//! protocol is documented in docs/jami-run.md.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use pamoja::client::media::{AudioSource, VideoConfig};
use pamoja::client::{CallOptions, Client, Config, Events, Settings};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Starts the account of `archive` with its data in `data` (the archive kept there).
pub async fn start(
    archive: &Path,
    bootstrap: &str,
    ice_addr: Option<IpAddr>,
    data: &Path,
) -> Result<(Client, Events)> {
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let kept = data.join("archive.gz");
    if !kept.exists() {
        // Kept durably: a crash mid-copy leaves no half archive to start from next time.
        std::fs::read(archive)
            .and_then(|bytes| pamoja::identity::durable::replace(&kept, &bytes, 0o600))
            .with_context(|| format!("cannot keep the archive in {}", data.display()))?;
    }
    let account = super::open(archive)?;
    let boot: SocketAddr = bootstrap
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {bootstrap}"))?
        .next()
        .ok_or_else(|| anyhow!("cannot resolve {bootstrap}"))?;
    let ice_addr = match ice_addr {
        Some(a) => a,
        None => pamoja::client::net::local_addr_towards(boot)?,
    };
    Ok(Client::start(
        account,
        Config {
            data_dir: data.to_owned(),
            bootstrap: vec![boot],
            ice_addr,
        },
    )
    .await?)
}

/// Runs until SIGTERM, Ctrl-C or `timeout` seconds.
pub async fn run(
    archive: &Path,
    bootstrap: &str,
    ice_addr: Option<IpAddr>,
    data: &Path,
    timeout: Option<f64>,
) -> Result<()> {
    let (client, mut events) = start(archive, bootstrap, ice_addr, data).await?;
    println!(
        "{}",
        json!({"event": "ready", "id": client.jami_id().to_string(),
            "device": client.device_id().to_string()})
    );
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let deadline = timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) if !line.trim().is_empty() => {
                    println!("{}", command(&client, &line).await);
                }
                Ok(Some(_)) => {}
                _ => stdin_open = false,
            },
            ev = events.next() => match ev {
                Some(e) => println!("{}", super::json::event(&e)),
                None => return Ok(()),
            },
            _ = sleep => return Ok(()),
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// A call's media from a command: `"tone"` (Hz) or `"send_wav"` (a 48 kHz 16-bit WAV) to
/// send (default: silence), `"record_wav"` to keep what is heard, `"video": true` for a
/// VP8 test pattern each way.
fn call_options(c: &Json) -> Result<CallOptions> {
    let mut o = CallOptions::default();
    if let Some(hz) = c["tone"].as_f64() {
        o.source = AudioSource::Tone(hz, 0.3);
    }
    if let Some(path) = c["send_wav"].as_str() {
        let samples = pamoja::media::audio::read_wav(Path::new(path))
            .with_context(|| format!("cannot read {path}"))?;
        o.source = AudioSource::Samples(samples);
    }
    if let Some(path) = c["record_wav"].as_str() {
        o.record_wav = Some(path.into());
    }
    let send_video = c["send_video"].as_str().map(PathBuf::from);
    let record_video = c["record_video"].as_str().map(PathBuf::from);
    if let Some(p) = &send_video {
        pamoja::media::y4m::read_file(p, 1)
            .with_context(|| format!("cannot read {}", p.display()))?;
    }
    if c["video"].as_bool() == Some(true) || send_video.is_some() || record_video.is_some() {
        o.video = Some(VideoConfig {
            measure: send_video.is_none(),
            source_file: send_video,
            record_file: record_video,
            ..VideoConfig::default()
        });
    }
    Ok(o)
}

fn field<'a>(c: &'a Json, name: &str) -> Result<&'a str> {
    c.get(name)
        .and_then(Json::as_str)
        .ok_or_else(|| anyhow!("missing string field {name:?}"))
}

/// A string field read as an id (a Jami ID, a conversation, a message, a call).
fn id<T>(c: &Json, name: &str) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    field(c, name)?
        .parse()
        .map_err(|e| anyhow!("field {name:?}: {e}"))
}

/// Runs one command line; the reply object.
async fn command(client: &Client, line: &str) -> Json {
    let parsed: Result<Json> = serde_json::from_str(line).map_err(|e| anyhow!("not JSON: {e}"));
    let (name, id, result) = match parsed {
        Ok(c) => {
            let name = c["cmd"].as_str().unwrap_or_default().to_owned();
            let id = c.get("id").cloned();
            let r = execute(client, &name, &c).await;
            (name, id, r)
        }
        Err(e) => (String::new(), None, Err(e)),
    };
    let mut reply = match result {
        Ok(Json::Object(m)) => Json::Object(m),
        Ok(other) => json!({"result": other}),
        Err(e) => json!({"ok": false, "error": format!("{e:#}")}),
    };
    if let Json::Object(m) = &mut reply {
        m.entry("ok").or_insert(Json::Bool(true));
        m.insert("event".into(), Json::from("reply"));
        m.insert("cmd".into(), Json::from(name));
        if let Some(id) = id {
            m.insert("id".into(), id);
        }
    }
    reply
}

async fn execute(client: &Client, name: &str, c: &Json) -> Result<Json> {
    Ok(match name {
        "contact.add" => {
            json!({"conversation": client.add_contact(&id(c, "to")?).await?.to_string()})
        }
        "contact.accept" => {
            json!({"conversation": client.accept_contact(&id(c, "from")?).await?.to_string()})
        }
        "contact.decline" => {
            client.decline_contact(&id(c, "from")?).await?;
            json!({})
        }
        "contact.remove" => {
            client
                .remove_contact(&id(c, "id")?, c["ban"].as_bool().unwrap_or(false))
                .await?;
            json!({})
        }
        "contact.unban" => {
            client.unban_contact(&id(c, "id")?).await?;
            json!({})
        }
        "contact.list" => {
            let list: Vec<Json> = client
                .contacts()
                .into_iter()
                .map(|k| {
                    json!({"id": k.id.to_string(), "state": k.state.as_str(),
                        "confirmed": k.state.as_str() == "confirmed",
                        "conversation": k.conversation.to_string(), "added": k.added,
                        "presence": k.presence.as_str()})
                })
                .collect();
            json!({"contacts": list})
        }
        "contact.requests" => {
            let list: Vec<Json> = client
                .trust_requests()
                .into_iter()
                .map(|(from, r)| {
                    json!({"from": from.to_string(), "conversation": r.conversation_id,
                        "received": r.received,
                        "name": pamoja::client::instant::vcard_name(&r.payload)})
                })
                .collect();
            json!({"requests": list})
        }
        "conv.list" => {
            let list: Vec<String> = client
                .conversations()
                .iter()
                .map(|c| c.to_string())
                .collect();
            json!({"conversations": list})
        }
        "conv.create" => json!({"conversation": client.create_group().await?.to_string()}),
        "conv.invite" => json!({"commit":
            client.invite(&id(c, "conversation")?, &id(c, "to")?).await?.to_string()}),
        "conv.accept" => {
            client.accept_conversation(&id(c, "conversation")?).await?;
            json!({})
        }
        "conv.leave" => {
            client.leave(&id(c, "conversation")?).await?;
            json!({})
        }
        "conv.members" => {
            let list: Vec<Json> = client
                .members(&id(c, "conversation")?)?
                .into_iter()
                .map(|(uri, role)| json!({"uri": uri.to_string(), "role": role.as_str()}))
                .collect();
            json!({"members": list})
        }
        "conv.send" => json!({"message":
            client.send_message(&id(c, "conversation")?, field(c, "body")?).await?.to_string()}),
        "conv.load" => {
            let last = c["last"].as_u64().unwrap_or(50) as usize;
            let msgs: Vec<Json> = client
                .load(&id(c, "conversation")?, last)?
                .into_iter()
                .map(|e| {
                    let mut j = super::json::event(&e);
                    if let Json::Object(m) = &mut j {
                        m.remove("event");
                    }
                    j
                })
                .collect();
            json!({"messages": msgs})
        }
        "typing" => {
            let on = c["on"]
                .as_bool()
                .ok_or_else(|| anyhow!("missing boolean field \"on\""))?;
            json!({"sent": client.set_typing(&id(c, "conversation")?, on).await?})
        }
        "displayed" => json!({"sent":
            client.set_displayed(&id(c, "conversation")?, &id(c, "message")?).await?}),
        "settings" => {
            let mut s: Settings = client.settings();
            if let Some(v) = c["read_receipts"].as_bool() {
                s.read_receipts = v;
            }
            if let Some(v) = c["typing"].as_bool() {
                s.typing = v;
            }
            if let Some(v) = c["display_name"].as_str() {
                s.display_name = v.to_owned();
            }
            if let Some(v) = c["auto_answer"].as_bool() {
                s.auto_answer = v;
                // Calls answered automatically send and keep what this command says.
                client.set_call_options(call_options(c)?);
            }
            client.set_settings(s.clone()).await?;
            json!({"settings": {"read_receipts": s.read_receipts, "typing": s.typing,
                "display_name": s.display_name, "auto_answer": s.auto_answer}})
        }
        "call" => {
            let o = call_options(c)?;
            let video = o.video.is_some();
            let call = client.place_call(&id(c, "to")?, o).await?.to_string();
            json!({"call": call, "video": video})
        }
        "answer" => {
            client
                .answer_call(&id(c, "call")?, call_options(c)?)
                .await?;
            json!({"call": field(c, "call")?})
        }
        "hangup" => {
            client.hang_up(&id(c, "call")?).await?;
            json!({"call": field(c, "call")?})
        }
        "hold" | "unhold" => {
            client.hold(&id(c, "call")?, name == "hold").await?;
            json!({"call": field(c, "call")?, "hold": name == "hold"})
        }
        "mute" => {
            let muted = c["muted"].as_bool().unwrap_or(true);
            client.mute(&id(c, "call")?, muted).await?;
            json!({"call": field(c, "call")?, "muted": muted})
        }
        "video" => {
            let on = c["video"]
                .as_bool()
                .ok_or_else(|| anyhow!("missing boolean field \"video\""))?;
            client
                .set_video(&id(c, "call")?, call_options(c)?.video.filter(|_| on))
                .await?;
            json!({"call": field(c, "call")?, "video": on})
        }
        "dtmf" => {
            let key = field(c, "key")?;
            let mut chars = key.chars();
            let (Some(k), None) = (chars.next(), chars.next()) else {
                return Err(anyhow!("\"key\" must be one character"));
            };
            client.send_dtmf(&id(c, "call")?, k).await?;
            json!({"call": field(c, "call")?, "key": key})
        }
        "call.list" => {
            let list: Vec<String> = client.calls().iter().map(|c| c.to_string()).collect();
            json!({"calls": list})
        }
        "" => return Err(anyhow!("missing \"cmd\"")),
        other => return Err(anyhow!("unknown command {other:?}")),
    })
}

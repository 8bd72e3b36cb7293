//! The UDP message codec: one msgpack map per datagram (opendht.md §2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use pamoja_identity::msgpack::{self, DecodeError, Kind, Reader};

use crate::infohash::InfoHash;
use crate::value::{Field, Value};

/// User agent this node sends in `v`.
pub const USER_AGENT: &str = "RNG1";
/// Largest value fragment (`MTU`).
pub const FRAGMENT_SIZE: usize = 1280;
/// Values are inlined when fewer than this many...
pub const MAX_INLINE_VALUES: usize = 50;
/// ...and their packed total is below this many bytes; otherwise they are fragmented.
pub const MAX_INLINE_BYTES: usize = 600;
/// Largest fragmented value size accepted.
pub const MAX_FRAGMENTED_SIZE: u64 = 65536 + 32;
/// AF_INET as Linux numbers it in `w`.
pub const WANT_V4: u32 = 2;
/// AF_INET6 as Linux numbers it in `w`.
pub const WANT_V6: u32 = 10;

/// The query methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `ping`
    Ping,
    /// `find`
    Find,
    /// `get`
    Get,
    /// `put`
    Put,
    /// `refresh`
    Refresh,
    /// `listen`
    Listen,
    /// `update` (listen push, protocol version 1)
    Update,
}

impl Method {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Find => "find",
            Self::Get => "get",
            Self::Put => "put",
            Self::Refresh => "refresh",
            Self::Listen => "listen",
            Self::Update => "update",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "ping" => Self::Ping,
            "find" => Self::Find,
            "get" => Self::Get,
            "put" => Self::Put,
            "refresh" => Self::Refresh,
            "listen" => Self::Listen,
            "update" => Self::Update,
            _ => return None,
        })
    }
}

/// A node as listed in `n4`/`n6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node id.
    pub id: InfoHash,
    /// Address and port.
    pub addr: SocketAddr,
}

/// The value of a `where` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhereValue {
    /// Id, ValueType, SeqNum.
    Uint(u64),
    /// OwnerPk (20-byte key id) and UserType (UTF-8).
    Bytes(Vec<u8>),
}

/// A value query: fields to select and equalities to filter on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValueQuery {
    /// Selected fields (empty: whole values).
    pub select: Vec<Field>,
    /// Conjunction of equalities.
    pub filter: Vec<(Field, WhereValue)>,
}

impl ValueQuery {
    /// True when `v` passes every filter.
    pub fn matches(&self, v: &Value) -> bool {
        self.filter.iter().all(|(f, w)| match (f, w) {
            (Field::Id, WhereValue::Uint(x)) => v.id == *x,
            (Field::ValueType, WhereValue::Uint(x)) => u64::from(v.value_type) == *x,
            (Field::SeqNum, WhereValue::Uint(x)) => u64::from(v.seq) == *x,
            (Field::OwnerPk, WhereValue::Bytes(b)) => {
                v.owner_id().is_some_and(|o| o.0[..] == b[..])
            }
            (Field::UserType, WhereValue::Bytes(b)) => v.user_type.as_bytes() == &b[..],
            _ => false,
        })
    }
}

/// One field of a `fileds` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// Id, ValueType, SeqNum.
    Uint(u64),
    /// OwnerPk (the full DER key, or 20 zero bytes) and UserType.
    Bytes(Vec<u8>),
}

/// A field-selection reply: `fields` in order, then one row per value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldReply {
    /// The selected fields, sorted.
    pub fields: Vec<Field>,
    /// One row of `fields.len()` values per matching value.
    pub rows: Vec<Vec<FieldValue>>,
}

impl FieldReply {
    /// Builds the reply to `select` over `values`.
    pub fn build(select: &[Field], values: &[&Value]) -> Self {
        let mut fields = select.to_vec();
        fields.sort();
        fields.dedup();
        let rows = values
            .iter()
            .map(|v| {
                fields
                    .iter()
                    .map(|f| match f {
                        Field::Id => FieldValue::Uint(v.id),
                        Field::ValueType => FieldValue::Uint(u64::from(v.value_type)),
                        Field::SeqNum => FieldValue::Uint(u64::from(v.seq)),
                        Field::OwnerPk => {
                            FieldValue::Bytes(v.owner.clone().unwrap_or_else(|| vec![0; 20]))
                        }
                        Field::UserType => FieldValue::Bytes(v.user_type.as_bytes().to_vec()),
                    })
                    .collect()
            })
            .collect();
        Self { fields, rows }
    }
}

/// A value in `values`: inline, or the size of a value that follows in fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueEntry {
    /// The value itself.
    Inline(Value),
    /// Byte size of a fragmented value.
    Size(u32),
}

/// The body of a query (`a`), reply (`r`) or legacy push (`u`): every key any of them uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Body {
    /// Sender (or replier) node id.
    pub id: InfoHash,
    /// Key of get/put/listen/refresh/update.
    pub key: Option<InfoHash>,
    /// Target of find.
    pub target: Option<InfoHash>,
    /// Value query of get/listen.
    pub query: Option<ValueQuery>,
    /// Wanted address families.
    pub want: Vec<u32>,
    /// Write token.
    pub token: Option<Vec<u8>>,
    /// Listen socket id.
    pub sid: Option<u32>,
    /// Listen protocol version. A listen with `None` is written with `ve = 1` (what OpenDHT
    /// sends); with `Some(0)`, the legacy protocol, without `ve`. Absent on receipt: `None`.
    pub version: Option<u32>,
    /// Values.
    pub values: Vec<ValueEntry>,
    /// Creation time (unix seconds) of announced values.
    pub created: Option<i64>,
    /// Value id (put acknowledgement, refresh).
    pub vid: Option<u64>,
    /// The requester's address as the replier sees it.
    pub seen_addr: Option<IpAddr>,
    /// IPv4 nodes.
    pub nodes4: Vec<NodeInfo>,
    /// IPv6 nodes.
    pub nodes6: Vec<NodeInfo>,
    /// Ids of refreshed values.
    pub refreshed: Vec<u64>,
    /// Ids of expired values.
    pub expired: Vec<u64>,
    /// Field-selection reply.
    pub fields: Option<FieldReply>,
}

/// A fragment of a value (`y = "p"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// Index in the header message's `values`.
    pub index: u32,
    /// Offset of `data` in the value.
    pub offset: u32,
    /// The bytes.
    pub data: Vec<u8>,
}

/// What a message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKind {
    /// A query.
    Query(Method),
    /// A reply.
    Reply,
    /// An error `[code, message]`.
    Error(u16, String),
    /// Value fragments.
    ValueData(Vec<Fragment>),
    /// A legacy (version 0) listen push of refreshed/expired ids (`u`).
    LegacyUpdate,
}

/// One datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Transaction id.
    pub tid: u32,
    /// Network id (0 when absent).
    pub network: u32,
    /// User agent.
    pub agent: Option<String>,
    /// The sender says it is a client (not to be put in routing tables).
    pub client: bool,
    /// What it is.
    pub kind: MessageKind,
    /// Arguments or reply.
    pub body: Body,
}

fn e(s: &str) -> DecodeError {
    DecodeError(s.to_owned())
}

fn read_hash(r: &mut Reader<'_>) -> Result<InfoHash, DecodeError> {
    InfoHash::from_slice(r.bin()?).ok_or_else(|| e("id is not 20 bytes"))
}

fn read_addr(b: &[u8]) -> Result<IpAddr, DecodeError> {
    match b.len() {
        4 => Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Ok(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => Err(e("address is not 4 or 16 bytes")),
    }
}

/// Reads compact node records (26 bytes for IPv4, 38 for IPv6).
pub fn read_nodes(b: &[u8], v6: bool) -> Result<Vec<NodeInfo>, DecodeError> {
    let rec = if v6 { 38 } else { 26 };
    if b.len() % rec != 0 {
        return Err(e("node list length"));
    }
    Ok(b.chunks_exact(rec)
        .filter_map(|c| {
            let id = InfoHash::from_slice(&c[..20])?;
            let ip = read_addr(&c[20..rec - 2]).ok()?;
            let port = u16::from_be_bytes([c[rec - 2], c[rec - 1]]);
            Some(NodeInfo {
                id,
                addr: SocketAddr::new(ip, port),
            })
        })
        .collect())
}

fn read_u64s(r: &mut Reader<'_>) -> Result<Vec<u64>, DecodeError> {
    let n = r.array_len()?;
    (0..n).map(|_| r.uint()).collect()
}

fn read_token(r: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
    match r.peek()? {
        Kind::Array => {
            let n = r.array_len()?;
            (0..n)
                .map(|_| {
                    r.uint()
                        .and_then(|x| u8::try_from(x).map_err(|_| e("token byte")))
                })
                .collect()
        }
        _ => Ok(r.bytes()?.to_vec()),
    }
}

fn read_query(r: &mut Reader<'_>) -> Result<ValueQuery, DecodeError> {
    let mut q = ValueQuery::default();
    let (mut has_s, mut has_w) = (false, false);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "s" => {
                has_s = true;
                for _ in 0..r.array_len()? {
                    if let Some(f) = Field::from_u64(r.uint()?) {
                        q.select.push(f);
                    }
                }
            }
            "w" => {
                has_w = true;
                for _ in 0..r.array_len()? {
                    let (mut field, mut value) = (None, None);
                    for _ in 0..r.map_len()? {
                        match r.str()? {
                            "f" => field = Field::from_u64(r.uint()?),
                            "v" => {
                                value = Some(match r.peek()? {
                                    Kind::Int => WhereValue::Uint(r.uint()?),
                                    _ => WhereValue::Bytes(r.bytes()?.to_vec()),
                                })
                            }
                            _ => r.skip()?,
                        }
                    }
                    if let (Some(f), Some(v)) = (field, value) {
                        q.filter.push((f, v));
                    }
                }
            }
            _ => r.skip()?,
        }
    }
    if !has_s || !has_w {
        return Err(e("query needs s and w"));
    }
    Ok(q)
}

fn read_fields(r: &mut Reader<'_>) -> Result<FieldReply, DecodeError> {
    let mut fields = Vec::new();
    let mut flat = Vec::new();
    for _ in 0..r.map_len()? {
        match r.str()? {
            "f" => {
                for _ in 0..r.array_len()? {
                    fields.push(Field::from_u64(r.uint()?).ok_or_else(|| e("unknown field"))?);
                }
            }
            "v" => {
                for _ in 0..r.array_len()? {
                    flat.push(match r.peek()? {
                        Kind::Int => FieldValue::Uint(r.uint()?),
                        _ => FieldValue::Bytes(r.bytes()?.to_vec()),
                    });
                }
            }
            _ => r.skip()?,
        }
    }
    if fields.is_empty() || flat.len() % fields.len() != 0 {
        return Err(e("field reply shape"));
    }
    let rows = flat
        .chunks(fields.len())
        .map(<[FieldValue]>::to_vec)
        .collect();
    Ok(FieldReply { fields, rows })
}

fn read_body(r: &mut Reader<'_>) -> Result<Body, DecodeError> {
    let mut b = Body::default();
    let mut has_id = false;
    for _ in 0..r.map_len()? {
        if r.peek()? != Kind::Str {
            r.skip()?;
            r.skip()?;
            continue;
        }
        match r.str()? {
            "id" => {
                b.id = read_hash(r)?;
                has_id = true;
            }
            "h" => b.key = Some(read_hash(r)?),
            "target" => b.target = Some(read_hash(r)?),
            "q" => b.query = Some(read_query(r)?),
            "w" => {
                b.want = match r.peek()? {
                    Kind::Array => read_u64s(r)?
                        .into_iter()
                        .filter_map(|x| u32::try_from(x).ok())
                        .collect(),
                    _ => r.bytes()?.iter().map(|&x| u32::from(x)).collect(),
                }
            }
            "token" => b.token = Some(read_token(r)?),
            "sid" => b.sid = Some(u32::try_from(r.uint()?).map_err(|_| e("sid"))?),
            "ve" => b.version = Some(u32::try_from(r.uint()?).map_err(|_| e("ve"))?),
            "values" => {
                for _ in 0..r.array_len()? {
                    match r.peek()? {
                        Kind::Int => {
                            let n = r.uint()?;
                            if n <= MAX_FRAGMENTED_SIZE {
                                b.values.push(ValueEntry::Size(n as u32));
                            }
                        }
                        Kind::Map => {
                            // A value that fails to parse is skipped, as OpenDHT does.
                            let mut probe = r.clone();
                            match Value::unpack(&mut probe) {
                                Ok(v) => {
                                    *r = probe;
                                    b.values.push(ValueEntry::Inline(v));
                                }
                                Err(_) => r.skip()?,
                            }
                        }
                        _ => r.skip()?,
                    }
                }
            }
            "c" => b.created = Some(r.int()?),
            "vid" => b.vid = Some(r.uint()?),
            "sa" => b.seen_addr = read_addr(r.bytes()?).ok(),
            "n4" => b.nodes4 = read_nodes(r.bytes()?, false)?,
            "n6" => b.nodes6 = read_nodes(r.bytes()?, true)?,
            "re" => b.refreshed = read_u64s(r)?,
            "exp" => b.expired = read_u64s(r)?,
            "fileds" => b.fields = Some(read_fields(r)?),
            _ => r.skip()?,
        }
    }
    if !has_id || b.id.is_zero() {
        return Err(e("body without a sender id"));
    }
    Ok(b)
}

fn read_tid(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    match r.peek()? {
        Kind::Int => u32::try_from(r.uint()?).map_err(|_| e("tid")),
        _ => {
            let b = r.bytes()?;
            let b: [u8; 4] = b.try_into().map_err(|_| e("tid size"))?;
            Ok(u32::from_be_bytes(b))
        }
    }
}

impl Message {
    /// A message in network 0, with this node's user agent, not flagged as a client.
    pub fn new(tid: u32, kind: MessageKind, body: Body) -> Self {
        Self {
            tid,
            network: 0,
            agent: None,
            client: false,
            kind,
            body,
        }
    }

    /// The same message in network `network`.
    pub fn in_network(mut self, network: u32) -> Self {
        self.network = network;
        self
    }

    /// Decodes one datagram.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(data);
        let (mut y, mut q, mut tid, mut network, mut agent, mut client) =
            (None, None, None, 0u32, None, false);
        let (mut a, mut rep, mut u, mut err, mut parts) = (None, None, None, None, None);
        for _ in 0..r.map_len()? {
            if r.peek()? != Kind::Str {
                r.skip()?;
                r.skip()?;
                continue;
            }
            match r.str()? {
                "y" => y = Some(r.str()?.to_owned()),
                "q" => q = Some(r.str()?.to_owned()),
                "t" => tid = Some(read_tid(&mut r)?),
                "n" => network = u32::try_from(r.uint()?).map_err(|_| e("network id"))?,
                "v" => agent = Some(String::from_utf8_lossy(r.bytes()?).into_owned()),
                "s" => client = r.bool()?,
                "a" => a = Some(read_body(&mut r)?),
                "r" => rep = Some(read_body(&mut r)?),
                "u" => u = Some(read_body(&mut r)?),
                "e" => {
                    let n = r.array_len()?;
                    let mut code = 0;
                    let mut msg = String::new();
                    for i in 0..n {
                        match i {
                            0 => code = u16::try_from(r.uint()?).map_err(|_| e("error code"))?,
                            1 => msg = String::from_utf8_lossy(r.bytes()?).into_owned(),
                            _ => r.skip()?,
                        }
                    }
                    err = Some((code, msg));
                }
                "p" => {
                    let mut frags = Vec::new();
                    for _ in 0..r.map_len()? {
                        let index = u32::try_from(r.uint()?).map_err(|_| e("fragment index"))?;
                        let (mut offset, mut chunk) = (None, None);
                        for _ in 0..r.map_len()? {
                            match r.str()? {
                                "o" => {
                                    offset =
                                        Some(u32::try_from(r.uint()?).map_err(|_| e("offset"))?)
                                }
                                "d" => chunk = Some(r.bytes()?.to_vec()),
                                _ => r.skip()?,
                            }
                        }
                        if let (Some(offset), Some(data)) = (offset, chunk) {
                            frags.push(Fragment {
                                index,
                                offset,
                                data,
                            });
                        }
                    }
                    parts = Some(frags);
                }
                _ => r.skip()?,
            }
        }
        let tid = tid.ok_or_else(|| e("no tid"))?;
        let (kind, body) = if let Some((code, msg)) = err {
            // An error must say who sends it (`r.id`), as OpenDHT 4.x requires.
            (
                MessageKind::Error(code, msg),
                rep.ok_or_else(|| e("error without r"))?,
            )
        } else if let Some(body) = rep {
            (MessageKind::Reply, body)
        } else if let Some(frags) = parts {
            (MessageKind::ValueData(frags), Body::default())
        } else if let Some(body) = u {
            (MessageKind::LegacyUpdate, body)
        } else {
            if y.as_deref().is_some_and(|y| y != "q") {
                return Err(e("unexpected message type"));
            }
            let method = q
                .as_deref()
                .and_then(Method::from_name)
                .ok_or_else(|| e("unknown query"))?;
            (
                MessageKind::Query(method),
                a.ok_or_else(|| e("query without arguments"))?,
            )
        };
        Ok(Message {
            tid,
            network,
            agent,
            client,
            kind,
            body,
        })
    }

    /// Encodes the message in OpenDHT's key order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        let tail = 3 + u32::from(self.network != 0); // t, y, v, [n]
        match &self.kind {
            MessageKind::Query(m) => {
                msgpack::map(&mut out, 2 + tail);
                msgpack::str(&mut out, "a");
                write_query_args(&mut out, *m, &self.body);
                msgpack::str(&mut out, "q");
                msgpack::str(&mut out, m.name());
                self.write_tail(&mut out, "q");
            }
            MessageKind::Reply => {
                msgpack::map(&mut out, 1 + tail);
                msgpack::str(&mut out, "r");
                write_reply(&mut out, &self.body);
                self.write_tail(&mut out, "r");
            }
            MessageKind::Error(code, msg) => {
                msgpack::map(&mut out, 2 + tail);
                msgpack::str(&mut out, "e");
                msgpack::array(&mut out, 2);
                msgpack::uint(&mut out, u64::from(*code));
                msgpack::str(&mut out, msg);
                msgpack::str(&mut out, "r");
                msgpack::map(&mut out, 1);
                msgpack::str(&mut out, "id");
                msgpack::bin(&mut out, &self.body.id.0);
                self.write_tail(&mut out, "e");
            }
            MessageKind::LegacyUpdate => {
                msgpack::map(&mut out, 1 + tail);
                msgpack::str(&mut out, "u");
                write_reply(&mut out, &self.body);
                self.write_tail(&mut out, "r");
            }
            MessageKind::ValueData(frags) => {
                msgpack::map(&mut out, 3 + u32::from(self.network != 0));
                if self.network != 0 {
                    msgpack::str(&mut out, "n");
                    msgpack::uint(&mut out, u64::from(self.network));
                }
                msgpack::str(&mut out, "y");
                msgpack::str(&mut out, "p");
                msgpack::str(&mut out, "t");
                msgpack::uint(&mut out, u64::from(self.tid));
                msgpack::str(&mut out, "p");
                msgpack::map(&mut out, frags.len() as u32);
                for f in frags {
                    msgpack::uint(&mut out, u64::from(f.index));
                    msgpack::map(&mut out, 2);
                    msgpack::str(&mut out, "o");
                    msgpack::uint(&mut out, u64::from(f.offset));
                    msgpack::str(&mut out, "d");
                    msgpack::bin(&mut out, &f.data);
                }
            }
        }
        out
    }

    fn write_tail(&self, out: &mut Vec<u8>, y: &str) {
        msgpack::str(out, "t");
        msgpack::uint(out, u64::from(self.tid));
        msgpack::str(out, "y");
        msgpack::str(out, y);
        msgpack::str(out, "v");
        msgpack::str(out, self.agent.as_deref().unwrap_or(USER_AGENT));
        if self.network != 0 {
            msgpack::str(out, "n");
            msgpack::uint(out, u64::from(self.network));
        }
    }
}

fn write_values(out: &mut Vec<u8>, values: &[ValueEntry]) {
    msgpack::array(out, values.len() as u32);
    for v in values {
        match v {
            ValueEntry::Inline(v) => v.pack(out),
            ValueEntry::Size(n) => msgpack::uint(out, u64::from(*n)),
        }
    }
}

fn write_query(out: &mut Vec<u8>, q: &ValueQuery) {
    msgpack::map(out, 2);
    msgpack::str(out, "s");
    msgpack::array(out, q.select.len() as u32);
    for f in &q.select {
        msgpack::uint(out, *f as u64);
    }
    msgpack::str(out, "w");
    msgpack::array(out, q.filter.len() as u32);
    for (f, v) in &q.filter {
        msgpack::map(out, 2);
        msgpack::str(out, "f");
        msgpack::uint(out, *f as u64);
        msgpack::str(out, "v");
        match v {
            WhereValue::Uint(x) => msgpack::uint(out, *x),
            WhereValue::Bytes(b) => msgpack::bin(out, b),
        }
    }
}

/// A key and the writer of its value.
type Entry<'a> = (&'static str, Box<dyn Fn(&mut Vec<u8>) + 'a>);

/// Query arguments in the order OpenDHT emits them.
fn write_query_args(out: &mut Vec<u8>, m: Method, b: &Body) {
    let mut entries: Vec<Entry<'_>> = vec![("id", Box::new(|o| msgpack::bin(o, &b.id.0)))];
    let key = |o: &mut Vec<u8>| msgpack::bin(o, &b.key.unwrap_or_default().0);
    let token = |o: &mut Vec<u8>| msgpack::bin(o, b.token.as_deref().unwrap_or(&[]));
    match m {
        Method::Ping => {}
        Method::Find => {
            entries.push((
                "target",
                Box::new(|o| msgpack::bin(o, &b.target.unwrap_or_default().0)),
            ));
            if !b.want.is_empty() {
                entries.push(("w", Box::new(|o| write_want(o, &b.want))));
            }
        }
        Method::Get => {
            entries.push(("h", Box::new(key)));
            if let Some(q) = &b.query {
                entries.push(("q", Box::new(move |o| write_query(o, q))));
            }
            if !b.want.is_empty() {
                entries.push(("w", Box::new(|o| write_want(o, &b.want))));
            }
        }
        Method::Put => {
            entries.push(("h", Box::new(key)));
            entries.push(("values", Box::new(|o| write_values(o, &b.values))));
            if let Some(c) = b.created {
                entries.push(("c", Box::new(move |o| msgpack::int(o, c))));
            }
            entries.push(("token", Box::new(token)));
        }
        Method::Refresh => {
            entries.push(("h", Box::new(key)));
            entries.push(("vid", Box::new(|o| msgpack::uint(o, b.vid.unwrap_or(0)))));
            entries.push(("token", Box::new(token)));
        }
        Method::Listen => {
            // Version 0 is the legacy protocol, which has no `ve` at all.
            if b.version != Some(0) {
                entries.push((
                    "ve",
                    Box::new(|o| msgpack::uint(o, u64::from(b.version.unwrap_or(1)))),
                ));
            }
            entries.push(("h", Box::new(key)));
            entries.push(("token", Box::new(token)));
            entries.push((
                "sid",
                Box::new(|o| msgpack::uint(o, u64::from(b.sid.unwrap_or(0)))),
            ));
            if let Some(q) = &b.query {
                entries.push(("q", Box::new(move |o| write_query(o, q))));
            }
        }
        Method::Update => {
            if !b.refreshed.is_empty() || !b.expired.is_empty() {
                entries.push((
                    "sid",
                    Box::new(|o| msgpack::uint(o, u64::from(b.sid.unwrap_or(0)))),
                ));
                if b.token.is_some() {
                    entries.push(("token", Box::new(token)));
                }
                if !b.refreshed.is_empty() {
                    entries.push(("re", Box::new(|o| write_u64s(o, &b.refreshed))));
                } else {
                    entries.push(("exp", Box::new(|o| write_u64s(o, &b.expired))));
                }
            } else {
                entries.push(("ve", Box::new(|o| msgpack::uint(o, 1))));
                entries.push(("h", Box::new(key)));
                entries.push((
                    "sid",
                    Box::new(|o| msgpack::uint(o, u64::from(b.sid.unwrap_or(0)))),
                ));
                entries.push(("values", Box::new(|o| write_values(o, &b.values))));
                if let Some(c) = b.created {
                    entries.push(("c", Box::new(move |o| msgpack::int(o, c))));
                }
                entries.push(("token", Box::new(token)));
            }
        }
    }
    msgpack::map(out, entries.len() as u32);
    for (k, w) in entries {
        msgpack::str(out, k);
        w(out);
    }
}

fn write_want(out: &mut Vec<u8>, want: &[u32]) {
    msgpack::array(out, want.len() as u32);
    for w in want {
        msgpack::uint(out, u64::from(*w));
    }
}

fn write_u64s(out: &mut Vec<u8>, v: &[u64]) {
    msgpack::array(out, v.len() as u32);
    for x in v {
        msgpack::uint(out, *x);
    }
}

/// Writes compact node records as one msgpack `bin`.
pub fn write_nodes(out: &mut Vec<u8>, nodes: &[NodeInfo]) {
    let mut buf = Vec::with_capacity(nodes.len() * 38);
    for n in nodes {
        buf.extend_from_slice(&n.id.0);
        match n.addr.ip() {
            IpAddr::V4(a) => buf.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => buf.extend_from_slice(&a.octets()),
        }
        buf.extend_from_slice(&n.addr.port().to_be_bytes());
    }
    msgpack::bin(out, &buf);
}

/// Reply (and legacy push) keys.
fn write_reply(out: &mut Vec<u8>, b: &Body) {
    let n = 1
        + u32::from(b.seen_addr.is_some())
        + u32::from(!b.nodes4.is_empty())
        + u32::from(!b.nodes6.is_empty())
        + u32::from(b.token.is_some())
        + u32::from(!b.values.is_empty() || b.fields.is_some())
        + u32::from(b.vid.is_some())
        + u32::from(!b.refreshed.is_empty())
        + u32::from(!b.expired.is_empty());
    msgpack::map(out, n);
    msgpack::str(out, "id");
    msgpack::bin(out, &b.id.0);
    if let Some(sa) = b.seen_addr {
        msgpack::str(out, "sa");
        match sa {
            IpAddr::V4(a) => msgpack::bin(out, &a.octets()),
            IpAddr::V6(a) => msgpack::bin(out, &a.octets()),
        }
    }
    if !b.nodes4.is_empty() {
        msgpack::str(out, "n4");
        write_nodes(out, &b.nodes4);
    }
    if !b.nodes6.is_empty() {
        msgpack::str(out, "n6");
        write_nodes(out, &b.nodes6);
    }
    if let Some(t) = &b.token {
        msgpack::str(out, "token");
        msgpack::bin(out, t);
    }
    if let Some(f) = &b.fields {
        msgpack::str(out, "fileds");
        msgpack::map(out, 2);
        msgpack::str(out, "f");
        msgpack::array(out, f.fields.len() as u32);
        for x in &f.fields {
            msgpack::uint(out, *x as u64);
        }
        msgpack::str(out, "v");
        msgpack::array(out, f.rows.iter().map(Vec::len).sum::<usize>() as u32);
        for row in &f.rows {
            for (field, fv) in f.fields.iter().zip(row) {
                match fv {
                    FieldValue::Uint(x) => msgpack::uint(out, *x),
                    // The user type goes as str, the owner key as bin.
                    FieldValue::Bytes(b) if *field == Field::UserType => {
                        msgpack::str(out, &String::from_utf8_lossy(b))
                    }
                    FieldValue::Bytes(b) => msgpack::bin(out, b),
                }
            }
        }
    } else if !b.values.is_empty() {
        msgpack::str(out, "values");
        write_values(out, &b.values);
    }
    if let Some(vid) = b.vid {
        msgpack::str(out, "vid");
        msgpack::uint(out, vid);
    }
    if !b.refreshed.is_empty() {
        msgpack::str(out, "re");
        write_u64s(out, &b.refreshed);
    }
    if !b.expired.is_empty() {
        msgpack::str(out, "exp");
        write_u64s(out, &b.expired);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> InfoHash {
        InfoHash([b; 20])
    }

    #[test]
    fn ping_and_pong_match_opendht_bytes() {
        // Captured from OpenDHT 2.4.12 with network id 42 (opendht.md §2.5).
        let ping = Message::new(
            0x12da2ad7,
            MessageKind::Query(Method::Ping),
            Body {
                id: id(0xab),
                ..Body::default()
            },
        )
        .in_network(42);
        let mut expected = vec![0x86, 0xa1, b'a', 0x81, 0xa2, b'i', b'd', 0xc4, 0x14];
        expected.extend([0xab; 20]);
        expected.extend([
            0xa1, b'q', 0xa4, b'p', b'i', b'n', b'g', 0xa1, b't', 0xce, 0x12, 0xda, 0x2a, 0xd7,
        ]);
        expected.extend([
            0xa1, b'y', 0xa1, b'q', 0xa1, b'v', 0xa4, b'R', b'N', b'G', b'1', 0xa1, b'n', 0x2a,
        ]);
        assert_eq!(ping.encode().len(), 57);
        assert_eq!(ping.encode(), expected);
        let with_agent = |m: &Message| Message {
            agent: Some(USER_AGENT.into()),
            ..m.clone()
        };
        assert_eq!(Message::decode(&expected).unwrap(), with_agent(&ping));

        let pong = Message {
            kind: MessageKind::Reply,
            body: Body {
                id: id(0xcd),
                seen_addr: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                ..Body::default()
            },
            ..ping.clone()
        };
        let mut expected = vec![0x85, 0xa1, b'r', 0x82, 0xa2, b'i', b'd', 0xc4, 0x14];
        expected.extend([0xcd; 20]);
        expected.extend([0xa2, b's', b'a', 0xc4, 0x04, 0x7f, 0x00, 0x00, 0x01]);
        expected.extend([
            0xa1, b't', 0xce, 0x12, 0xda, 0x2a, 0xd7, 0xa1, b'y', 0xa1, b'r',
        ]);
        expected.extend([0xa1, b'v', 0xa4, b'R', b'N', b'G', b'1', 0xa1, b'n', 0x2a]);
        assert_eq!(pong.encode().len(), 59);
        assert_eq!(pong.encode(), expected);
        assert_eq!(Message::decode(&expected).unwrap(), with_agent(&pong));
    }

    #[test]
    fn every_kind_round_trips() {
        let node4 = NodeInfo {
            id: id(1),
            addr: "127.0.0.1:4222".parse().unwrap(),
        };
        let node6 = NodeInfo {
            id: id(2),
            addr: "[::1]:4223".parse().unwrap(),
        };
        let query = ValueQuery {
            select: vec![Field::Id, Field::SeqNum],
            filter: vec![(Field::ValueType, WhereValue::Uint(3))],
        };
        let value = Value {
            id: 9,
            ..Value::new("hello")
        };
        let bodies = [
            (
                MessageKind::Query(Method::Find),
                Body {
                    id: id(3),
                    target: Some(id(4)),
                    want: vec![WANT_V4, WANT_V6],
                    ..Body::default()
                },
            ),
            (
                MessageKind::Query(Method::Get),
                Body {
                    id: id(3),
                    key: Some(id(5)),
                    query: Some(query.clone()),
                    ..Body::default()
                },
            ),
            (
                MessageKind::Query(Method::Put),
                Body {
                    id: id(3),
                    key: Some(id(5)),
                    values: vec![ValueEntry::Inline(value.clone()), ValueEntry::Size(3000)],
                    created: Some(1_700_000_000),
                    token: Some(vec![7; 32]),
                    ..Body::default()
                },
            ),
            (
                MessageKind::Query(Method::Refresh),
                Body {
                    id: id(3),
                    key: Some(id(5)),
                    vid: Some(9),
                    token: Some(vec![1; 32]),
                    ..Body::default()
                },
            ),
            (
                MessageKind::Query(Method::Listen),
                Body {
                    id: id(3),
                    key: Some(id(5)),
                    version: Some(1),
                    sid: Some(77),
                    token: Some(vec![1; 32]),
                    ..Body::default()
                },
            ),
            (
                MessageKind::Query(Method::Update),
                Body {
                    id: id(3),
                    sid: Some(77),
                    token: Some(vec![1; 32]),
                    expired: vec![9, 10],
                    ..Body::default()
                },
            ),
            (
                MessageKind::Reply,
                Body {
                    id: id(6),
                    seen_addr: Some("::1".parse().unwrap()),
                    nodes4: vec![node4],
                    nodes6: vec![node6],
                    token: Some(vec![2; 32]),
                    fields: Some(FieldReply {
                        fields: vec![Field::Id, Field::SeqNum],
                        rows: vec![vec![FieldValue::Uint(9), FieldValue::Uint(0)]],
                    }),
                    ..Body::default()
                },
            ),
            (
                MessageKind::Reply,
                Body {
                    id: id(6),
                    values: vec![ValueEntry::Inline(value.clone())],
                    vid: Some(9),
                    ..Body::default()
                },
            ),
            (
                MessageKind::Error(401, "Put with wrong token".into()),
                Body {
                    id: id(6),
                    ..Body::default()
                },
            ),
        ];
        for (kind, body) in bodies {
            let m = Message::new(5, kind, body);
            let back = Message::decode(&m.encode()).unwrap();
            assert_eq!(back.kind, m.kind);
            assert_eq!(back.body, m.body, "{:?}", m.kind);
        }
        let frag = Message::new(
            8,
            MessageKind::ValueData(vec![Fragment {
                index: 1,
                offset: 1280,
                data: vec![3; 100],
            }]),
            Body::default(),
        )
        .in_network(7);
        assert_eq!(Message::decode(&frag.encode()).unwrap(), frag);
    }

    #[test]
    fn malformed_messages_are_errors() {
        let m = Message::new(
            1,
            MessageKind::Query(Method::Get),
            Body {
                id: id(3),
                key: Some(id(5)),
                ..Body::default()
            },
        );
        let bytes = m.encode();
        for n in 0..bytes.len() {
            assert!(Message::decode(&bytes[..n]).is_err());
        }
        // A zero sender id is refused.
        let zero = Message {
            body: Body {
                id: InfoHash::default(),
                ..m.body.clone()
            },
            ..m.clone()
        };
        assert!(Message::decode(&zero.encode()).is_err());
        assert!(Message::decode(&[0xc1]).is_err());
        // Found by fuzzing: an error without `r` has no sender id and is refused.
        let no_r = [
            0x83, 0xa1, b'e', 0x92, 0xcd, 0x01, 0x91, 0xa1, b'x', 0xa1, b't', 0x01, 0xa1, b'y',
            0xa1, b'e',
        ];
        assert!(Message::decode(&no_r).is_err());
        let artifact = [
            0x86, 0x44, 0x0, 0x0, 0xa1, 0xaa, 0xa1, 0x65, 0x99, 0x2c, 0xa0, 0x82, 0xd9, 0x0, 0x7e,
            0x0, 0xa1, 0xaa, 0xa1, 0x65, 0x3b, 0x0, 0x0, 0xa1, 0x71, 0x7e, 0x0, 0xa1, 0xaa, 0x74,
            0x0, 0xa1, 0x74, 0x0, 0xa1, 0x65, 0x32, 0x0, 0xfe, 0x4, 0x1d,
        ];
        if let Ok(m) = Message::decode(&artifact) {
            Message::decode(&m.encode()).unwrap();
        }
    }
}

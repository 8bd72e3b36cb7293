//! The media ICE session of a call: one UDP component per RTP and per RTCP flow of each
//! stream, numbered across streams as jamid does (audio RTP 1, audio RTCP 2, video RTP 3,
//! video RTCP 4).
//!
//! ```no_run
//! # async fn demo(answer_ice: pamoja_ice::candidate::IceMessage) -> Result<(), pamoja_ice::session::IceError> {
//! use pamoja_ice::agent::Role;
//! use pamoja_ice::media::MediaSession;
//! use pamoja_ice::session::Options;
//!
//! // An audio-only call: two components, sockets on the lab address.
//! let opts = Options::udp(vec!["10.0.0.1:0".parse().unwrap()]);
//! let session = MediaSession::gather(Role::Controlling, opts, 2).await?;
//! let offer_ice = session.local_description().clone(); // into the SDP offer
//! let mut media = session.connect(answer_ice).await?;
//! let rtp = media.component(1).unwrap();
//! rtp.send(b"an SRTP packet").await?;
//! # let _ = offer_ice; Ok(()) }
//! ```
//!
//! Each component is a [`Session`] of its own: its own sockets (so a datagram's socket says
//! which component it belongs to), its own agent and checks, all answering to the same
//! credentials, which is how pjnath's single session with several components looks from the
//! wire. The session is connected once every component has a selected pair: pjnath does not
//! complete while a component with candidates is left unchecked.

use crate::agent::{Credentials, Role};
use crate::candidate::IceMessage;
use crate::session::{Connection, IceError, Options, Session};

/// Components a media session may hold: 2 per stream, and jamid offers at most a few streams.
pub const MAX_COMPONENTS: u32 = 16;

/// The gathered components of a call's media, before the peer's answer.
pub struct MediaSession {
    sessions: Vec<Session>,
    description: IceMessage,
}

/// The connected components of a call's media.
pub struct MediaConnection {
    components: Vec<Connection>,
}

impl MediaSession {
    /// Gathers `components` components (1 to [`MAX_COMPONENTS`]) with `opts` each: host
    /// candidates on `opts.bind` (a socket per component and address), and the STUN and
    /// TURN candidates `opts` asks for. The components share fresh credentials unless
    /// `opts.credentials` gives some.
    pub async fn gather(role: Role, opts: Options, components: u32) -> Result<Self, IceError> {
        if components == 0 || components > MAX_COMPONENTS {
            return Err(IceError::NoCandidates);
        }
        let credentials = opts.credentials.clone().unwrap_or_else(Credentials::random);
        // A call's media: nominate as soon as nothing better is left to check.
        let mut opts = opts;
        opts.config.nominate_when_settled = true;
        let mut sessions = Vec::with_capacity(components as usize);
        let mut candidates = Vec::new();
        for component in 1..=components {
            let opts = Options {
                component,
                credentials: Some(credentials.clone()),
                ..opts.clone()
            };
            let s = Session::gather(role, opts).await?;
            candidates.extend(s.local_description().candidates.iter().cloned());
            sessions.push(s);
        }
        Ok(Self {
            sessions,
            description: IceMessage {
                ufrag: credentials.ufrag,
                pwd: credentials.pwd,
                candidates,
            },
        })
    }

    /// Our credentials and the candidates of every component, for the SDP.
    pub fn local_description(&self) -> &IceMessage {
        &self.description
    }

    /// How many components there are.
    pub fn components(&self) -> u32 {
        self.sessions.len() as u32
    }

    /// Keeps the first `components` components and closes the others: the streams the
    /// peer refused at the end of the SDP (a video section at port 0) must not be checked,
    /// or the session would wait for pairs that never come.
    pub fn truncate(&mut self, components: u32) {
        self.sessions.truncate(components.max(1) as usize);
        let keep = self.sessions.len() as u32;
        self.description.candidates.retain(|c| c.component <= keep);
    }

    /// Runs every component's checks against the peer's credentials and candidates (all
    /// components' candidates in one list, told apart by their component ids) until each
    /// has a selected pair. Fails as soon as one component fails.
    pub async fn connect(self, remote: IceMessage) -> Result<MediaConnection, IceError> {
        let tasks: Vec<_> = self
            .sessions
            .into_iter()
            .map(|s| tokio::spawn(s.connect(remote.clone())))
            .collect();
        let mut components = Vec::with_capacity(tasks.len());
        let mut failure = None;
        for t in tasks {
            match t.await {
                Ok(Ok(c)) => components.push(c),
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => failure = failure.or(Some(IceError::Closed)),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(MediaConnection { components }),
        }
    }
}

impl MediaConnection {
    /// The connection of component `id` (1-based, as in the SDP).
    pub fn component(&mut self, id: u32) -> Option<&mut Connection> {
        let i = usize::try_from(id.checked_sub(1)?).ok()?;
        self.components.get_mut(i)
    }

    /// How many components there are.
    pub fn len(&self) -> u32 {
        self.components.len() as u32
    }

    /// Whether there are none (never, once connected).
    pub fn is_empty(&self) -> bool {
        self.components.is_empty()
    }

    /// The components' connections, component 1 first.
    pub fn into_components(self) -> Vec<Connection> {
        self.components
    }
}

//! # pamoja-media: the media of Jami calls
//!
//! A Jami call is a SIP dialog on a `sip` channel between two devices (see pamoja-channel)
//! whose SDP offer and answer set up a second, UDP, ICE session and SRTP keys; audio (Opus)
//! and video (VP8, H.264) then flow as SRTP over it, with plain RTCP beside them. This crate
//! holds the pieces of that call path as pure values and state machines, fed with bytes
//! and giving bytes back, with no I/O of their own:
//!
//! * [`audio`]: Opus frames (libopus), tones, WAV files, and measurements of what was heard;
//! * [`dialog`]: the SIP dialog of a call (INVITE, answer, ACK, BYE, CANCEL, re-INVITE,
//!   INFO) as a state machine: messages in, messages and events out;
//! * [`control`]: the INFO bodies jamid exchanges (keyframe requests, recording state, DTMF);
//! * [`sdes`]: the `a=crypto` lines that carry each side's SRTP master key;
//! * [`srtp`]: SRTP protect and unprotect (AES-CM-128, HMAC-SHA1 80 or 32), with the
//!   replay window, and counters of every refused packet;
//! * [`rtp`]: RTP packets, read from a peer without trusting it, and written;
//! * [`sdp`]: offers and answers as jamid writes and reads them, and its codec choice;
//! * [`negotiate`]: offer and answer by jamid's rules, and what each stream ends up with
//!   (codec to send with, keys both ways, the peer's candidates by global component);
//! * [`rtcp`]: RTCP sender and receiver reports and REMB, as jamid reads and writes them
//!   (plain, on their own ICE component);
//! * [`stats`]: a receiver's view of one source (RFC 3550 appendix A): extended sequence
//!   numbers, loss, jitter, the report block it sends, and round-trip times from reports;
//! * [`stream`]: one negotiated stream's RTP session: SRTP out and in, sender and receiver
//!   reports, and the figures of a call (packets, bytes, loss, jitter, what the peer got);
//! * [`jitter`]: an audio jitter buffer that reorders, drops late packets and marks the
//!   frames to conceal;
//! * [`bitrate`]: video bitrate adaptation within 200 kb/s - 6 Mb/s from receiver reports
//!   and jamid's REMB signals;
//! * [`pacer`]: a video stream's packets spread over time at its bitrate, and key-frame
//!   requests at most once a second;
//! * [`video`]: VP8 encoding and decoding (libvpx) of I420 pictures, a test pattern, PSNR;
//! * [`vp8`]: VP8 over RTP (RFC 7741): descriptors, frames split into packets and put back
//!   together, losses turned into key-frame requests;
//! * [`y4m`]: raw video files (YUV4MPEG2) to send pictures from and record them to.
//!
//! The I/O around these (the media ICE session of pamoja-ice, the call tasks of
//! pamoja-client) lives in those crates.
//!
//! Everything read from a peer is parsed without panicking: a malformed packet is a `None`
//! or an error, and costs nothing else.
//!
//! # The drive loop
//!
//! A call's dialog and each of its streams are state machines; pamoja-client's call task
//! drives them with the `sip` channel, the media ICE components and the clock:
//!
//! ```text
//! let mut dialog = Dialog::invite_with_random(endpoint, offer_sdp, now, OsRandom);
//! loop {
//!     while let Some(m) = dialog.poll_transmit() { sip_channel.send(m.to_bytes()) }
//!     while let Some(e) = dialog.poll_event() { /* ringing, answered (SDP), offer, info, ended */ }
//!     // wait for a SIP message, or until dialog.poll_timeout()
//!     dialog.handle(&message, now);
//!     dialog.handle_timeout(now);
//! }
//! // Once answered: negotiate::answered(offer, answer) gives each stream its codecs and
//! // keys; a MediaStream protects what an encoder makes and unprotects what comes in.
//! ```
// The one exception is `video`, the libvpx bindings' callers.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod audio;
pub mod bitrate;
pub mod control;
pub mod dialog;
pub mod jitter;
pub mod negotiate;
pub mod pacer;
pub mod rtcp;
pub mod rtp;
pub mod sdes;
pub mod sdp;
pub mod srtp;
pub mod stats;
pub mod stream;
#[allow(unsafe_code)]
pub mod video;
pub mod vp8;
pub mod y4m;

pub use rtp::RtpPacket;
pub use sdes::Crypto;
pub use srtp::{MasterKey, Srtp, SrtpError, SrtpStats, Suite};

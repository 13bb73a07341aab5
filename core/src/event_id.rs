//! The canonical wire form of an event id (what goes on the SSE `id:` line and
//! comes back in `Last-Event-ID`).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};
use crate::hash::Fnv1a;

/// A position in a session's event log: the stream an event was sent on and
/// its per-session `seq`.
///
/// `seq` 0 is the start of a stream: `events_after(EventId::start(s))`
/// replays stream `s` from its first retained event.
///
/// # Wire form
///
/// `"{seq}.{stream}.{tag}"`, where `stream` is the stream id in unpadded
/// base64url and `tag` is 16 lowercase hex digits of a 64-bit FNV-1a hash over
/// the session id, the stream id and the seq. The string uses only
/// `[0-9A-Za-z._-]`, so it is safe on an SSE `id:` line and in an HTTP header.
///
/// The tag binds an id to its session: [`EventId::parse`] with any other
/// session id, or of an id whose seq, stream or tag was altered, fails with
/// `InvalidInput`, so a foreign or tampered id replays nothing. The tag is a
/// checksum, not a secret: the session id remains the credential.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventId {
    /// The stream the event belongs to.
    pub stream_id: String,
    /// The per-session sequence number (0 = before the first event).
    pub seq: u64,
}

impl EventId {
    /// The position of event `seq` on `stream_id`.
    pub fn new(stream_id: impl Into<String>, seq: u64) -> EventId {
        EventId {
            stream_id: stream_id.into(),
            seq,
        }
    }

    /// The start of `stream_id`: replaying after it yields the whole stream.
    pub fn start(stream_id: impl Into<String>) -> EventId {
        EventId::new(stream_id, 0)
    }

    /// The wire string of this position in `session_id`.
    pub fn format(&self, session_id: &str) -> String {
        let stream = URL_SAFE_NO_PAD.encode(self.stream_id.as_bytes());
        let tag = tag(session_id, &self.stream_id, self.seq);
        format!("{}.{}.{:016x}", self.seq, stream, tag)
    }

    /// Parse a wire string that `session_id` handed out. Anything else —
    /// malformed, from another session, or altered — is `InvalidInput`.
    pub fn parse(wire: &str, session_id: &str) -> Result<EventId> {
        let malformed = || {
            Error::invalid(format!(
                "malformed event id {:?}: expected \"SEQ.STREAM.TAG\"",
                truncate(wire)
            ))
        };
        let mut parts = wire.split('.');
        let (Some(seq), Some(stream), Some(tag_hex), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        if seq.is_empty()
            || seq.len() > 20
            || !seq.bytes().all(|b| b.is_ascii_digit())
            || (seq.len() > 1 && seq.starts_with('0'))
            || tag_hex.len() != 16
            || !tag_hex
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(malformed());
        }
        let seq: u64 = seq.parse().map_err(|_| malformed())?;
        let stream_bytes = URL_SAFE_NO_PAD.decode(stream).map_err(|_| malformed())?;
        let stream_id = String::from_utf8(stream_bytes).map_err(|_| malformed())?;
        let tag_value = u64::from_str_radix(tag_hex, 16).map_err(|_| malformed())?;
        if tag_value != tag(session_id, &stream_id, seq) {
            return Err(Error::invalid(format!(
                "event id {:?} does not belong to this session (foreign or altered)",
                truncate(wire)
            )));
        }
        crate::validate::stream_id(&stream_id)?;
        Ok(EventId { stream_id, seq })
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.stream_id, self.seq)
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// 64-bit FNV-1a over `session 0xFF stream 0xFF seq(le)`. 0xFF never occurs
/// in UTF-8, so the fields cannot run into each other.
fn tag(session_id: &str, stream_id: &str, seq: u64) -> u64 {
    Fnv1a::new()
        .write(session_id.as_bytes())
        .write(&[0xff])
        .write(stream_id.as_bytes())
        .write(&[0xff])
        .write(&seq.to_le_bytes())
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn round_trips_any_stream() {
        for stream in [
            "_GET_stream",
            "1",
            "req-42",
            "ünïcødé/ stream:with=stuff",
            "a.b.c",
        ] {
            for seq in [0, 1, 999, u64::MAX] {
                let id = EventId::new(stream, seq);
                let wire = id.format("sess-1");
                assert!(
                    wire.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                    "{wire}"
                );
                assert_eq!(EventId::parse(&wire, "sess-1").unwrap(), id);
            }
        }
    }

    #[test]
    fn foreign_and_tampered_ids_are_rejected() {
        let wire = EventId::new("_GET_stream", 7).format("session-a");
        let foreign = EventId::parse(&wire, "session-b").unwrap_err();
        assert_eq!(foreign.kind(), ErrorKind::InvalidInput);

        let bumped = wire.replacen('7', "8", 1);
        assert!(EventId::parse(&bumped, "session-a").is_err());

        let other_stream = format!(
            "7.{}.{}",
            URL_SAFE_NO_PAD.encode("1"),
            wire.rsplit('.').next().unwrap()
        );
        assert!(EventId::parse(&other_stream, "session-a").is_err());

        for bad in [
            "",
            "7",
            "7.x",
            "07.X0dFVF9zdHJlYW0.0000000000000000",
            "-1.X0dFVF9zdHJlYW0.0000000000000000",
            "7.!!!.0000000000000000",
            "7.X0dFVF9zdHJlYW0.ABCDEF0000000000",
            "7.X0dFVF9zdHJlYW0.00.00",
            "99999999999999999999999.X0dFVF9zdHJlYW0.0000000000000000",
        ] {
            let err = EventId::parse(bad, "session-a").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}

//! Store options and the store URL.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::validate;

/// Options common to every backend. Each is also a URL query parameter
/// (`?ttl=30m&max_events_per_session=1000&max_payload_bytes=1048576&max_sessions=10000`);
/// a parameter in the URL wins over the value set here.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Sliding session TTL (`ttl`, default 30 min). Durations in the URL take
    /// a unit: `500ms`, `90s`, `30m`, `2h`, `7d`.
    pub ttl: Duration,
    /// Events kept per session; older ones are trimmed on append
    /// (`max_events_per_session`, default 1000).
    pub max_events_per_session: u64,
    /// Largest JSON payload of an event, a state value or a session's
    /// metadata, in bytes (`max_payload_bytes`, default 1 MiB).
    pub max_payload_bytes: usize,
    /// Most live sessions; creating one more is `LimitExceeded`
    /// (`max_sessions`, default unlimited).
    pub max_sessions: Option<u64>,
    /// How often a [`crate::Subscription`] re-reads the log while waiting,
    /// to see appends by other processes and expiry (`poll_interval`,
    /// default 250 ms). Appends through the same store wake it at once.
    pub poll_interval: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            ttl: Duration::from_secs(30 * 60),
            max_events_per_session: 1000,
            max_payload_bytes: 1024 * 1024,
            max_sessions: None,
            poll_interval: Duration::from_millis(250),
        }
    }
}

impl StoreOptions {
    /// Set the sliding TTL.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Set the events kept per session.
    pub fn with_max_events_per_session(mut self, n: u64) -> Self {
        self.max_events_per_session = n;
        self
    }

    /// Set the payload limit.
    pub fn with_max_payload_bytes(mut self, n: usize) -> Self {
        self.max_payload_bytes = n;
        self
    }

    /// Set (or lift, with `None`) the session limit.
    pub fn with_max_sessions(mut self, n: Option<u64>) -> Self {
        self.max_sessions = n;
        self
    }

    /// Set the subscription poll interval.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Check every value's range.
    pub fn validate(&self) -> Result<()> {
        validate::ttl_ms(duration_ms(self.ttl))?;
        if self.max_events_per_session == 0 || self.max_events_per_session > i64::MAX as u64 {
            return Err(Error::invalid("max_events_per_session must be at least 1"));
        }
        if self.max_payload_bytes == 0 || self.max_payload_bytes > 256 * 1024 * 1024 {
            return Err(Error::invalid(
                "max_payload_bytes must be 1 byte to 256 MiB",
            ));
        }
        if self.poll_interval < Duration::from_millis(1)
            || self.poll_interval > Duration::from_secs(3600)
        {
            return Err(Error::invalid("poll_interval must be 1 ms to 1 h"));
        }
        if self.max_sessions == Some(0) {
            return Err(Error::invalid("max_sessions must be at least 1"));
        }
        Ok(())
    }

    /// The TTL in milliseconds.
    pub fn ttl_ms(&self) -> u64 {
        duration_ms(self.ttl)
    }

    /// The limits a backend enforces itself.
    pub fn limits(&self) -> Limits {
        Limits {
            max_events_per_session: self.max_events_per_session,
            max_payload_bytes: self.max_payload_bytes,
            max_sessions: self.max_sessions,
        }
    }

    /// Take the common options out of `url`'s parameters.
    pub(crate) fn apply_url(&mut self, url: &mut StoreUrl) -> Result<()> {
        if let Some(v) = url.take("ttl") {
            self.ttl = parse_duration(&v)
                .map_err(|e| Error::invalid(format!("option ttl: {}", e.message())))?;
        }
        if let Some(v) = url.take("max_events_per_session") {
            self.max_events_per_session = parse_number("max_events_per_session", &v)?;
        }
        if let Some(v) = url.take("max_payload_bytes") {
            self.max_payload_bytes = parse_number("max_payload_bytes", &v)?;
        }
        if let Some(v) = url.take_duration("poll_interval")? {
            self.poll_interval = v;
        }
        if let Some(v) = url.take("max_sessions") {
            self.max_sessions = Some(parse_number("max_sessions", &v)?);
        }
        Ok(())
    }
}

pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The limits a backend enforces itself (the rest is checked before a call
/// reaches it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Events kept per session.
    pub max_events_per_session: u64,
    /// Largest payload: a backend checks merged metadata against it.
    pub max_payload_bytes: usize,
    /// Most live sessions.
    pub max_sessions: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        StoreOptions::default().limits()
    }
}

/// Parse `"500ms"`, `"90s"`, `"30m"`, `"2h"` or `"7d"`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let bad = || {
        Error::invalid(format!(
            "invalid duration {s:?}: expected a number with a unit (ms, s, m, h, d), e.g. 30m"
        ))
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let ms_per = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(ms_per)
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

pub(crate) fn parse_number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T> {
    v.trim()
        .parse()
        .map_err(|_| Error::invalid(format!("option {name}: {v:?} is not a valid number")))
}

/// A store URL split into scheme, location and query parameters.
///
/// `sqlite://data/sessions.db?ttl=10m` has scheme `sqlite`, location
/// `data/sessions.db` (percent-decoded) and one parameter. Backends
/// [`take`](StoreUrl::take) the parameters they know; any left over is an
/// error, so a misspelt option never goes unnoticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    /// The scheme, lower-cased.
    pub scheme: String,
    /// Everything between `://` and `?`, percent-decoded.
    pub location: String,
    /// The location as written (not decoded), for drivers that parse URLs.
    pub raw_location: String,
    params: Vec<(String, String)>,
}

impl StoreUrl {
    /// Split `url`. A missing `://` or an empty scheme is `InvalidInput`.
    pub fn parse(url: &str) -> Result<StoreUrl> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(Error::invalid(format!(
                "invalid store URL {:?}: expected SCHEME://… (memory://, sqlite://PATH, postgres://…, redis://…, rediss://…, dynamodb://TABLE)",
                url.chars().take(100).collect::<String>()
            )));
        };
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+')
        {
            return Err(Error::invalid(format!(
                "invalid store URL scheme {scheme:?}"
            )));
        }
        let (location, query) = match rest.split_once('?') {
            Some((l, q)) => (l, q),
            None => (rest, ""),
        };
        let decoded = percent_decode(location)?;
        let mut params = Vec::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if params.iter().any(|(seen, _): &(String, String)| *seen == k) {
                return Err(Error::invalid(format!("option {k} is given twice")));
            }
            params.push((k.into_owned(), v.into_owned()));
        }
        Ok(StoreUrl {
            scheme: scheme.to_ascii_lowercase(),
            location: decoded,
            raw_location: location.to_string(),
            params,
        })
    }

    /// Remove and return parameter `name`.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let i = self.params.iter().position(|(k, _)| k == name)?;
        Some(self.params.remove(i).1)
    }

    /// Remove parameter `name` and parse it as a duration.
    pub fn take_duration(&mut self, name: &str) -> Result<Option<Duration>> {
        self.take(name)
            .map(|v| {
                parse_duration(&v)
                    .map_err(|e| Error::invalid(format!("option {name}: {}", e.message())))
            })
            .transpose()
    }

    /// Remove parameter `name` and parse it as a number.
    pub fn take_number<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>> {
        self.take(name).map(|v| parse_number(name, &v)).transpose()
    }

    /// The parameters not taken yet.
    pub fn remaining(&self) -> &[(String, String)] {
        &self.params
    }

    /// Fail if any parameter was not taken.
    pub fn finish(&self) -> Result<()> {
        match self.params.first() {
            None => Ok(()),
            Some((k, _)) => Err(Error::invalid(format!(
                "unknown option {k:?} for a {} store",
                self.scheme
            ))),
        }
    }
}

fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::invalid("invalid percent-encoding in store URL"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::invalid("store URL location is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        for bad in [
            "",
            "30",
            "m",
            "1.5s",
            "-1s",
            "10 parsecs",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls() {
        let mut u = StoreUrl::parse("SQLite://data/my%20file.db?ttl=10m&max_sessions=5").unwrap();
        assert_eq!(u.scheme, "sqlite");
        assert_eq!(u.location, "data/my file.db");
        let mut o = StoreOptions::default();
        o.apply_url(&mut u).unwrap();
        assert_eq!(o.ttl, Duration::from_secs(600));
        assert_eq!(o.max_sessions, Some(5));
        u.finish().unwrap();

        let mut u = StoreUrl::parse("memory://?tll=5m").unwrap();
        StoreOptions::default().apply_url(&mut u).unwrap();
        assert_eq!(u.finish().unwrap_err().kind(), ErrorKind::InvalidInput);

        for bad in [
            "sessions.db",
            "://x",
            "me mory://",
            "sqlite://%zz",
            "memory://?ttl=1&ttl=2",
        ] {
            assert_eq!(
                StoreUrl::parse(bad).unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
        let mut u = StoreUrl::parse("memory://?max_events_per_session=lots").unwrap();
        assert!(StoreOptions::default().apply_url(&mut u).is_err());
    }

    #[test]
    fn option_ranges() {
        assert!(StoreOptions::default().validate().is_ok());
        assert!(
            StoreOptions::default()
                .with_ttl(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(
            StoreOptions::default()
                .with_max_events_per_session(0)
                .validate()
                .is_err()
        );
        assert!(
            StoreOptions::default()
                .with_max_payload_bytes(0)
                .validate()
                .is_err()
        );
        assert!(
            StoreOptions::default()
                .with_max_sessions(Some(0))
                .validate()
                .is_err()
        );
    }
}

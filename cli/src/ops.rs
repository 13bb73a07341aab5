//! The operator subcommands: sessions, state, events, cleanup, migrate.

use std::process::ExitCode;

use mcp_session_store::{Error, ErrorKind, Event, EventId, Json, Result, Store};
use serde::Serialize;
use serde_json::json;

use crate::out::Out;

/// Events fetched per `events_after` call.
const EVENT_PAGE: usize = 1000;

/// Run `f` on the store opened at `url`, then close the store (so a SQLite
/// store finishes its writes) whatever `f` returned.
async fn with_store<F, Fut>(url: &str, f: F) -> Result<ExitCode>
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = Result<ExitCode>>,
{
    let store = Store::open(url).await?;
    let result = f(store.clone()).await;
    let closed = store.close().await;
    let code = result?;
    closed?;
    Ok(code)
}

pub async fn sessions_list(url: &str, limit: usize, after: Option<&str>) -> Result<ExitCode> {
    with_store(url, |store| async move {
        let page = store.list_sessions(after, limit).await?;
        let mut out = Out::new();
        for session in &page.items {
            out.line(session)?;
        }
        out.flush()?;
        if let Some(next) = page.next {
            eprintln!("more sessions follow: continue with --after {next}");
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}

pub async fn sessions_get(url: &str, id: &str) -> Result<ExitCode> {
    with_store(url, |store| async move {
        let session = store
            .get_session(id)
            .await?
            .ok_or_else(|| Error::session_not_found(id))?;
        Out::new().line(&session)?;
        Ok(ExitCode::SUCCESS)
    })
    .await
}

pub async fn sessions_count(url: &str) -> Result<ExitCode> {
    with_store(url, |store| async move {
        let count = store.count_sessions().await?;
        Out::new().line(&json!({ "count": count }))?;
        Ok(ExitCode::SUCCESS)
    })
    .await
}

pub async fn sessions_delete(url: &str, id: &str) -> Result<ExitCode> {
    with_store(url, |store| async move {
        let deleted = store.delete_session(id).await?;
        Out::new().line(&json!({ "deleted": deleted }))?;
        Ok(ExitCode::SUCCESS)
    })
    .await
}

pub async fn state_get(url: &str, id: &str, key: &str) -> Result<ExitCode> {
    with_store(url, |store| async move {
        let entry = store.get_state(id, key).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("state key {key:?} is not set in session '{id}'"),
            )
        })?;
        Out::new().line(&entry)?;
        Ok(ExitCode::SUCCESS)
    })
    .await
}

pub async fn state_list(url: &str, id: &str) -> Result<ExitCode> {
    with_store(url, |store| async move {
        let entries = store.state_all(id).await?;
        let mut out = Out::new();
        for entry in &entries {
            out.line(entry)?;
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}

/// One printed event: the stored event plus its wire id.
#[derive(Serialize)]
struct EventLine<'a> {
    /// The wire id (SSE `id:` line, `Last-Event-ID`).
    id: String,
    session_id: &'a str,
    seq: u64,
    stream_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_ms: Option<u32>,
    created_at: i64,
    /// `null` for a priming event.
    data: Option<&'a Json>,
}

impl<'a> EventLine<'a> {
    fn new(e: &'a Event) -> EventLine<'a> {
        EventLine {
            id: e.wire_id(),
            session_id: &e.session_id,
            seq: e.seq,
            stream_id: &e.stream_id,
            event_type: e.event_type.as_deref(),
            retry_ms: e.retry_ms,
            created_at: e.created_at,
            data: e.data.as_ref(),
        }
    }
}

pub async fn events(
    url: &str,
    id: &str,
    stream: &str,
    after_seq: u64,
    follow: bool,
) -> Result<ExitCode> {
    with_store(url, |store| async move {
        let mut out = Out::new();
        let mut cursor = EventId::new(stream, after_seq);
        // Print everything stored after the cursor.
        drain(&store, id, &mut cursor, &mut out).await?;
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let mut live = store.subscribe(id, cursor).await?;
        loop {
            tokio::select! {
                _ = &mut ctrl_c => return Ok(ExitCode::SUCCESS),
                event = live.next() => match event {
                    Some(event) => {
                        out.line(&EventLine::new(&event?))?;
                        out.flush()?;
                    }
                    None => return Ok(ExitCode::SUCCESS),
                },
            }
        }
    })
    .await
}

/// Print every event after `cursor`, advancing it to the last one printed.
async fn drain(store: &Store, id: &str, cursor: &mut EventId, out: &mut Out) -> Result<()> {
    loop {
        let page = store.events_after(id, cursor, EVENT_PAGE).await?;
        for event in &page.items {
            out.line(&EventLine::new(event))?;
        }
        out.flush()?;
        match page.items.last() {
            Some(last) if last.seq > cursor.seq => cursor.seq = last.seq,
            _ => return Ok(()),
        }
        if page.next.is_none() {
            return Ok(());
        }
    }
}

pub async fn cleanup(url: &str) -> Result<ExitCode> {
    with_store(url, |store| async move {
        let stats = store.cleanup_expired().await?;
        Out::new().line(&stats)?;
        Ok(ExitCode::SUCCESS)
    })
    .await
}

pub async fn migrate(url: &str) -> Result<ExitCode> {
    with_store(url, |store| async move {
        Out::new().line(&json!({ "migrated": true, "backend": store.backend_name() }))?;
        Ok(ExitCode::SUCCESS)
    })
    .await
}

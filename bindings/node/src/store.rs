//! The store handle: `openStore` and `NativeStore`, one `async` method per
//! core operation, each returning a Promise. Arguments are checked on the
//! JS thread; the store's future runs on the bridge's runtime ([`run`]).

use std::future::Future;

use mss_bridge::options::{DurationUnit, OpenOptions};
use mss_core::{EventId, NewEvent, NewSession};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::json::JsonIn;
use crate::subscription::{NativeSubscription, NativeSweeper};
use crate::types::{
    self, CleanupInfo, EventInfo, EventPage, SessionInfo, SessionPage, StateEntryInfo, count,
    duration_ms,
};
use crate::{err, invalid, run};

/// Open the store at `url` (`memory://`, `sqlite://PATH`, …) with `options`
/// (`ttlMs`/`ttl`, `maxEventsPerSession`, `maxPayloadBytes`, `maxSessions`,
/// `pollIntervalMs`; durations in milliseconds or strings such as `"30m"`).
#[napi]
pub async fn open_store(
    url: String,
    #[napi(ts_arg_type = "Record<string, unknown> | undefined | null")] options: Option<JsonIn>,
) -> Result<NativeStore> {
    let options = match options {
        Some(JsonIn(value)) => OpenOptions::from_value(&value, DurationUnit::Milliseconds),
        None => Ok(OpenOptions::default()),
    }
    .map_err(err)?
    .to_store_options();
    let store = run(async move { mss_core::Store::open_with(&url, options).await }).await?;
    Ok(NativeStore { store })
}

/// A store handle; share one between all requests of a process.
#[napi]
pub struct NativeStore {
    store: mss_core::Store,
}

impl NativeStore {
    /// Run `op` on a handle of this store on the bridge's runtime (see
    /// [`run`]).
    async fn run<T, Fut>(&self, op: impl FnOnce(mss_core::Store) -> Fut) -> Result<T>
    where
        Fut: Future<Output = mss_core::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        run(op(self.store.clone())).await
    }
}

#[napi]
impl NativeStore {
    /// The backend's name (`"memory"`, `"sqlite"`, …).
    #[napi(getter)]
    pub fn backend(&self) -> String {
        self.store.backend_name().to_string()
    }

    /// Finish pending writes and release connections.
    #[napi]
    pub async fn close(&self) -> Result<()> {
        self.run(|store| async move { store.close().await }).await
    }

    /// Create a session (`id` absent: a UUID v4).
    #[napi]
    pub async fn create_session(
        &self,
        id: Option<String>,
        #[napi(ts_arg_type = "Record<string, unknown> | undefined | null")] metadata: Option<
            JsonIn,
        >,
        ttl_ms: Option<f64>,
    ) -> Result<SessionInfo> {
        let mut new = NewSession::new().with_metadata(types::metadata(metadata, "metadata")?);
        if let Some(id) = id {
            new = new.with_id(id);
        }
        if let Some(ttl) = ttl_ms {
            new = new.with_ttl(duration_ms("ttlMs", ttl)?);
        }
        self.run(|store| async move { store.create_session(new).await })
            .await
            .map(SessionInfo::from)
    }

    /// A live session, or `null`.
    #[napi]
    pub async fn get_session(&self, id: String) -> Result<Option<SessionInfo>> {
        Ok(self
            .run(|store| async move { store.get_session(&id).await })
            .await?
            .map(SessionInfo::from))
    }

    /// Shallow-merge `patch` into the metadata.
    #[napi]
    pub async fn update_session(
        &self,
        id: String,
        #[napi(ts_arg_type = "Record<string, unknown>")] patch: JsonIn,
    ) -> Result<SessionInfo> {
        let patch = types::metadata(Some(patch), "patch")?;
        self.run(|store| async move { store.update_session(&id, patch).await })
            .await
            .map(SessionInfo::from)
    }

    /// Renew the TTL.
    #[napi]
    pub async fn touch_session(&self, id: String) -> Result<SessionInfo> {
        self.run(|store| async move { store.touch_session(&id).await })
            .await
            .map(SessionInfo::from)
    }

    /// Delete a session with its state and events; true if it was live.
    #[napi]
    pub async fn delete_session(&self, id: String) -> Result<bool> {
        self.run(|store| async move { store.delete_session(&id).await })
            .await
    }

    /// Live sessions in id order, after `after`.
    #[napi]
    pub async fn list_sessions(
        &self,
        after: Option<String>,
        limit: Option<f64>,
    ) -> Result<SessionPage> {
        let limit = types::limit(limit)?;
        let page = self
            .run(|store| async move { store.list_sessions(after.as_deref(), limit).await })
            .await?;
        Ok(SessionPage {
            items: page.items.into_iter().map(SessionInfo::from).collect(),
            next: page.next,
        })
    }

    /// How many sessions are live.
    #[napi]
    pub async fn count_sessions(&self) -> Result<i64> {
        self.run(|store| async move { store.count_sessions().await })
            .await
            .map(|n| n as i64)
    }

    /// One state entry, or `null`.
    #[napi]
    pub async fn get_state(&self, id: String, key: String) -> Result<Option<StateEntryInfo>> {
        Ok(self
            .run(|store| async move { store.get_state(&id, &key).await })
            .await?
            .map(StateEntryInfo::from))
    }

    /// Set a key; returns its new version.
    #[napi]
    pub async fn set_state(
        &self,
        id: String,
        key: String,
        #[napi(ts_arg_type = "unknown")] value: JsonIn,
    ) -> Result<i64> {
        self.run(|store| async move { store.set_state(&id, &key, value.0).await })
            .await
            .map(|v| v as i64)
    }

    /// Compare-and-set: only if the key is at `expected` (`null`: absent).
    #[napi]
    pub async fn set_state_if_version(
        &self,
        id: String,
        key: String,
        #[napi(ts_arg_type = "unknown")] value: JsonIn,
        expected: Option<f64>,
    ) -> Result<i64> {
        let expected = expected.map(|v| count("expectedVersion", v)).transpose()?;
        self.run(|store| async move {
            store
                .set_state_if_version(&id, &key, value.0, expected)
                .await
        })
        .await
        .map(|v| v as i64)
    }

    /// Delete a key; true if it existed.
    #[napi]
    pub async fn delete_state(&self, id: String, key: String) -> Result<bool> {
        self.run(|store| async move { store.delete_state(&id, &key).await })
            .await
    }

    /// Every key, sorted.
    #[napi]
    pub async fn state_keys(&self, id: String) -> Result<Vec<String>> {
        self.run(|store| async move { store.state_keys(&id).await })
            .await
    }

    /// Every entry, sorted by key.
    #[napi]
    pub async fn state_all(&self, id: String) -> Result<Vec<StateEntryInfo>> {
        Ok(self
            .run(|store| async move { store.state_all(&id).await })
            .await?
            .into_iter()
            .map(StateEntryInfo::from)
            .collect())
    }

    /// Append an event; `data` absent makes a priming event.
    #[napi]
    pub async fn append_event(
        &self,
        id: String,
        stream_id: String,
        #[napi(ts_arg_type = "unknown")] data: Option<JsonIn>,
        event_type: Option<String>,
        retry_ms: Option<f64>,
    ) -> Result<EventInfo> {
        let mut event = match data {
            Some(JsonIn(data)) => NewEvent::new(stream_id, data),
            None => NewEvent::priming(stream_id),
        };
        if let Some(t) = event_type {
            event = event.with_event_type(t);
        }
        if let Some(r) = retry_ms {
            let r = count("retryMs", r)?;
            let r = u32::try_from(r).map_err(|_| invalid("retryMs is over 2^32-1"))?;
            event = event.with_retry_ms(r);
        }
        self.run(|store| async move { store.append_event(&id, event).await })
            .await
            .map(EventInfo::from)
    }

    /// Events of the cursor's stream after (`streamId`, `seq`).
    #[napi]
    pub async fn events_after(
        &self,
        id: String,
        stream_id: String,
        seq: f64,
        limit: Option<f64>,
    ) -> Result<EventPage> {
        let cursor = EventId::new(stream_id, types::seq(seq)?);
        let limit = types::limit(limit)?;
        self.run(|store| async move { store.events_after(&id, &cursor, limit).await })
            .await
            .map(EventPage::from)
    }

    /// Events after a wire id (`Last-Event-ID`) of this session.
    #[napi]
    pub async fn replay(
        &self,
        id: String,
        last_event_id: String,
        limit: Option<f64>,
    ) -> Result<EventPage> {
        let limit = types::limit(limit)?;
        self.run(|store| async move { store.replay(&id, &last_event_id, limit).await })
            .await
            .map(EventPage::from)
    }

    /// Follow a stream: the events after (`streamId`, `seq`), then new ones.
    #[napi]
    pub async fn subscribe(
        &self,
        id: String,
        stream_id: String,
        seq: f64,
    ) -> Result<NativeSubscription> {
        let cursor = EventId::new(stream_id, types::seq(seq)?);
        let sub = self
            .run(|store| async move { store.subscribe(&id, cursor).await })
            .await?;
        Ok(NativeSubscription::new(sub))
    }

    /// Delete expired sessions; returns what was removed.
    #[napi]
    pub async fn cleanup_expired(&self) -> Result<CleanupInfo> {
        self.run(|store| async move { store.cleanup_expired().await })
            .await
            .map(CleanupInfo::from)
    }

    /// Run `cleanupExpired` every `intervalMs` until the sweeper is stopped.
    #[napi]
    pub async fn start_sweeper(&self, interval_ms: f64) -> Result<NativeSweeper> {
        let interval = duration_ms("intervalMs", interval_ms)?;
        // Started on the bridge's runtime: the sweeper's task lives there.
        let sweeper = self
            .run(|store| async move { store.spawn_sweeper(interval) })
            .await?;
        Ok(NativeSweeper::new(sweeper))
    }
}

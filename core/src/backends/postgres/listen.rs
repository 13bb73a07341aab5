//! Live delivery across processes: a store with subscribers `LISTEN`s on its
//! schema's channel and keeps its row in `mss_listeners` fresh, so that
//! appends send `NOTIFY` while it listens.

use std::time::Duration;

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgListener, PgPool};

use super::connect::map_err;
use crate::backend::AppendListener;
use crate::time::now_ms;

/// A listening store renews its `mss_listeners` row this often; the row
/// counts for three times as long.
const LISTENER_HEARTBEAT: Duration = Duration::from_secs(10);

/// Forward notifications on `channel` to `listener` until it declines or
/// the pool closes, keeping this store's row in `mss_listeners` fresh so
/// that appends notify. The driver reconnects after a connection loss;
/// notifications sent meanwhile are lost, which subscriptions cover by
/// polling.
///
/// A lost connection and a failed renewal are logged once each (a warning),
/// and their recovery once (info), not at every retry.
pub(super) async fn listen(
    pool: PgPool,
    schema: String,
    id: String,
    channel: String,
    listener: AppendListener,
) {
    let register = format!(
        "INSERT INTO {schema}.mss_listeners (id, expires_at) VALUES ($1, $2) \
         ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at"
    );
    let mut pg: Option<PgListener> = None;
    // Whether a warning said that this store is not listening.
    let mut lost = false;
    // Whether a warning said that the listener row could not be renewed.
    let mut unregistered = false;
    let mut heartbeat = tokio::time::interval(LISTENER_HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if pool.is_closed() {
            return;
        }
        let current = match pg.as_mut() {
            Some(current) => current,
            None => {
                let connected = async {
                    let mut l = PgListener::connect_with(&pool).await?;
                    l.listen(&channel).await?;
                    Ok::<_, sqlx::Error>(l)
                }
                .await;
                match connected {
                    Ok(l) => {
                        if lost {
                            lost = false;
                            tracing::info!(
                                channel = %channel,
                                "PostgreSQL LISTEN connection re-established; subscriptions wake on notifications again"
                            );
                        }
                        heartbeat.reset_immediately();
                        pg.insert(l)
                    }
                    Err(e) => {
                        if !lost && !matches!(e, sqlx::Error::PoolClosed) {
                            lost = true;
                            tracing::warn!(
                                channel = %channel,
                                error = %map_err(e),
                                "cannot LISTEN on PostgreSQL; retrying every second, subscriptions poll meanwhile"
                            );
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
        };
        tokio::select! {
            received = current.recv() => match received {
                Ok(notification) => {
                    if !listener(notification.payload()) {
                        break;
                    }
                }
                Err(sqlx::Error::PoolClosed) => return,
                Err(e) => {
                    lost = true;
                    tracing::warn!(
                        channel = %channel,
                        error = %map_err(e),
                        "PostgreSQL LISTEN connection lost; reconnecting, subscriptions poll meanwhile"
                    );
                    pg = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
            _ = heartbeat.tick() => {
                // Best effort: until it succeeds, appends may not notify and
                // subscriptions poll.
                let renewed = sqlx::query(AssertSqlSafe(register.as_str()))
                    .bind(&id)
                    .bind(now_ms() + 3 * LISTENER_HEARTBEAT.as_millis() as i64)
                    .execute(&pool)
                    .await;
                match renewed {
                    Ok(_) if unregistered => {
                        unregistered = false;
                        tracing::info!(
                            schema = %schema,
                            "renewed this store's row in mss_listeners again; appends notify it again"
                        );
                    }
                    Err(e) if !unregistered && !matches!(e, sqlx::Error::PoolClosed) => {
                        unregistered = true;
                        tracing::warn!(
                            schema = %schema,
                            error = %map_err(e),
                            "cannot renew this store's row in mss_listeners; retrying every 10s, appends may stop notifying and subscriptions poll meanwhile"
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    let _ = sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {schema}.mss_listeners WHERE id = $1"
    )))
    .bind(&id)
    .execute(&pool)
    .await;
}

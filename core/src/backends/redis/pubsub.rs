//! The pub/sub listener: forwards the session ids the append script
//! publishes on `{prefix}appends` to the store's subscriptions, on a single
//! server or a cluster, reconnecting after a loss. A lost or failed
//! subscription is logged once (`warn`), its recovery too (`info`).

use std::time::Duration;

use redis::Value;
use tokio::sync::watch;

use super::connect::{Listen, Servers};
use crate::backend::AppendListener;

/// How often the pub/sub listener checks that its connection is alive.
const PUBSUB_PING: Duration = Duration::from_secs(15);

/// Pause after a failed connect, and after losing a connection.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
const LOST_PAUSE: Duration = Duration::from_millis(100);

/// Forward the session ids published on `channel` to `listener` until it
/// declines or the store closes. After a connection loss it connects again
/// (with a pause); what was published meanwhile is lost, which subscriptions
/// cover by polling. `server` names the server in log messages.
pub(super) async fn listen(
    target: Listen,
    server: String,
    channel: String,
    connect_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    listener: AppendListener,
) {
    // Resolves once the store closes or is dropped.
    let stopped = async move {
        let _ = shutdown.wait_for(|closed| *closed).await;
    };
    tokio::pin!(stopped);
    match target {
        Listen::Single(client) => {
            let health = Health::new("Redis", server, &channel);
            listen_single(client, channel, connect_timeout, stopped, listener, health).await
        }
        Listen::Cluster(setup) => {
            let health = Health::new("Redis Cluster", server, &channel);
            listen_cluster(setup, channel, connect_timeout, stopped, listener, health).await
        }
    }
}

/// Wait `pause`; false if the store stopped meanwhile.
async fn pause(
    stopped: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    pause: Duration,
) -> bool {
    tokio::select! {
        _ = stopped => false,
        _ = tokio::time::sleep(pause) => true,
    }
}

/// The listener's ping timer: a connection that went silent (a network
/// partition sends no close) is noticed by a ping that gets no answer.
fn heartbeat() -> tokio::time::Interval {
    let mut heartbeat = tokio::time::interval(PUBSUB_PING);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    heartbeat
}

/// What the listener reports: a failure once when live delivery stops,
/// and the recovery once when it resumes.
struct Health {
    what: &'static str,
    server: String,
    channel: String,
    /// Live delivery is down and this was logged.
    down: bool,
}

impl Health {
    fn new(what: &'static str, server: String, channel: &str) -> Health {
        Health {
            what,
            server,
            channel: channel.to_string(),
            down: false,
        }
    }

    /// A connect or subscribe failed.
    fn connect_failed(&mut self, error: &dyn std::fmt::Display) {
        if !self.down {
            self.down = true;
            tracing::warn!(
                server = %self.server,
                channel = %self.channel,
                error = %error,
                "{} pub/sub: cannot subscribe; retrying every {} ms, and subscriptions poll the store meanwhile",
                self.what,
                RECONNECT_PAUSE.as_millis()
            );
        }
    }

    /// Subscribed: live delivery runs (again).
    fn subscribed(&mut self) {
        if self.down {
            self.down = false;
            tracing::info!(
                server = %self.server,
                channel = %self.channel,
                "{} pub/sub: subscribed again; live delivery to subscriptions resumes",
                self.what
            );
        }
    }

    /// A subscribed connection was lost.
    fn lost(&mut self, reason: &str) {
        self.down = true;
        tracing::warn!(
            server = %self.server,
            channel = %self.channel,
            reason,
            "{} pub/sub: connection lost; reconnecting, and subscriptions poll the store meanwhile",
            self.what
        );
    }
}

/// The message of a connect that failed or did not finish in time.
fn failure<T>(
    connected: &Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    connect_timeout: Duration,
) -> String {
    match connected {
        Ok(Err(e)) => e.to_string(),
        _ => format!("no connection within {}ms", connect_timeout.as_millis()),
    }
}

const PING_UNANSWERED: &str = "a ping got no answer";

/// [`listen`] on a single server.
async fn listen_single(
    client: redis::Client,
    channel: String,
    connect_timeout: Duration,
    mut stopped: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    listener: AppendListener,
    mut health: Health,
) {
    use futures::StreamExt;
    loop {
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let connected = tokio::select! {
            _ = stopped.as_mut() => return,
            c = tokio::time::timeout(connect_timeout, connect) => c,
        };
        let pubsub = match connected {
            Ok(Ok(pubsub)) => pubsub,
            _ => {
                health.connect_failed(&failure(&connected, connect_timeout));
                if pause(stopped.as_mut(), RECONNECT_PAUSE).await {
                    continue;
                }
                return;
            }
        };
        health.subscribed();
        let (mut sink, mut messages) = pubsub.split();
        let mut heartbeat = heartbeat();
        let reason = loop {
            let msg = tokio::select! {
                _ = stopped.as_mut() => return,
                m = messages.next() => m,
                _ = heartbeat.tick() => {
                    let ping = tokio::time::timeout(connect_timeout, sink.ping::<Value>()).await;
                    if matches!(ping, Ok(Ok(_))) {
                        continue;
                    }
                    break PING_UNANSWERED;
                }
            };
            let Some(msg) = msg else {
                // The connection was lost: connect again.
                break "the connection closed";
            };
            let payload: Vec<u8> = msg.get_payload_bytes().to_vec();
            if let Ok(id) = std::str::from_utf8(&payload)
                && !listener(id)
            {
                return;
            }
        };
        health.lost(reason);
        if !pause(stopped.as_mut(), LOST_PAUSE).await {
            return;
        }
    }
}

/// [`listen`] on a cluster: a cluster connection of its own, speaking RESP3,
/// whose subscription the redis crate renews after a node fails.
async fn listen_cluster(
    setup: Servers,
    channel: String,
    connect_timeout: Duration,
    mut stopped: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    listener: AppendListener,
    mut health: Health,
) {
    loop {
        let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel();
        let connect = async {
            let client = setup
                .builder()
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(tx)
                .build()?;
            let mut conn = client.get_async_connection().await?;
            conn.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(conn)
        };
        let connected = tokio::select! {
            _ = stopped.as_mut() => return,
            c = tokio::time::timeout(connect_timeout, connect) => c,
        };
        let mut conn = match connected {
            Ok(Ok(conn)) => conn,
            _ => {
                health.connect_failed(&failure(&connected, connect_timeout));
                if pause(stopped.as_mut(), RECONNECT_PAUSE).await {
                    continue;
                }
                return;
            }
        };
        health.subscribed();
        let mut heartbeat = heartbeat();
        let reason = loop {
            let push = tokio::select! {
                _ = stopped.as_mut() => return,
                p = pushes.recv() => p,
                _ = heartbeat.tick() => {
                    let ping = redis::cmd("PING");
                    let ping = tokio::time::timeout(connect_timeout, ping.query_async::<Value>(&mut conn));
                    if matches!(ping.await, Ok(Ok(_))) {
                        continue;
                    }
                    break PING_UNANSWERED;
                }
            };
            let Some(push) = push else {
                break "the connection closed";
            };
            if push.kind == redis::PushKind::Message
                && let Some(Value::BulkString(payload)) = push.data.get(1)
                && let Ok(id) = std::str::from_utf8(payload)
                && !listener(id)
            {
                return;
            }
        };
        health.lost(reason);
        if !pause(stopped.as_mut(), LOST_PAUSE).await {
            return;
        }
    }
}

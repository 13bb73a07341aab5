//! Live subscriptions: `subscribe` starts a task on the runtime that sends
//! the replay and then each new event to a process; `unsubscribe`, the
//! process's exit or the end of the subscription stops it.

use std::sync::Mutex;

use rustler::{Encoder, Env, LocalPid, Monitor, OwnedEnv, Resource, ResourceArc, Term};

use crate::args::{cursor_arg, store_arg, string_arg};
use crate::encode::{error_term, event_term, reply};
use crate::json::{describe, invalid};
use crate::runtime::{block_on, spawn};

/// A live subscription: a task on the runtime forwards events to a process.
/// It stops on `unsubscribe`, when the subscriber process exits (monitor),
/// or when the subscription ends (session deleted or expired, fell behind
/// trimming). The task holds a reference, so garbage collection of the
/// Elixir handle does not stop it.
pub struct SubscriptionResource {
    cancel: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl SubscriptionResource {
    /// Stop the forwarding task; false if it was already stopped.
    fn cancel(&self) -> bool {
        // Dropping the sender wakes the task's `cancel` branch.
        self.cancel
            .lock()
            .map(|mut sender| sender.take().is_some())
            .unwrap_or(false)
    }
}

#[rustler::resource_impl]
impl Resource for SubscriptionResource {
    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _monitor: Monitor) {
        self.cancel();
    }
}

/// Follow one stream: the replay after `cursor`, then new events, sent to
/// `pid` as `{:mcp_session_store, tag, {:event, event}}`; an ending is sent
/// as `{:mcp_session_store, tag, {:error, {kind, message}}}`.
#[rustler::nif(schedule = "DirtyIo")]
fn subscribe<'a>(
    env: Env<'a>,
    store: Term<'a>,
    id: Term<'a>,
    cursor: Term<'a>,
    pid: Term<'a>,
    tag: Term<'a>,
) -> Term<'a> {
    let result = (|| {
        let store = store_arg(store)?;
        let id = string_arg(id, "session id")?;
        let cursor = cursor_arg(cursor)?;
        let pid: LocalPid = pid.decode().map_err(|_| {
            invalid(format!(
                "subscriber must be a local PID, got {}",
                describe(pid)
            ))
        })?;
        let tag_env = OwnedEnv::new();
        let tag = tag_env.save(tag);
        let subscription = block_on(move || async move { store.subscribe(&id, cursor).await })??;
        let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
        let resource = ResourceArc::new(SubscriptionResource {
            cancel: Mutex::new(Some(cancel_tx)),
        });
        if resource.monitor(Some(env), &pid).is_none() {
            return Err(invalid("the subscriber process is not alive"));
        }
        spawn(forward(
            subscription,
            pid,
            (tag_env, tag),
            cancel_rx,
            resource.clone(),
            // Counted from here, not from the task's first poll.
            ActiveGuard::new(),
        ))?;
        Ok(resource.encode(env))
    })();
    reply(env, result)
}

/// Forwarding tasks running (for tests and monitoring).
static ACTIVE_SUBSCRIPTIONS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

struct ActiveGuard;

impl ActiveGuard {
    fn new() -> ActiveGuard {
        ACTIVE_SUBSCRIPTIONS.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        ActiveGuard
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        ACTIVE_SUBSCRIPTIONS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

#[rustler::nif]
fn active_subscriptions() -> usize {
    ACTIVE_SUBSCRIPTIONS.load(std::sync::atomic::Ordering::Acquire)
}

async fn forward(
    mut subscription: mss_core::Subscription,
    pid: LocalPid,
    tag: (OwnedEnv, rustler::env::SavedTerm),
    mut cancel: tokio::sync::oneshot::Receiver<()>,
    _keep_alive: ResourceArc<SubscriptionResource>,
    _active: ActiveGuard,
) {
    rustler::atoms! { mcp_session_store, event }
    let (tag_env, tag) = tag;
    let mut msg_env = OwnedEnv::new();
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut cancel => return,
            next = subscription.next() => next,
        };
        let (last, sent) = match next {
            Some(Ok(ev)) => (
                false,
                msg_env.send_and_clear(&pid, |env| {
                    let tag = tag_env.run(|tenv| tag.load(tenv).in_env(env));
                    (mcp_session_store(), tag, (event(), event_term(env, &ev)))
                }),
            ),
            Some(Err(e)) => (
                true,
                msg_env.send_and_clear(&pid, |env| {
                    let tag = tag_env.run(|tenv| tag.load(tenv).in_env(env));
                    (mcp_session_store(), tag, error_term(env, &e))
                }),
            ),
            None => (true, Ok(())),
        };
        if last || sent.is_err() {
            return;
        }
    }
}

#[rustler::nif]
fn unsubscribe<'a>(env: Env<'a>, subscription: Term<'a>) -> Term<'a> {
    let result = (|| {
        let resource: ResourceArc<SubscriptionResource> = subscription.decode().map_err(|_| {
            invalid(format!(
                "expected a subscription from McpSessionStore.subscribe/4, got {}",
                describe(subscription)
            ))
        })?;
        Ok(resource.cancel().encode(env))
    })();
    reply(env, result)
}

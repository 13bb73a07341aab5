//! The Lua scripts (one per operation, in `lua/`, each prefixed with
//! `lua/common.lua`), loading them, and running one within the call
//! timeout.

use std::sync::LazyLock;

use redis::{Script, ScriptInvocation, Value};

use super::RedisBackend;
use super::codec::map_err;
use super::connect::Conn;
use crate::error::{Error, ErrorKind, Result};

macro_rules! lua {
    ($file:literal) => {
        concat!(
            include_str!("lua/common.lua"),
            "\n",
            include_str!(concat!("lua/", $file))
        )
    };
}

/// The scripts, hashed once.
pub(super) struct Scripts {
    pub(super) config: Script,
    pub(super) create: Script,
    pub(super) get: Script,
    pub(super) get_many: Script,
    pub(super) touch: Script,
    pub(super) update: Script,
    pub(super) delete: Script,
    pub(super) get_state: Script,
    pub(super) set_state: Script,
    pub(super) delete_state: Script,
    pub(super) state_all: Script,
    pub(super) append: Script,
    pub(super) events_after: Script,
    pub(super) list: Script,
    pub(super) count: Script,
    pub(super) expired: Script,
    pub(super) reap: Script,
}

impl Scripts {
    fn all(&self) -> [&Script; 17] {
        [
            &self.config,
            &self.create,
            &self.get,
            &self.get_many,
            &self.touch,
            &self.update,
            &self.delete,
            &self.get_state,
            &self.set_state,
            &self.delete_state,
            &self.state_all,
            &self.append,
            &self.events_after,
            &self.list,
            &self.count,
            &self.expired,
            &self.reap,
        ]
    }
}

pub(super) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    config: Script::new(lua!("config.lua")),
    create: Script::new(lua!("create.lua")),
    get: Script::new(lua!("get.lua")),
    get_many: Script::new(lua!("get_many.lua")),
    touch: Script::new(lua!("touch.lua")),
    update: Script::new(lua!("update.lua")),
    delete: Script::new(lua!("delete.lua")),
    get_state: Script::new(lua!("get_state.lua")),
    set_state: Script::new(lua!("set_state.lua")),
    delete_state: Script::new(lua!("delete_state.lua")),
    state_all: Script::new(lua!("state_all.lua")),
    append: Script::new(lua!("append.lua")),
    events_after: Script::new(lua!("events_after.lua")),
    list: Script::new(lua!("list.lua")),
    count: Script::new(lua!("count.lua")),
    expired: Script::new(lua!("expired.lua")),
    reap: Script::new(lua!("reap.lua")),
});

/// Load every script now (on every primary of a cluster), so the first
/// calls need no fallback.
pub(super) async fn load_scripts(conn: &mut Conn) -> redis::RedisResult<()> {
    for script in SCRIPTS.all() {
        script.prepare_invoke().load_async(conn).await?;
    }
    Ok(())
}

impl RedisBackend {
    /// Run a prepared invocation, within the call timeout. A read that
    /// meets a dropped connection (an idle connection after a server
    /// restart) is retried once on the new connection; a write is not, since
    /// the server may have run it before the connection dropped.
    pub(super) async fn run(&self, inv: ScriptInvocation<'_>, read_only: bool) -> Result<Value> {
        self.check_open()?;
        let mut conn = self.conn.clone();
        let call = async {
            match inv.invoke_async::<Value>(&mut conn).await {
                Err(e) if read_only && e.is_unrecoverable_error() => {
                    inv.invoke_async::<Value>(&mut conn).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(self.call_timeout, call).await {
            Ok(Err(e)) if matches!(self.conn, Conn::Single(_)) && e.is_cluster_error() => {
                // A cluster node reached without a cluster connection
                // (`cluster=false`): it serves only its own slots.
                Err(Error::new(
                    ErrorKind::Backend,
                    format!(
                        "Redis at {} is a Redis Cluster node that does not serve this key \
                         (open the store with cluster=auto or cluster=true): {e}",
                        self.target
                    ),
                ))
            }
            Ok(result) => result.map_err(map_err),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "Redis at {} did not answer within {}ms",
                    self.target,
                    self.call_timeout.as_millis()
                ),
            )),
        }
    }

    /// Invoke a session script: the session's keys and its shard's
    /// indexes, then ARGV = id, grace, `args`.
    pub(super) async fn session_script(
        &self,
        script: &Script,
        id: &str,
        args: &[&[u8]],
    ) -> Result<Value> {
        let read_only = [
            &SCRIPTS.get,
            &SCRIPTS.get_state,
            &SCRIPTS.state_all,
            &SCRIPTS.events_after,
        ]
        .iter()
        .any(|s| std::ptr::eq(*s, script));
        let shard = self.shard_of(id);
        let mut inv = script.prepare_invoke();
        for key in self.session_keys(shard, id) {
            inv.key(key);
        }
        for key in self.index_keys(shard) {
            inv.key(key);
        }
        inv.arg(id).arg(self.grace_ms);
        for a in args {
            inv.arg(*a);
        }
        self.run(inv, read_only).await
    }
}

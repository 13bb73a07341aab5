//! `mcp-session-store`: the operator CLI of mcp-session-store.
//!
//! Inspect sessions, state and event logs, tail a stream, clean up expired
//! sessions, apply migrations and benchmark any store URL.

#![forbid(unsafe_code)]

mod bench;
mod ops;
mod out;

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use clap::{ArgAction, Args, Parser, Subcommand};
use mcp_session_store::{Error, ErrorKind};
use tracing::Level;

/// Operator CLI for mcp-session-store: inspect, tail, clean up, migrate and
/// benchmark a session store.
///
/// Every command takes the store as a URL (`--store`, or the
/// MCP_SESSION_STORE_URL environment variable): `memory://`,
/// `sqlite://PATH`, `postgres://USER:PASS@HOST:PORT/DB`,
/// `redis://HOST:PORT/DB` or `rediss://…`, or `dynamodb://TABLE`, with
/// options as query parameters, e.g.
/// `sqlite://sessions.db?ttl=30m&max_events_per_session=1000`.
///
/// Results go to stdout as JSON (one object per line); errors go to stderr as
/// `error: <code>: <message>`. The exit code is 0 on success, 2 for invalid
/// input (a bad URL, id, key or option) and 1 for any other failure.
///
/// Logs go to stderr: warnings by default (e.g. a background task of the
/// store that failed); `-v` adds the store's info, `-vv` its debug events,
/// `-vvv` everything down to its drivers' traces.
#[derive(Debug, Parser)]
#[command(name = "mcp-session-store", version, propagate_version = true)]
struct Cli {
    /// Log more on stderr: `-v` info, `-vv` debug, `-vvv` trace, drivers
    /// included (default: warnings and errors).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// The store to operate on.
#[derive(Debug, Clone, Args)]
struct StoreArg {
    /// Store URL: `memory://`, `sqlite://PATH`, `postgres://…`, `redis://…` /
    /// `rediss://…` or `dynamodb://TABLE?…` (options as query parameters,
    /// e.g. `?ttl=30m`).
    #[arg(long, value_name = "URL", env = "MCP_SESSION_STORE_URL")]
    store: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the benchmark workloads (W1-W8, defined in cli/BENCH.md) against a
    /// store and print one JSON line per workload.
    #[command(long_about = bench::LONG_ABOUT)]
    Bench(bench::BenchArgs),

    /// Internal: one child process of the W7/W8 benchmarks, started by
    /// `bench` itself.
    #[command(hide = true)]
    BenchChild(bench::ChildArgs),

    /// List, show, count and delete sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),

    /// Read a session's state keys.
    #[command(subcommand)]
    State(StateCommand),

    /// Print the events of one stream of a session as JSON lines, each with
    /// its wire id (what goes on the SSE `id:` line).
    ///
    /// Prints the events after `--after-seq` (default: the whole retained
    /// stream) and exits; with `--follow` it then subscribes and prints new
    /// events as they are appended (by another process: within the store's
    /// `poll_interval`, 250 ms by default), until Ctrl-C or the session ends.
    Events(EventsArgs),

    /// Delete every expired session with its state and events; prints the
    /// counts as JSON: {"sessions":…,"state_entries":…,"events":…}.
    Cleanup(StoreArg),

    /// Create the store's schema or bring it up to date (opening a store
    /// applies pending migrations); prints {"migrated":true,"backend":…}.
    Migrate(StoreArg),
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// List live sessions in id order, one JSON object per line.
    ///
    /// Prints at most `--limit` sessions; when more follow, a hint with the
    /// `--after` value that continues the listing goes to stderr.
    List {
        #[command(flatten)]
        store: StoreArg,
        /// Most sessions to print (1-10000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this session id (the last id of the previous page).
        #[arg(long, value_name = "ID")]
        after: Option<String>,
    },
    /// Print one live session as JSON (not_found if it does not exist or
    /// has expired).
    Get {
        #[command(flatten)]
        store: StoreArg,
        /// The session id.
        id: String,
    },
    /// Print how many sessions are live: {"count":N}.
    Count(StoreArg),
    /// Delete a session with its state and events: {"deleted":true|false}
    /// (false: there was no live session with this id).
    Delete {
        #[command(flatten)]
        store: StoreArg,
        /// The session id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum StateCommand {
    /// Print one state entry: {"key":…,"value":…,"version":…}
    /// (not_found if the session or the key does not exist).
    Get {
        #[command(flatten)]
        store: StoreArg,
        /// The session id.
        id: String,
        /// The state key.
        key: String,
    },
    /// Print every state entry of a session, sorted by key, one JSON object
    /// per line.
    List {
        #[command(flatten)]
        store: StoreArg,
        /// The session id.
        id: String,
    },
}

#[derive(Debug, Args)]
struct EventsArgs {
    #[command(flatten)]
    store: StoreArg,
    /// The session id.
    id: String,
    /// The stream to print (a POST request id, `_GET_stream`, …).
    #[arg(long, value_name = "STREAM")]
    stream: String,
    /// Print only events after this seq (0: from the first retained event).
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    after_seq: u64,
    /// After printing what is stored, follow new events until Ctrl-C or the
    /// session ends.
    #[arg(long, short = 'f')]
    follow: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Bench(args) => bench::run(args, cli.verbose).await,
        Command::BenchChild(args) => bench::run_child(args).await,
        Command::Sessions(cmd) => match cmd {
            SessionsCommand::List {
                store,
                limit,
                after,
            } => ops::sessions_list(&store.store, limit, after.as_deref()).await,
            SessionsCommand::Get { store, id } => ops::sessions_get(&store.store, &id).await,
            SessionsCommand::Count(store) => ops::sessions_count(&store.store).await,
            SessionsCommand::Delete { store, id } => ops::sessions_delete(&store.store, &id).await,
        },
        Command::State(cmd) => match cmd {
            StateCommand::Get { store, id, key } => ops::state_get(&store.store, &id, &key).await,
            StateCommand::List { store, id } => ops::state_list(&store.store, &id).await,
        },
        Command::Events(args) => {
            ops::events(
                &args.store.store,
                &args.id,
                &args.stream,
                args.after_seq,
                args.follow,
            )
            .await
        }
        Command::Cleanup(store) => ops::cleanup(&store.store).await,
        Command::Migrate(store) => ops::migrate(&store.store).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            exit_code(&e)
        }
    }
}

/// Log to stderr (stdout carries only the JSON results) at the level
/// `verbosity` (the count of `-v`) selects: warn, info, debug, trace.
fn init_logging(verbosity: u8) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    // The store's own events at the chosen level; its drivers' (sqlx logs
    // every statement at DEBUG) only from -vvv on, and their warnings always.
    let (ours, theirs) = match verbosity {
        0 => (Level::WARN, Level::WARN),
        1 => (Level::INFO, Level::WARN),
        2 => (Level::DEBUG, Level::WARN),
        _ => (Level::TRACE, Level::TRACE),
    };
    let filter = Targets::new()
        .with_default(LevelFilter::from_level(theirs))
        .with_target("mcp_session_store", LevelFilter::from_level(ours));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(io::stderr)
                .with_ansi(io::stderr().is_terminal()),
        )
        .with(filter)
        .init();
}

/// 2 for invalid input, 1 for anything else.
fn exit_code(e: &Error) -> ExitCode {
    if e.kind() == ErrorKind::InvalidInput {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_bench_only_list() {
        let cli = Cli::try_parse_from([
            "mcp-session-store",
            "bench",
            "--store",
            "memory://",
            "--only",
            "W1,w3a",
            "--sessions",
            "10",
        ])
        .unwrap();
        let Command::Bench(args) = cli.command else {
            panic!("not bench");
        };
        assert_eq!(args.only, ["W1", "w3a"]);
        assert_eq!(args.sessions, 10);
        assert_eq!(args.events, 100);
        assert_eq!(args.concurrency, 8);
    }

    #[test]
    fn rejects_zero_sessions() {
        assert!(
            Cli::try_parse_from([
                "mcp-session-store",
                "bench",
                "--store",
                "memory://",
                "--sessions",
                "0",
            ])
            .is_err()
        );
    }

    #[test]
    fn counts_verbose_flags_anywhere() {
        let cli = Cli::try_parse_from([
            "mcp-session-store",
            "-vv",
            "migrate",
            "--store",
            "memory://",
        ])
        .unwrap();
        assert_eq!(cli.verbose, 2);
        let cli = Cli::try_parse_from([
            "mcp-session-store",
            "bench-child",
            "-v",
            "--role",
            "paced",
            "--store",
            "memory://",
            "--session",
            "s",
            "--events",
            "1",
            "--max-events-per-session",
            "10",
        ])
        .unwrap();
        assert_eq!(cli.verbose, 1);
        let cli =
            Cli::try_parse_from(["mcp-session-store", "cleanup", "--store", "memory://"]).unwrap();
        assert_eq!(cli.verbose, 0);
    }
}

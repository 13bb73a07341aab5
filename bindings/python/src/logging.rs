//! The core's `tracing` events, forwarded to Python's `logging`.
//!
//! The core reports what fails in the background (sweeper runs, reconnects)
//! as `tracing` events under targets starting with `mcp_session_store`. When
//! the module loads, and only if no other global `tracing` subscriber is set,
//! [`install`] sets one whose single layer forwards those events to the
//! logger `mcp_session_store`.
//!
//! An event can be emitted on any thread, including one that holds the GIL
//! or one the GIL holder is waiting for. So the layer never takes the GIL: it
//! formats the event and hands it, without blocking, to a forwarding thread
//! (an event is dropped if that queue is full). The forwarding thread waits
//! for events without the GIL and takes it only to call `Logger.log`.

use std::fmt::Write as _;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// The target prefix of the core's events, and the Python logger's name.
const TARGET: &str = "mcp_session_store";

/// Events waiting for the forwarding thread; more are dropped.
const QUEUE: usize = 1024;

/// One event, ready for `Logger.log`.
struct Record {
    level: u8,
    target: &'static str,
    message: String,
}

/// The layer: forwards the events of [`TARGET`] at DEBUG and above.
struct ForwardToLogging {
    queue: SyncSender<Record>,
}

fn forwarded(meta: &Metadata<'_>) -> bool {
    meta.is_event() && meta.target().starts_with(TARGET) && *meta.level() <= Level::DEBUG
}

/// The `logging` level of a `tracing` level.
fn python_level(level: Level) -> u8 {
    match level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

/// The message field first, then the other fields as `name=value`.
#[derive(Default)]
struct Message {
    text: String,
    fields: String,
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.text, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for ForwardToLogging {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if forwarded(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        forwarded(meta)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut message = Message::default();
        event.record(&mut message);
        message.text.push_str(&message.fields);
        let record = Record {
            level: python_level(*meta.level()),
            target: meta.target(),
            message: message.text,
        };
        match self.queue.try_send(record) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The forwarding thread: one `Logger.log` call per event, until the
/// interpreter shuts down.
fn forward(records: Receiver<Record>) {
    while let Ok(record) = records.recv() {
        let attached = Python::try_attach(|py| {
            let log = || -> PyResult<()> {
                let logger = py.import("logging")?.call_method1("getLogger", (TARGET,))?;
                let extra = PyDict::new(py);
                extra.set_item("tracing_target", record.target)?;
                let kwargs = PyDict::new(py);
                kwargs.set_item("extra", extra)?;
                logger.call_method("log", (record.level, record.message), Some(&kwargs))?;
                Ok(())
            };
            if let Err(e) = log() {
                // A failing handler must not stop the forwarding.
                e.print(py);
            }
        });
        if attached.is_none() {
            return;
        }
    }
}

/// Forward the core's events to `logging`, unless another global `tracing`
/// subscriber is already set. Returns whether forwarding is on.
pub fn install() -> bool {
    let (queue, records) = sync_channel(QUEUE);
    let subscriber = tracing_subscriber::registry().with(ForwardToLogging { queue });
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        return false;
    }
    std::thread::Builder::new()
        .name("mss-logging".into())
        .spawn(move || forward(records))
        .is_ok()
}

/// `_emit_log(level, message)`: emit one event under the target
/// `mcp_session_store::python`, for the tests of the forwarding.
#[pyfunction]
#[pyo3(name = "_emit_log")]
pub fn emit_log(py: Python<'_>, level: &str, message: &str) -> PyResult<()> {
    const T: &str = "mcp_session_store::python";
    match level {
        "error" => tracing::error!(target: T, "{message}"),
        "warn" => tracing::warn!(target: T, "{message}"),
        "info" => tracing::info!(target: T, "{message}"),
        "debug" => tracing::debug!(target: T, "{message}"),
        "trace" => tracing::trace!(target: T, "{message}"),
        other => {
            return Err(crate::errors::invalid_input(
                py,
                format!("unknown level {other:?}: use error, warn, info, debug or trace"),
            ));
        }
    }
    Ok(())
}

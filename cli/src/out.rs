//! JSON lines on stdout.

use std::io::{self, BufWriter, Stdout, Write};

use mcp_session_store::{Error, ErrorKind, Result};
use serde::Serialize;

/// Buffered stdout that writes one JSON value per line. A closed pipe (the
/// reader went away, e.g. `| head`) ends the process quietly with status 0.
pub struct Out {
    w: BufWriter<Stdout>,
}

impl Out {
    pub fn new() -> Out {
        Out {
            w: BufWriter::new(io::stdout()),
        }
    }

    /// Write `value` as one line of JSON.
    pub fn line<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let written = serde_json::to_writer(&mut self.w, value)
            .map_err(io::Error::from)
            .and_then(|()| self.w.write_all(b"\n"));
        written.map_err(io_error)
    }

    /// Push everything written so far to stdout.
    pub fn flush(&mut self) -> Result<()> {
        self.w.flush().map_err(io_error)
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        let _ = self.w.flush();
    }
}

fn io_error(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    Error::new(
        ErrorKind::Unavailable,
        format!("cannot write to stdout: {e}"),
    )
}

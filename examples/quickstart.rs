//! Quickstart: a session, events on two streams, and a client that reconnects
//! with `Last-Event-ID` and gets exactly what it missed on its stream.
//!
//! ```sh
//! cargo run -p mcp-session-store-examples --example quickstart              # sqlite://sessions.db
//! cargo run -p mcp-session-store-examples --example quickstart -- memory://
//! ```

use mcp_session_store::{NewEvent, NewSession, Store};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite://sessions.db".to_string());
    let store = Store::open(&url).await?;
    println!("store: {url} ({} backend)", store.backend_name());

    // An MCP server creates a session at `initialize` and keeps state in it.
    let session = store
        .create_session(
            NewSession::new().with_metadata(
                json!({"client": "quickstart", "protocol": "2025-11-25"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .await?;
    println!("session: {}", session.id);
    store.set_state(&session.id, "tool_calls", json!(0)).await?;

    // Two streams: a POST request's stream ("2") and the standalone GET stream.
    let mut last_seen = None;
    for step in 1..=5 {
        let progress = json!({
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": "call-2", "progress": step, "total": 5}
        });
        let event = store
            .append_event(&session.id, NewEvent::new("2", progress))
            .await?;
        let log = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": format!("step {step}")}});
        store
            .append_event(&session.id, NewEvent::new("_GET_stream", log))
            .await?;
        // The client's connection drops after it received progress 2.
        if step == 2 {
            last_seen = Some(event.wire_id());
        }
    }
    store
        .update_state(&session.id, "tool_calls", |n| {
            Ok(json!(n.and_then(|n| n.as_u64()).unwrap_or(0) + 1))
        })
        .await?;

    // The client reconnects with `Last-Event-ID: <last_seen>`.
    let last_event_id = last_seen.expect("set at step 2");
    println!("client reconnects with Last-Event-ID: {last_event_id}");
    let missed = store.replay(&session.id, &last_event_id, 100).await?;
    println!(
        "replaying {} missed events of stream \"2\":",
        missed.items.len()
    );
    for event in &missed.items {
        let data = event.data.as_ref().map(|d| d.as_str()).unwrap_or("");
        println!("id: {}\ndata: {data}\n", event.wire_id());
    }

    let calls = store.get_state(&session.id, "tool_calls").await?;
    println!(
        "state tool_calls = {}",
        calls.map(|e| e.value.to_string()).unwrap_or_default()
    );
    store.delete_session(&session.id).await?;
    store.close().await?;
    Ok(())
}

//! DynamoDB: a namespace is a table of its own, deleted when the namespace
//! drops; and a client for tests that look at a table behind the store's
//! back.

use crate::namespace::CleanupFn;

/// Deletes a namespace's table (created by the store with
/// `create_table=true`) when the namespace drops.
#[cfg(feature = "dynamodb")]
pub(crate) fn dynamodb_cleanup(endpoint: String, table: String) -> Option<CleanupFn> {
    Some(Box::new(move || {
        crate::namespace::block_on_fresh(async move {
            let _ = dynamodb_client(&endpoint)
                .await
                .delete_table()
                .table_name(table)
                .send()
                .await;
        })
    }))
}

/// Without the feature no table is ever created.
#[cfg(not(feature = "dynamodb"))]
pub(crate) fn dynamodb_cleanup(_endpoint: String, _table: String) -> Option<CleanupFn> {
    None
}

/// A DynamoDB client for a local endpoint (dummy credentials), for tests
/// that inspect or change a table behind the store's back.
#[cfg(feature = "dynamodb")]
pub async fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "mss-local",
            "mss-local",
            None,
            None,
            "mss-tests",
        ))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

//! PostgreSQL: a namespace is a schema of its own, dropped when the namespace
//! drops.

use crate::namespace::CleanupFn;

/// Drops a namespace's schema when the namespace drops.
#[cfg(feature = "postgres")]
pub(crate) fn postgres_cleanup(url: String, schema: String) -> Option<CleanupFn> {
    Some(Box::new(move || {
        crate::namespace::block_on_fresh(drop_postgres_schema(url, schema))
    }))
}

/// Without the feature no schema is ever created.
#[cfg(not(feature = "postgres"))]
pub(crate) fn postgres_cleanup(_url: String, _schema: String) -> Option<CleanupFn> {
    None
}

#[cfg(feature = "postgres")]
async fn drop_postgres_schema(url: String, schema: String) {
    use sqlx::{Connection, Executor};
    if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
        let _ = conn
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .await;
        let _ = conn.close().await;
    }
}

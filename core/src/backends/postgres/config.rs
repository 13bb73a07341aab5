//! The options of a `postgres://…` URL, parsed into a [`PostgresConfig`]:
//! the store's own options, and the connection parameters passed through to
//! the driver.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use super::connect::map_err;
use crate::error::{Error, Result};
use crate::options::StoreUrl;

/// Everything a PostgreSQL store is opened with, besides the common limits.
#[derive(Clone)]
pub(crate) struct PostgresConfig {
    /// `schema`: where the tables live (default `public`).
    pub schema: String,
    /// `pool_size`: most connections, 1-1000.
    pub pool_size: u32,
    /// `connect_timeout`: how long to wait for a connection.
    pub connect_timeout: Duration,
    /// `statement_timeout`: the server-side limit per statement; zero
    /// disables it.
    pub statement_timeout: Duration,
    /// `notify`: send `NOTIFY` on append while a store listens.
    pub notify: bool,
    /// The server, database and credentials, with the driver's parameters.
    pub connect: PgConnectOptions,
}

impl PostgresConfig {
    /// Take the PostgreSQL options out of `url`, then fail on any left over.
    pub fn from_url(url: &mut StoreUrl) -> Result<PostgresConfig> {
        let schema = url.take("schema").unwrap_or_else(|| "public".to_string());
        valid_schema(&schema)?;
        let pool_size: u32 = url.take_number("pool_size")?.unwrap_or(10);
        if !(1..=1000).contains(&pool_size) {
            return Err(Error::invalid("option pool_size must be 1-1000"));
        }
        let connect_timeout = url
            .take_duration("connect_timeout")?
            .unwrap_or(Duration::from_secs(5));
        if connect_timeout.is_zero() {
            return Err(Error::invalid("option connect_timeout must be above 0"));
        }
        let statement_timeout = url
            .take_duration("statement_timeout")?
            .unwrap_or(Duration::from_secs(30));
        let notify = match url.take("notify") {
            Some(v) => parse_bool("notify", &v)?,
            None => true,
        };
        let driver = {
            let mut driver = form_urlencoded::Serializer::new(String::new());
            for name in DRIVER_PARAMS {
                if let Some(value) = url.take(name) {
                    driver.append_pair(name, &value);
                }
            }
            driver.finish()
        };
        url.finish()?;
        let mut conn_url = format!("postgres://{}", url.raw_location);
        if !driver.is_empty() {
            conn_url.push('?');
            conn_url.push_str(&driver);
        }
        let connect = PgConnectOptions::from_str(&conn_url).map_err(|e| {
            Error::invalid(format!("invalid PostgreSQL URL: {}", map_err(e).message()))
        })?;
        Ok(PostgresConfig {
            schema,
            pool_size,
            connect_timeout,
            statement_timeout,
            notify,
            connect,
        })
    }
}

/// Connection parameters passed through to the driver.
const DRIVER_PARAMS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// A schema name: a lower-case SQL identifier that needs no quoting, short
/// enough that the notification channel name fits in 63 bytes.
fn valid_schema(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "option schema: {name:?} is not a valid schema name \
             (1-48 bytes of a-z, 0-9 and _, not starting with a digit or pg_)"
        )))
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(Error::invalid(format!(
            "option {name}: {other:?} is not true or false"
        ))),
    }
}

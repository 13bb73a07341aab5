//! The client and the table: the SDK configuration (ring-only rustls,
//! timeouts, retries, dummy credentials for a local endpoint), checking or
//! creating the table, and its `CONFIG` item with the shard count.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};

use super::config::{DynamoConfig, MAX_SHARDS};
use super::errors::{internal, is_code};
use super::item::{config_key, corrupt, get_num, n, names};
use super::{DEFAULT_SHARDS, DynamoBackend};
use crate::error::{Error, ErrorKind, Result};

/// A client as `config` says: its region, endpoint, timeouts and retries.
pub(super) async fn client(config: &DynamoConfig) -> Result<Client> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(config.connect_timeout)
                .operation_timeout(config.timeout)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts));
    let env_region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|r| !r.is_empty()));
    if let Some(r) = &config.region {
        loader = loader.region(Region::new(r.clone()));
    } else if config.endpoint.is_some() && !env_region {
        loader = loader.region(Region::from_static("us-east-1"));
    }
    if let Some(e) = &config.endpoint {
        loader = loader.endpoint_url(e.clone());
        if std::env::var("AWS_ACCESS_KEY_ID").map_or(true, |v| v.is_empty()) {
            loader = loader.credentials_provider(Credentials::new(
                "mss-local",
                "mss-local",
                None,
                None,
                "mcp-session-store-local-endpoint",
            ));
        }
    }
    let sdk_config = loader.load().await;
    if sdk_config.region().is_none() {
        return Err(Error::invalid(
            "no AWS region for DynamoDB: add region=… to the URL or set AWS_REGION",
        ));
    }
    Ok(Client::new(&sdk_config))
}

impl DynamoBackend {
    /// The table's shard count, from its `CONFIG` item; the first opener of
    /// a table writes it (`shards`, default 4). Every handle must agree on
    /// it, so it cannot change once written.
    pub(super) async fn table_shards(&self, wanted: Option<u32>) -> Result<u32> {
        for _ in 0..3 {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(config_key()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| self.sdk_err("GetItem", e))?;
            if let Some(item) = out.item {
                let stored: u32 = get_num(&item, "shards")?;
                if !(1..=MAX_SHARDS).contains(&stored) {
                    return Err(corrupt("shards"));
                }
                if let Some(w) = wanted
                    && w != stored
                {
                    return Err(Error::invalid(format!(
                        "option shards={w}: DynamoDB table {:?} already uses {stored} shards, and this cannot change",
                        self.table
                    )));
                }
                return Ok(stored);
            }
            let mut item = config_key();
            item.insert("shards".to_string(), n(wanted.unwrap_or(DEFAULT_SHARDS)));
            item.insert("layout".to_string(), n(1));
            let cond = "attribute_not_exists(#pk)";
            match self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(cond)
                .set_expression_attribute_names(names(&[cond]))
                .send()
                .await
            {
                Ok(_) => return Ok(wanted.unwrap_or(DEFAULT_SHARDS)),
                // Written by another opener: read it.
                Err(e) if is_code(&e, "ConditionalCheckFailedException") => {}
                Err(e) => return Err(self.sdk_err("PutItem", e)),
            }
        }
        Err(Error::new(
            ErrorKind::Backend,
            "the table's CONFIG item could be neither read nor written",
        ))
    }

    /// Check that the table exists with this backend's key schema, or
    /// create it (`create_table=true`).
    pub(super) async fn ensure_table(&self, create: bool) -> Result<()> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(out) => {
                let schema = out.table().map(|t| t.key_schema()).unwrap_or_default();
                let has = |name: &str, kind: KeyType| {
                    schema
                        .iter()
                        .any(|k| k.attribute_name() == name && *k.key_type() == kind)
                };
                if schema.len() != 2 || !has("pk", KeyType::Hash) || !has("sk", KeyType::Range) {
                    return Err(Error::new(
                        ErrorKind::Backend,
                        format!(
                            "DynamoDB table {:?} exists but its key schema is not (pk HASH, sk RANGE) of strings: it is not a mcp-session-store table",
                            self.table
                        ),
                    ));
                }
                Ok(())
            }
            Err(e) if is_code(&e, "ResourceNotFoundException") => {
                if !create {
                    return Err(Error::not_found(format!(
                        "DynamoDB table {:?} does not exist: create it (see the README) or open with create_table=true",
                        self.table
                    )));
                }
                self.create_table().await
            }
            Err(e) => Err(self.sdk_err("DescribeTable", e)),
        }
    }

    /// Create the table (on-demand billing), wait until it is active, and
    /// enable native TTL on `ttl`.
    async fn create_table(&self) -> Result<()> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(internal)
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(internal)
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Created by another opener meanwhile.
            Err(e) if is_code(&e, "ResourceInUseException") => {}
            Err(e) => return Err(self.sdk_err("CreateTable", e)),
        }
        self.client
            .wait_until_table_exists()
            .table_name(&self.table)
            .wait(Duration::from_secs(120))
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "DynamoDB table {:?} did not become active: {}",
                        self.table,
                        DisplayErrorContext(&e)
                    ),
                )
            })?;
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name("ttl")
            .build()
            .map_err(internal)?;
        match self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Already enabled (by a concurrent opener).
            Err(e) if is_code(&e, "ValidationException") => Ok(()),
            Err(e) => Err(self.sdk_err("UpdateTimeToLive", e)),
        }
    }
}

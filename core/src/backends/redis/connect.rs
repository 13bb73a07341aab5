//! Reaching Redis: TLS roots, the nodes of a cluster, a single-server or
//! cluster connection ([`Conn`]), and where the pub/sub listener connects
//! ([`Listen`]).

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, Value,
};

use super::codec::map_err;
use super::config::{ClusterMode, RedisConfig};
use super::scripts::load_scripts;
use crate::error::{Error, ErrorKind, Result};

/// A connection to a single server or to a cluster; cheap to clone, both
/// reconnect by themselves.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Where the pub/sub listener connects: the store's server, or the
/// cluster (a client of its own, speaking RESP3 for pushes).
#[derive(Clone)]
pub(super) enum Listen {
    Single(redis::Client),
    Cluster(Servers),
}

/// An open connection: the store's, the listener's target, and
/// `host:port` for messages.
pub(super) struct Connected {
    pub(super) conn: Conn,
    pub(super) listen: Listen,
    pub(super) target: String,
}

/// Connect as `config` says (TLS for `rediss://`, a cluster connection on a
/// cluster) and load the scripts, within the connect timeout plus the reply
/// timeout. A server that cannot be reached is `Unavailable`.
pub(super) async fn open(config: &RedisConfig) -> Result<Connected> {
    if config.scheme == "rediss" {
        // rustls needs one process-wide crypto provider: ring, unless
        // the application installed another one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let root_cert = match &config.tls_ca_file {
        None => None,
        Some(path) => Some(read_roots(path)?),
    };
    let conn_url = format!("{}://{}", config.scheme, config.location);
    let info = conn_url
        .as_str()
        .into_connection_info()
        .map_err(|e| Error::invalid(format!("invalid Redis URL: {e}")))?;
    let mut nodes = vec![info.clone()];
    for node in &config.cluster_nodes {
        nodes.push(other_node(&info, node)?);
    }
    let target = describe(&info);
    let connect_timeout = config.connect_timeout;
    let setup = Servers {
        nodes,
        root_cert,
        connect_timeout,
        timeout: config.timeout,
    };
    let unavailable = |detail: String| {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "cannot connect to Redis at {target} within {}ms: {detail}",
                connect_timeout.as_millis()
            ),
        )
    };
    let mode = config.cluster;
    let connected =
        tokio::time::timeout(connect_timeout + config.timeout, connect(mode, setup)).await;
    let (conn, listen) = match connected {
        Ok(Ok(pair)) => pair,
        Ok(Err(e))
            if mode == ClusterMode::Yes && e.to_string().contains("cluster support disabled") =>
        {
            return Err(Error::invalid(format!(
                "option cluster=true: Redis at {target} is not a cluster node"
            )));
        }
        Ok(Err(e)) => {
            let mapped = map_err(e);
            return Err(match mapped.kind() {
                ErrorKind::Unavailable | ErrorKind::Timeout => {
                    unavailable(mapped.message().to_string())
                }
                _ => mapped,
            });
        }
        Err(_) => return Err(unavailable("no connection".to_string())),
    };
    Ok(Connected {
        conn,
        listen,
        target,
    })
}

/// The PEM file `path` of `tls_ca_file`, checked to hold certificates.
fn read_roots(path: &str) -> Result<Vec<u8>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::invalid(format!("option tls_ca_file: cannot read {path:?}: {e}")))?;
    // The driver would take a file without certificates as "trust
    // nothing" and fail every handshake: say so now.
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs: std::result::Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    if !certs.is_ok_and(|c| !c.is_empty()) {
        return Err(Error::invalid(format!(
            "option tls_ca_file: {path:?} holds no PEM certificate"
        )));
    }
    Ok(pem)
}

/// The connection info of another node `host:port` of a cluster: the
/// scheme, credentials and TLS settings of `first`.
fn other_node(first: &ConnectionInfo, node: &str) -> Result<ConnectionInfo> {
    let bad = || Error::invalid(format!("option cluster_nodes: {node:?} is not host:port"));
    let (host, port) = node.trim().rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    let addr = match first.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        ConnectionAddr::Tcp(..) => ConnectionAddr::Tcp(host.to_string(), port),
        _ => return Err(Error::invalid("option cluster_nodes needs a TCP URL")),
    };
    Ok(first.clone().set_addr(addr))
}

/// `host:port`, for messages.
fn describe(info: &ConnectionInfo) -> String {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port} (TLS)"),
        other => format!("{other:?}"),
    }
}

/// How to reach the server or the cluster: the nodes to try (the URL's
/// first), the TLS roots and the timeouts.
#[derive(Clone)]
pub(super) struct Servers {
    nodes: Vec<ConnectionInfo>,
    root_cert: Option<Vec<u8>>,
    connect_timeout: Duration,
    timeout: Duration,
}

impl Servers {
    /// A cluster client builder for these nodes.
    pub(super) fn builder(&self) -> ClusterClientBuilder {
        let mut builder = ClusterClientBuilder::new(self.nodes.clone())
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.timeout)
            .retries(3)
            .min_retry_wait(20)
            .max_retry_wait(500);
        if let Some(pem) = &self.root_cert {
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            });
        }
        builder
    }
}

/// Connect to `setup.nodes[0]` as a single server, or to the cluster the
/// nodes belong to; load the scripts.
async fn connect(mode: ClusterMode, setup: Servers) -> redis::RedisResult<(Conn, Listen)> {
    let cluster = match mode {
        ClusterMode::Yes => true,
        ClusterMode::No => false,
        ClusterMode::Auto if setup.nodes.len() > 1 => true,
        ClusterMode::Auto => {
            let (mut conn, client) = connect_single(&setup).await?;
            // A server that does not know the command (or may not run it)
            // is no cluster node.
            let info: String = redis::cmd("INFO")
                .arg("cluster")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !info.lines().any(|l| l.trim() == "cluster_enabled:1") {
                let mut conn = Conn::Single(conn);
                load_scripts(&mut conn).await?;
                return Ok((conn, Listen::Single(client)));
            }
            true
        }
    };
    if !cluster {
        let (conn, client) = connect_single(&setup).await?;
        let mut conn = Conn::Single(conn);
        load_scripts(&mut conn).await?;
        return Ok((conn, Listen::Single(client)));
    }
    let client: ClusterClient = setup.builder().build()?;
    let mut conn = Conn::Cluster(client.get_async_connection().await?);
    if mode == ClusterMode::Yes {
        // A single server answers CLUSTER commands with an error.
        let _: Value = redis::cmd("CLUSTER")
            .arg("MYID")
            .query_async(&mut conn)
            .await?;
    }
    load_scripts(&mut conn).await?;
    Ok((conn, Listen::Cluster(setup)))
}

/// A connection manager for the single server `setup.nodes[0]`, and its
/// client (for pub/sub).
async fn connect_single(setup: &Servers) -> redis::RedisResult<(ConnectionManager, redis::Client)> {
    let info = setup.nodes[0].clone();
    let client = match &setup.root_cert {
        None => redis::Client::open(info)?,
        Some(pem) => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        )?,
    };
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(setup.connect_timeout))
        .set_response_timeout(Some(setup.timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(500));
    let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
    Ok((conn, client))
}

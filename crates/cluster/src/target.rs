//! What `volley cluster test` runs against: a cluster it brought up itself,
//! or one already running from `volley cluster up` (driven through its
//! admin address, as another terminal would).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::{Action, Cluster, Injected};
use crate::state::StateFile;
use crate::Error;

/// The cluster under test.
#[derive(Debug, Clone)]
pub enum Target {
    /// Brought up by the test, in this process.
    Own(Arc<Cluster>),
    /// Running from `volley cluster up`, reached through its admin address.
    Running {
        /// The admin port.
        admin: u16,
        /// The proxy's port.
        proxy: u16,
        /// Each node's name and port.
        nodes: Vec<(String, u16)>,
        /// "3 nodes, redis broker, ...", for the report.
        shape: String,
        /// Whether its store is PostgreSQL (store faults apply).
        postgres: bool,
    },
}

impl Target {
    /// The cluster running from `dir`.
    pub async fn running(dir: &Path) -> Result<Target, Error> {
        let file = StateFile::read(dir)?;
        if !file.alive() {
            return Err(Error::NotRunning(dir.display().to_string()));
        }
        let state = crate::up::status(dir).await?;
        let nodes: Vec<(String, u16)> = state["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| Some((n["name"].as_str()?.to_owned(), n["port"].as_u64()? as u16)))
            .collect();
        let shape = format!(
            "{} nodes, {} broker, {} store, {} proxy (a running cluster: {})",
            nodes.len(),
            state["broker"].as_str().unwrap_or("?"),
            state["store"].as_str().unwrap_or("?"),
            state["proxy"].as_str().unwrap_or("?"),
            dir.display()
        );
        Ok(Target::Running {
            admin: file.admin,
            proxy: file.proxy,
            postgres: state["store"] == "postgres",
            nodes,
            shape,
        })
    }

    /// Where clients connect.
    pub fn proxy_port(&self) -> u16 {
        match self {
            Target::Own(c) => c.proxy_port,
            Target::Running { proxy, .. } => *proxy,
        }
    }

    /// Each node's name and its own port.
    pub fn nodes(&self) -> Vec<(String, u16)> {
        match self {
            Target::Own(c) => c.nodes.clone(),
            Target::Running { nodes, .. } => nodes.clone(),
        }
    }

    /// Whether the store is PostgreSQL.
    pub fn postgres(&self) -> bool {
        match self {
            Target::Own(c) => c.store_port.is_some(),
            Target::Running { postgres, .. } => *postgres,
        }
    }

    /// Inject a fault.
    pub async fn fault(&self, action: Action, target: &str, ms: Option<u64>) -> Result<String, Error> {
        match self {
            Target::Own(c) => c.fault(action, target, ms).await,
            Target::Running { admin, .. } => crate::up::post_fault(*admin, action.name(), target, ms).await,
        }
    }

    /// Heal every link, resume and start every process.
    pub async fn heal_all(&self) -> Vec<String> {
        match self {
            Target::Own(c) => c.heal_all().await,
            Target::Running { admin, .. } => {
                let answer = tokio::time::timeout(
                    Duration::from_secs(120),
                    crate::http::request_long(*admin, "POST", "/api/heal", Some(&serde_json::json!({}))),
                )
                .await;
                match answer {
                    Ok(Ok((200, body))) => serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| {
                            v["done"]
                                .as_array()
                                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                        })
                        .unwrap_or_default(),
                    other => vec![format!("heal failed: {other:?}")],
                }
            }
        }
    }

    /// The faults injected so far, on the cluster's clock.
    pub async fn injected(&self) -> Vec<Injected> {
        match self {
            Target::Own(c) => c.injected(),
            Target::Running { admin, .. } => {
                let Ok((200, body)) = crate::http::get(*admin, "/api/state").await else {
                    return Vec::new();
                };
                serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| serde_json::from_value(v["faults"].clone()).ok())
                    .unwrap_or_default()
            }
        }
    }

    /// The cluster's clock, in milliseconds.
    pub async fn now_ms(&self) -> u64 {
        match self {
            Target::Own(c) => c.now_ms(),
            Target::Running { admin, .. } => match crate::http::get(*admin, "/api/state").await {
                Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["uptime_ms"].as_u64())
                    .unwrap_or(0),
                _ => 0,
            },
        }
    }
}

//! Every metric the chat exports, registered at start with its zero value.
//!
//! Prometheus's convention: a series that appears only after its first event
//! cannot be told from a missing exporter, and `rate()` over it starts late;
//! alerts written from docs/deploy.md must find every name on a fresh node.

/// Register the chat's series (and, with a network broker, the broker's
/// under its label) at zero.
pub(crate) fn register(broker: Option<&'static str>) {
    for name in [
        "volley_auth_failures_total",
        "volley_catch_up_after_reconnect_total",
        "volley_deliveries_total",
        "volley_gap_fills_total",
        "volley_messages_total",
        "volley_password_checks_refused_total",
        "volley_rate_limited_total",
        "volley_replayed_total",
        "volley_slow_consumers_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    metrics::counter!("volley_gap_fills_total", "by" => "node").increment(0);
    for reason in ["address_cap", "head_timeout"] {
        metrics::counter!("volley_connections_refused_total", "reason" => reason).increment(0);
    }
    for reason in ["origin", "shutdown", "handshake"] {
        metrics::counter!("volley_handshake_rejected_total", "reason" => reason).increment(0);
    }
    for transport in ["http/1.1", "h2", "h3"] {
        metrics::counter!("volley_websocket_upgrades_total", "transport" => transport).increment(0);
    }
    metrics::counter!("volley_h3_requests_total").increment(0);
    for name in ["volley_connections", "volley_presence_online"] {
        metrics::gauge!(name).increment(0.0);
    }
    let _ = metrics::histogram!("volley_append_seconds");
    let Some(broker) = broker else {
        return;
    };
    for name in [
        "volley_broker_disconnects_total",
        "volley_broker_dropped_total",
        "volley_broker_foreign_total",
        "volley_broker_published_total",
        "volley_broker_received_total",
    ] {
        metrics::counter!(name, "broker" => broker).increment(0);
    }
    let _ = metrics::histogram!("volley_broker_publish_seconds", "broker" => broker);
    for name in [
        "volley_presence_expired_total",
        "volley_presence_sent_total",
        "volley_presence_syncs_total",
        "volley_presence_tables_applied_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    metrics::gauge!("volley_presence_peers").set(0.0);
}

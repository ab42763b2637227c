//! How the daemon is doing: `GET /v1/sources` (each leak source's last
//! event, lag and errors) and `GET /metrics` in Prometheus' text format.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::{rfc3339, AppError, AppState, Authed};
use crate::service::ServiceError;
use crate::store::SourceStatus;

#[utoipa::path(get, path = "/v1/sources", security(("bearer" = [])),
    responses((status = 200, description = "every leak source's health: `{sources: [{name, kind, events, errors, last_event_at, last_ok_at, lag_ms, last_error}]}`", body = Object), super::error::Errors))]
pub async fn sources(State(s): State<AppState>, Authed(caller): Authed) -> Result<Json<Value>, AppError> {
    let statuses = s.service.source_statuses(&caller).await?;
    let shown: Vec<Value> = statuses.iter().map(source_json).collect();
    Ok(Json(json!({"sources": shown})))
}

fn source_json(status: &SourceStatus) -> Value {
    json!({
        "name": status.name,
        "kind": status.kind,
        "events": status.events,
        "errors": status.errors,
        "last_event_at": status.last_event_at.map(rfc3339),
        "last_ok_at": status.last_ok_at.map(rfc3339),
        "lag_ms": status.lag_ms,
        "last_error": status.last_error,
    })
}

/// A per-source metric: name, type, help, and its value for a source
/// (none when the source has not got that far yet).
type SourceMetric = (&'static str, &'static str, &'static str, fn(&SourceStatus) -> Option<f64>);

const SOURCE_METRICS: [SourceMetric; 4] = [
    ("keyward_source_events_total", "counter", "Events each leak source has read.", |s| {
        Some(s.events as f64)
    }),
    (
        "keyward_source_errors_total",
        "counter",
        "Events each leak source failed to read.",
        |s| Some(s.errors as f64),
    ),
    (
        "keyward_source_last_event_timestamp_seconds",
        "gauge",
        "When each source last read an event.",
        |s| s.last_event_at.map(|ms| ms as f64 / 1000.0),
    ),
    (
        "keyward_source_lag_seconds",
        "gauge",
        "From an event's arrival to its tokens being handled, last event.",
        |s| s.lag_ms.map(|ms| ms as f64 / 1000.0),
    ),
];

#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"), super::error::Errors))]
pub async fn metrics(State(s): State<AppState>) -> Result<impl IntoResponse, AppError> {
    let store = s.service.store();
    let unavailable = |e| AppError::from(ServiceError::from(e));
    let statuses = store.source_statuses().await.map_err(unavailable)?;
    let depth = store.queue_depth().await.map_err(unavailable)?;
    let mut out = String::new();
    for (name, kind, help, value) in SOURCE_METRICS {
        family(&mut out, name, kind, help);
        for st in &statuses {
            if let Some(v) = value(st) {
                sample(&mut out, name, st, v);
            }
        }
    }
    process_metrics(&mut out);
    family(&mut out, "keyward_jobs", "gauge", "Jobs in the durable queue, by state.");
    for (state, n) in [("pending", depth.pending), ("running", depth.running), ("dead", depth.dead)] {
        out.push_str(&format!("keyward_jobs{{state=\"{state}\"}} {n}\n"));
    }
    let pepper_id = s.service.verifier().fingerprinter().pepper_id();
    let stale = store.keys_on_other_peppers(pepper_id).await.map_err(unavailable)?;
    family(
        &mut out,
        "keyward_keys_on_previous_pepper",
        "gauge",
        "Active keys whose fingerprint an older pepper made; drop the previous pepper only at 0.",
    );
    out.push_str(&format!("keyward_keys_on_previous_pepper {stale}\n"));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

/// The counters this process keeps in memory (`crate::metrics`).
fn process_metrics(out: &mut String) {
    use crate::metrics::{Metrics, METRICS, VERIFY_BUCKETS};
    use crate::service::VerifyCode;
    family(
        out,
        "keyward_verify_seconds",
        "histogram",
        "Verify calls by code, and how long they took.",
    );
    for code in VerifyCode::ALL {
        let (buckets, count, sum) = METRICS.verify_histogram(code).snapshot();
        let code = code.as_str();
        for (bound, n) in VERIFY_BUCKETS.iter().zip(&buckets) {
            out.push_str(&format!("keyward_verify_seconds_bucket{{code=\"{code}\",le=\"{bound}\"}} {n}\n"));
        }
        out.push_str(&format!("keyward_verify_seconds_bucket{{code=\"{code}\",le=\"+Inf\"}} {count}\n"));
        out.push_str(&format!("keyward_verify_seconds_sum{{code=\"{code}\"}} {sum}\n"));
        out.push_str(&format!("keyward_verify_seconds_count{{code=\"{code}\"}} {count}\n"));
    }
    for (name, help, counter) in [
        (
            "keyward_scanned_bytes_total",
            "Bytes the daemon's sources scanned.",
            &METRICS.bytes_scanned,
        ),
        (
            "keyward_findings_total",
            "Tokens the daemon's sources found and reported.",
            &METRICS.findings,
        ),
        (
            "keyward_revocations_total",
            "Keys revoked, by people or by the leak response.",
            &METRICS.revocations,
        ),
        ("keyward_alerts_delivered_total", "Alerts delivered.", &METRICS.alerts_delivered),
        (
            "keyward_alerts_failed_total",
            "Alert deliveries that failed (and will be retried or dead-lettered).",
            &METRICS.alerts_failed,
        ),
        (
            "keyward_http_panics_total",
            "Requests whose handler panicked; each was answered 500.",
            &METRICS.http_panics,
        ),
        (
            "keyward_webhooks_shed_total",
            "Signed webhook deliveries answered 503 because too many pushes waited to be read.",
            &METRICS.webhooks_shed,
        ),
        (
            "keyward_third_party_revoked_total",
            "Tokens of other issuers revoked at their issuer's endpoint.",
            &METRICS.third_party_revoked,
        ),
    ] {
        family(out, name, "counter", help);
        out.push_str(&format!("{name} {}\n", Metrics::get(counter)));
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
}

fn sample(out: &mut String, name: &str, status: &SourceStatus, value: f64) {
    out.push_str(&format!(
        "{name}{{source=\"{}\",kind=\"{}\"}} {value}\n",
        label(&status.name),
        label(&status.kind)
    ));
}

/// Prometheus label escaping: backslash, quote and newline.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

//! `/metrics`: the process's metrics in Prometheus' text format.
//!
//! The engine and the worker record through the `metrics` facade
//! (`activity_engine::engine::metrics`, `activity_worker`'s docs list them);
//! [`prometheus_recorder`] installs the process-wide recorder that keeps them,
//! and `/metrics` renders it, with the task queues' gauges read from the
//! protocol at each scrape.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{auth::Viewer, App};

/// Latency buckets, in seconds (0.5 ms to 5 min).
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];
/// Batch-size buckets, in requests per transaction.
const JOBS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The process's Prometheus recorder, installed as the global `metrics`
/// recorder on the first call (later calls answer the same handle).
///
/// Fails when the process already has another recorder (the application
/// installed its own exporter): its metrics are then the application's to
/// expose, and the dashboard's `/metrics` says so.
///
/// ```
/// let handle = activity_dashboard::prometheus_recorder().unwrap();
/// metrics::counter!("my_app_orders_total").increment(1);
/// assert!(handle.render().contains("my_app_orders_total 1"));
/// ```
pub fn prometheus_recorder() -> Result<PrometheusHandle, String> {
    static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    RECORDER.get_or_init(install).clone()
}

fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets(SECONDS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full("activity_store_batch_jobs".into()), JOBS)
        })
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("cannot install the Prometheus recorder: {e}"))?;
    // Histograms keep their samples until upkeep folds them into buckets:
    // without a scrape for a long time they would only grow.
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(5));
            upkeep.run_upkeep();
        });
    if let Err(err) = spawned {
        tracing::warn!(%err, "no metrics upkeep thread: histograms are folded at each scrape only");
    }
    Ok(handle)
}

pub(crate) async fn metrics(State(app): State<Arc<App>>, _viewer: Viewer) -> Response {
    let handle = match &app.metrics {
        Ok(handle) => handle,
        Err(why) => {
            return (
                StatusCode::NOT_FOUND,
                format!("no Prometheus metrics here: {why}\n"),
            )
                .into_response()
        }
    };
    match app.protocol.list_task_queues().await {
        Ok(queues) => {
            for q in queues {
                let name = q.name;
                metrics::gauge!("activity_task_queue_backlog", "task_queue" => name.clone())
                    .set(q.backlog as f64);
                metrics::gauge!("activity_task_queue_dispatchable", "task_queue" => name.clone())
                    .set(q.dispatchable as f64);
                metrics::gauge!("activity_task_queue_pollers", "task_queue" => name)
                    .set(q.pollers.len() as f64);
            }
        }
        Err(err) => tracing::warn!(%err, "the task queues' gauges are not updated"),
    }
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

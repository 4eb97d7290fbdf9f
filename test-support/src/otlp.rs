//! A small OTLP/gRPC trace collector on loopback for the trace tests: it keeps
//! every span it is sent.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        trace_service_server::{TraceService, TraceServiceServer},
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    },
    trace::v1::{ResourceSpans, Span},
};

/// The collector: its endpoint, and what it received.
#[derive(Clone)]
pub struct OtlpCollector {
    /// Its URL, for an exporter (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: String,
    received: Arc<Mutex<Vec<ResourceSpans>>>,
}

#[derive(Clone)]
struct Keep(Arc<Mutex<Vec<ResourceSpans>>>);

#[tonic::async_trait]
impl TraceService for Keep {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let received = request.into_inner().resource_spans;
        self.0.lock().expect("not poisoned").extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl OtlpCollector {
    /// Serves on a free loopback port, in the background.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound address"));
        let received = Arc::default();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Keep(Arc::clone(&received))))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        Self { endpoint, received }
    }

    /// Everything received, by resource.
    pub fn resource_spans(&self) -> Vec<ResourceSpans> {
        self.received.lock().expect("not poisoned").clone()
    }

    /// Every span received.
    pub fn spans(&self) -> Vec<Span> {
        self.resource_spans()
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }
}

//! Counting and timing every HTTP request by route pattern and status, and serving `/metrics`.
//!
//! The route label is the pattern the request matched (`/v1/triage/{id}`), never the raw
//! path. Routes registered from [`crate::ROUTES`] are named by their pattern, so the label is
//! a borrowed name and the handles are cached: no allocation per request.

use crate::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpResponse, web};
use metrics::HttpMetrics;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Middleware that records each request in [`HttpMetrics`].
pub struct RecordRequests(pub HttpMetrics);

impl<S, B> Transform<S, ServiceRequest> for RecordRequests
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RecordRequestsService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RecordRequestsService { service, metrics: self.0.clone() }))
    }
}

pub struct RecordRequestsService<S> {
    service: S,
    metrics: HttpMetrics,
}

impl<S, B> Service<ServiceRequest> for RecordRequestsService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Recorded<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let start = Instant::now();
        Recorded { fut: self.service.call(req), start, metrics: self.metrics.clone() }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future, recording the request when it completes.
    pub struct Recorded<F> {
        #[pin]
        fut: F,
        start: Instant,
        metrics: HttpMetrics,
    }
}

impl<F, B> Future for Recorded<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.fut.poll(cx));
        let elapsed = this.start.elapsed();
        match &res {
            Ok(r) => {
                let (req, status) = (r.request(), r.status());
                match req.match_name() {
                    Some(route) => {
                        this.metrics.observe(Some(route), status.as_u16(), status.as_str(), elapsed)
                    }
                    // A resource registered without a name (the Swagger UI's): its pattern.
                    None => this.metrics.observe(
                        req.match_pattern().as_deref(),
                        status.as_u16(),
                        status.as_str(),
                        elapsed,
                    ),
                }
            }
            // Handlers' errors are already responses here; this is an error from the routing
            // layers themselves, with no matched route.
            Err(e) => {
                let status = e.as_response_error().status_code();
                this.metrics.observe(None, status.as_u16(), status.as_str(), elapsed);
            }
        }
        Poll::Ready(res)
    }
}

/// Metrics in the Prometheus text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Every metric (the names are `metrics::NAMES`), in the Prometheus text format 0.0.4.", content_type = "text/plain; version=0.0.4", body = String))
)]
pub(crate) async fn metrics_text(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type(metrics::Metrics::content_type()).body(state.metrics.render())
}

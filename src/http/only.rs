//! A layer applied only to the requests it concerns. Every other request goes straight to the
//! inner service, without the layer's cost: an `axum::middleware::from_fn_with_state`
//! middleware clones the application state and boxes two futures for every request, even one
//! it only passes on (a checklist revalidated with `If-None-Match`, say, which is most of the
//! traffic phones make).
//!
//! The layered service is made around the inner one for each request concerned, rather than
//! kept beside it: a kept one would be a second copy of everything inside, which the router
//! clones for every request (a tenth of a 304's time for each such layer).

use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use futures_util::future::Either;
use tower::{Layer, Service};

/// Applies `layer` to the requests `concerns` picks (see the module). The layered service
/// must be ready whenever its inner service is, as `axum::middleware::from_fn` services are.
#[derive(Clone)]
pub struct Only<L> {
    layer: L,
    concerns: fn(&Request) -> bool,
}

impl<L> Only<L> {
    pub fn new(concerns: fn(&Request) -> bool, layer: L) -> Self {
        Self { layer, concerns }
    }
}

impl<L: Clone, S> Layer<S> for Only<L> {
    type Service = OnlyService<L, S>;

    fn layer(&self, inner: S) -> Self::Service {
        OnlyService {
            layer: self.layer.clone(),
            inner,
            concerns: self.concerns,
        }
    }
}

/// The service of [`Only`].
#[derive(Clone)]
pub struct OnlyService<L, S> {
    layer: L,
    inner: S,
    concerns: fn(&Request) -> bool,
}

impl<L, S> Service<Request> for OnlyService<L, S>
where
    L: Layer<S>,
    L::Service: Service<Request, Response = Response, Error = S::Error>,
    S: Service<Request, Response = Response> + Clone,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<<L::Service as Service<Request>>::Future, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if (self.concerns)(&request) {
            // The inner service that was made ready goes into the layered one; a clone stays.
            let clone = self.inner.clone();
            let ready = std::mem::replace(&mut self.inner, clone);
            Either::Left(self.layer.layer(ready).call(request))
        } else {
            Either::Right(self.inner.call(request))
        }
    }
}

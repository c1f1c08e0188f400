//! A layer applied only to the requests it concerns. Every other request goes straight to the
//! inner service, without the layer's cost: an `axum::middleware::from_fn_with_state`
//! middleware clones the application state and boxes two futures for every request, even one
//! it only passes on (a checklist revalidated with `If-None-Match`, say, which is most of the
//! traffic phones make).

use std::task::{Context, Poll, ready};

use axum::extract::Request;
use axum::response::Response;
use futures_util::future::Either;
use tower::{Layer, Service};

/// Applies `layer` to the requests `concerns` picks (see the module).
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

impl<L: Layer<S>, S: Clone> Layer<S> for Only<L> {
    type Service = OnlyService<L::Service, S>;

    fn layer(&self, inner: S) -> Self::Service {
        OnlyService {
            layered: self.layer.layer(inner.clone()),
            inner,
            concerns: self.concerns,
        }
    }
}

/// The service of [`Only`].
#[derive(Clone)]
pub struct OnlyService<W, S> {
    layered: W,
    inner: S,
    concerns: fn(&Request) -> bool,
}

impl<W, S> Service<Request> for OnlyService<W, S>
where
    W: Service<Request, Response = Response>,
    S: Service<Request, Response = Response, Error = W::Error>,
{
    type Response = Response;
    type Error = W::Error;
    type Future = Either<W::Future, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Which of the two the next request goes to is not known yet: both must be ready.
        ready!(self.layered.poll_ready(cx))?;
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if (self.concerns)(&request) {
            Either::Left(self.layered.call(request))
        } else {
            Either::Right(self.inner.call(request))
        }
    }
}

//! Which content codings a client accepts (`Accept-Encoding`), for the
//! answers that are compressed before the compression layer sees them:
//! the documents kept compressed, and keyed answers whose stored deflate
//! stream is sent as gzip; and [`settle`], which refuses a request that
//! accepts no coding at all before anything runs.

use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, Ready, ready};
use tower::{Layer, Service};

use super::error::ApiError;
use crate::catalogs::Coding;

/// The codings of interest a request accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    pub brotli: bool,
    pub gzip: bool,
}

impl Accepted {
    /// Reads `Accept-Encoding`: a coding is accepted when named, or covered
    /// by `*`, with a q-value above 0. An entry whose q-value does not parse
    /// is ignored.
    pub fn of(headers: &HeaderMap) -> Self {
        let (mut brotli, mut gzip, mut any) = (None, None, None);
        for (name, q) in entries(headers) {
            if name.eq_ignore_ascii_case("br") {
                brotli = Some(q);
            } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(q);
            } else if name == "*" {
                any = Some(q);
            }
        }
        let accepted = |q: Option<f32>| q.or(any).is_some_and(|q| q > 0.0);
        Self {
            brotli: accepted(brotli),
            gzip: accepted(gzip),
        }
    }

    /// The coding to send a kept document in: brotli, else gzip.
    pub fn preferred(self) -> Option<Coding> {
        if self.brotli {
            Some(Coding::Brotli)
        } else if self.gzip {
            Some(Coding::Gzip)
        } else {
            None
        }
    }
}

/// The entries of `Accept-Encoding` as (coding, q-value); an entry whose
/// q-value does not parse is left out.
fn entries(headers: &HeaderMap) -> impl Iterator<Item = (&str, f32)> {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let q = parts
                .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            Some((name, q))
        })
}

/// Whether the request refuses an answer without a coding: `identity;q=0`,
/// or `*;q=0` without an `identity` entry of its own.
fn refuses_identity(headers: &HeaderMap) -> bool {
    let (mut identity, mut any) = (None, None);
    for (name, q) in entries(headers) {
        if name.eq_ignore_ascii_case("identity") {
            identity = Some(q);
        } else if name == "*" {
            any = Some(q);
        }
    }
    identity.or(any).is_some_and(|q| q <= 0.0)
}

/// Settles what a request accepts before the compression layer reads it
/// (it runs for every request; most go on untouched, since only a q-value
/// of 0 can refuse a coding and every one holds `=0`). A request that
/// accepts neither brotli nor gzip nor an answer without a coding is marked
/// [`NotAcceptable`], for [`Refuse`] to answer before any handler runs: the
/// compression layer would let the handler run and make its effect, then
/// turn its answer into a 406, so that a phone would take a write that was
/// made for one that failed. Any other gets the codings it accepts as its
/// `Accept-Encoding`, which the compression layer then reads as the client
/// meant.
pub fn settle(mut request: Request) -> Request {
    let may_refuse = request
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .any(|v| v.as_bytes().windows(2).any(|w| w == b"=0"));
    if !may_refuse {
        return request;
    }
    let accepted = Accepted::of(request.headers());
    let codings = match (accepted.brotli, accepted.gzip) {
        (true, true) => "br, gzip",
        (true, false) => "br",
        (false, true) => "gzip",
        (false, false) if !refuses_identity(request.headers()) => "identity",
        (false, false) => {
            request.extensions_mut().insert(NotAcceptable);
            "identity"
        }
    };
    request
        .headers_mut()
        .insert(header::ACCEPT_ENCODING, HeaderValue::from_static(codings));
    request
}

/// In a request's extensions: it accepts no coding (see [`settle`]).
#[derive(Debug, Clone, Copy)]
pub struct NotAcceptable;

/// The layer of [`Refuse`].
#[derive(Debug, Clone, Copy)]
pub struct RefuseLayer;

impl<S> Layer<S> for RefuseLayer {
    type Service = Refuse<S>;

    fn layer(&self, inner: S) -> Refuse<S> {
        Refuse(inner)
    }
}

/// Answers a request [`settle`] marked [`NotAcceptable`] with 406
/// `not-acceptable` before anything inside it runs, and passes any other
/// on, at the cost of one look at its extensions (a middleware would box a
/// future for every request).
#[derive(Debug, Clone)]
pub struct Refuse<S>(S);

impl<S> Service<Request> for Refuse<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.extensions().get::<NotAcceptable>().is_none() {
            return Either::Right(self.0.call(request));
        }
        Either::Left(ready(Ok(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "Accept-Encoding refuses every coding this service answers in: \
             accept gzip, or an answer without a coding",
        )
        .into_response())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accepted(values: &[&'static str]) -> Accepted {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
        }
        Accepted::of(&headers)
    }

    #[test]
    fn names_stars_and_q_values_decide() {
        let both = Accepted {
            brotli: true,
            gzip: true,
        };
        let gzip = Accepted {
            brotli: false,
            gzip: true,
        };
        let none = Accepted::default();
        assert_eq!(accepted(&[]), none);
        assert_eq!(accepted(&["gzip, deflate, br"]), both);
        assert_eq!(
            accepted(&["GZIP", "Br;q=0.1"]),
            both,
            "several headers, any case"
        );
        assert_eq!(accepted(&["*"]), both);
        assert_eq!(
            accepted(&["br;q=0, *"]),
            gzip,
            "a named coding overrides the star"
        );
        assert_eq!(accepted(&["x-gzip;q=0.5"]), gzip);
        assert_eq!(accepted(&["gzip;q=0"]), none);
        assert_eq!(
            accepted(&["gzip;q=zero"]),
            none,
            "an unreadable q-value is ignored"
        );
        assert_eq!(accepted(&["identity, deflate"]), none);
        assert_eq!(accepted(&["gzip, br"]).preferred(), Some(Coding::Brotli));
        assert_eq!(accepted(&[",, ,gzip"]), gzip, "empty entries are skipped");
        assert_eq!(accepted(&["gzip"]).preferred(), Some(Coding::Gzip));
        assert_eq!(none.preferred(), None);
    }

    fn refuses(values: &[&'static str]) -> bool {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
        }
        refuses_identity(&headers)
    }

    #[test]
    fn identity_is_refused_only_by_a_zero() {
        assert!(!refuses(&[]));
        assert!(!refuses(&["gzip"]));
        assert!(!refuses(&["gzip;q=0"]));
        assert!(refuses(&["identity;q=0"]));
        assert!(refuses(&["IDENTITY;Q=0.0", "gzip"]));
        assert!(refuses(&["*;q=0"]));
        assert!(
            !refuses(&["*;q=0, identity"]),
            "named identity overrides the star"
        );
        assert!(refuses(&["identity;q=0, *"]));
        assert!(
            !refuses(&["identity;q=zero"]),
            "an unreadable q-value is ignored"
        );
    }
}

//! Which content codings a client accepts (`Accept-Encoding`), for the
//! answers that are compressed before the compression layer sees them:
//! the documents kept compressed, and keyed answers whose stored deflate
//! stream is sent as gzip.

use axum::http::{HeaderMap, header};

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
        for entry in headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
        {
            let mut parts = entry.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let q = parts
                .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok());
            let Some(q) = q else { continue };
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
        assert_eq!(accepted(&["gzip"]).preferred(), Some(Coding::Gzip));
        assert_eq!(none.preferred(), None);
    }
}

//! Static files compiled into the binary (the browser pages and their
//! scripts), served the same way by every endpoint.

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::header;

/// One embedded file: the path it is served at and its content.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The URL path, e.g. `/game/game.js`.
    pub path: &'static str,
    /// The file's text (`include_str!`).
    pub body: &'static str,
}

impl Asset {
    /// An asset served at `path` (for `const` tables of `include_str!`s).
    pub const fn new(path: &'static str, body: &'static str) -> Asset {
        Asset { path, body }
    }

    /// The `Content-Type`, from the path's extension (a page otherwise).
    pub fn content_type(&self) -> &'static str {
        let name = self.path.rsplit('/').next().unwrap_or("");
        match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("json") => "application/json",
            _ => "text/html; charset=utf-8",
        }
    }

    /// The response: its content type and `Cache-Control: no-cache`, so a
    /// browser revalidates after an upgrade instead of running old scripts.
    pub fn response(&self) -> Response {
        (
            [
                (header::CONTENT_TYPE, self.content_type()),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            self.body,
        )
            .into_response()
    }
}

/// A router that serves each asset at its path with GET.
pub fn routes<S: Clone + Send + Sync + 'static>(assets: &[Asset]) -> Router<S> {
    assets.iter().fold(Router::new(), |router, &asset| {
        router.route(asset.path, get(move || async move { asset.response() }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_follows_the_extension() {
        let of = |path| Asset { path, body: "" }.content_type();
        assert_eq!(of("/"), "text/html; charset=utf-8");
        assert_eq!(of("/game"), "text/html; charset=utf-8");
        assert_eq!(of("/game/play.js"), "text/javascript; charset=utf-8");
        assert_eq!(of("/style.css"), "text/css; charset=utf-8");
    }

    #[test]
    fn response_is_not_cached_without_revalidation() {
        let response = Asset {
            path: "/a.js",
            body: "x",
        }
        .response();
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
    }
}

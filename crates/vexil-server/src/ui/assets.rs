//! The console's stylesheet and script, compiled into the binary and served under names
//! that carry a hash of their content, so browsers may cache them for a year and still
//! never run an old script against a new page.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

fn hashed(stem: &str, ext: &str, content: &str) -> String {
    let digest = hex::encode(Sha256::digest(content.as_bytes()));
    format!("/ui/assets/{stem}.{}.{ext}", &digest[..12])
}

pub(crate) static CSS_URL: LazyLock<String> = LazyLock::new(|| hashed("console", "css", CSS));
pub(crate) static JS_URL: LazyLock<String> = LazyLock::new(|| hashed("console", "js", JS));

/// `GET /ui/assets/{name}`: the current stylesheet or script; any other name is 404.
pub(crate) async fn serve(Path(name): Path<String>) -> Response {
    let path = format!("/ui/assets/{name}");
    let (body, kind) = if path == *CSS_URL {
        (CSS, "text/css; charset=utf-8")
    } else if path == *JS_URL {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return super::Page::not_found("file").into_response();
    };
    let mut r = body.into_response();
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    r
}

/// The size of the console's stylesheet and script together, in bytes.
#[cfg(test)]
pub(crate) fn total_bytes() -> usize {
    CSS.len() + JS.len()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_console_stays_small() {
        assert!(
            super::total_bytes() < 60 * 1024,
            "{} bytes",
            super::total_bytes()
        );
    }

    #[test]
    fn asset_names_carry_their_hash() {
        assert!(super::CSS_URL.starts_with("/ui/assets/console."));
        assert!(super::CSS_URL.ends_with(".css"));
        assert_ne!(*super::CSS_URL, *super::JS_URL);
    }
}

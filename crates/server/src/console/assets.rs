//! The console's stylesheet and script, compiled into the binary and served under a
//! name carrying a hash of their content, so browsers may cache them for a year and
//! still never run an old copy after an upgrade.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::console::page::PageError;

const CSS: &str = include_str!("../../assets/console/console.css");
const JS: &str = include_str!("../../assets/console/console.js");

struct Asset {
    name: String,
    url: String,
}

fn asset(stem: &str, ext: &str, content: &str) -> Asset {
    let hash = hex::encode(&Sha256::digest(content.as_bytes())[..8]);
    let name = format!("{stem}.{hash}.{ext}");
    Asset {
        url: format!("/console/assets/{name}"),
        name,
    }
}

fn css() -> &'static Asset {
    static CELL: OnceLock<Asset> = OnceLock::new();
    CELL.get_or_init(|| asset("console", "css", CSS))
}

fn js() -> &'static Asset {
    static CELL: OnceLock<Asset> = OnceLock::new();
    CELL.get_or_init(|| asset("console", "js", JS))
}

/// The stylesheet's URL.
pub fn css_url() -> &'static str {
    &css().url
}

/// The script's URL.
pub fn js_url() -> &'static str {
    &js().url
}

/// `GET /console/assets/{name}`: an asset by its hashed name (no session needed).
pub async fn serve(Path(name): Path<String>) -> Response {
    let (content, kind) = if name == css().name {
        (CSS, "text/css; charset=utf-8")
    } else if name == js().name {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return PageError::not_found("no such asset").into_response();
    };
    (
        [
            (CONTENT_TYPE, kind),
            (CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        content,
    )
        .into_response()
}

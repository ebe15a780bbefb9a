//! The status page: one HTML file, one script, one style sheet and an icon, compiled into the binary
//! (no CDN, no font, no build step), drawn by the browser from `/api/v1/status` and
//! `/api/v1/events`. The page only reads: its one kind of request is `GET` to its own
//! origin, which the Content-Security-Policy below also enforces.

/// The page.
pub const HTML: &str = include_str!("page/index.html");
/// Its script.
pub const SCRIPT: &str = include_str!("page/page.js");
/// Its style.
pub const STYLE: &str = include_str!("page/page.css");
/// Its icon (declared by the page, so a browser does not ask for a `/favicon.ico` there is
/// none of).
pub const ICON: &str = include_str!("page/icon.svg");
/// The page's Content-Security-Policy: its own script, style and API; nothing inline, nothing
/// from elsewhere, no form, no frame.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

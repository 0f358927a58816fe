//! The web UI's files, compiled into the binary so `logbook serve` needs
//! nothing beside it and the page works offline.
//!
//! The UI is plain JavaScript modules, CSS and one HTML page under `assets/`,
//! served exactly as written: there is no build step, so building Logbook
//! needs no Node.js and what is reviewed is what runs. The end-to-end tests
//! in `e2e/` drive it in a real browser.

/// One file of the UI.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The file's bytes, as committed.
    pub bytes: &'static [u8],
    /// Its `Content-Type`.
    pub content_type: &'static str,
}

/// The UI's entry page, served at `/`.
pub const INDEX: Asset = Asset {
    bytes: include_bytes!("../assets/index.html"),
    content_type: "text/html; charset=utf-8",
};

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        /// Every file served under `/ui/`, by its path below `assets/`.
        const ASSETS: &[(&str, &[u8])] = &[
            $(($path, include_bytes!(concat!("../assets/", $path))),)*
        ];
    };
}

assets!(
    "app.css",
    "favicon.svg",
    "js/admin.js",
    "js/api.js",
    "js/audit.js",
    "js/canonical.js",
    "js/dom.js",
    "js/events.js",
    "js/histogram.js",
    "js/login.js",
    "js/main.js",
    "js/search.js",
    "js/tail.js",
    "js/verify.js",
);

/// The file at `path` below `/ui/` (`app.css`, `js/main.js`), if the UI has one.
pub fn asset(path: &str) -> Option<Asset> {
    let (_, bytes) = ASSETS.iter().find(|(name, _)| *name == path)?;
    Some(Asset {
        bytes,
        content_type: content_type(path),
    })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The Content-Security-Policy of every UI response: scripts, styles and
/// connections from this origin only, no inline code, no framing, and no
/// string ever handed to an HTML or script sink (Trusted Types, where the
/// browser has them: the UI builds DOM nodes and sets text only).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; \
     trusted-types 'none'";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every file under `assets/` is served, so a new module cannot be
    /// forgotten in the table (the page would fail to load it).
    #[test]
    fn every_asset_file_is_served() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut stack = vec![root.clone()];
        let mut found = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let relative = path.strip_prefix(&root).unwrap();
                    found.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        for path in found {
            if path == "index.html" {
                continue;
            }
            assert!(asset(&path).is_some(), "assets/{path} is not in the table");
        }
        assert!(asset("../Cargo.toml").is_none());
        assert_eq!(
            asset("js/main.js").unwrap().content_type,
            "text/javascript; charset=utf-8"
        );
    }

    /// Every module the page imports is one the table serves (`from "./x.js"`,
    /// on whatever line the import's `from` is).
    #[test]
    fn every_import_resolves() {
        for (path, bytes) in ASSETS.iter().filter(|(path, _)| path.ends_with(".js")) {
            let text = std::str::from_utf8(bytes).unwrap();
            let mut rest = text;
            while let Some(start) = rest.find("from \"./") {
                let name = &rest[start + 8..];
                let end = name.find('"').unwrap();
                assert!(
                    asset(&format!("js/{}", &name[..end])).is_some(),
                    "{path} imports {}",
                    &name[..end]
                );
                rest = &name[end..];
            }
        }
        let main = std::str::from_utf8(asset("js/main.js").unwrap().bytes).unwrap();
        assert!(main.contains("from \"./admin.js\""));
    }
}

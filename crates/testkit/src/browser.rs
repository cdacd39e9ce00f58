//! A real headless Chromium driven over WebDriver: `chromedriver` started as a child
//! on a free loopback port, and a [`fantoccini`] client on it. Used by the console's
//! browser tests. `chromium` and `chromedriver` must be installed (`scripts/test.sh`
//! installs the Debian packages `chromium` and `chromium-driver`); without them the
//! tests using this module fail with a message saying so, never skip.
//!
//! Screenshots go to `<target dir>/console-screenshots/`.

use std::path::PathBuf;
use std::process::Stdio;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::{eventually, free_port, DEADLINE};

/// Where Debian puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium session and the `chromedriver` serving it (killed on drop).
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    _driver: Child,
}

fn binary(name: &str, fallback: &str) -> String {
    if std::path::Path::new(fallback).exists() {
        return fallback.to_owned();
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.exists())
    });
    match found {
        Some(path) => path.display().to_string(),
        None => panic!(
            "`{name}` is not installed: the console's browser tests need Chromium and its \
             WebDriver (Debian packages `chromium` and `chromium-driver`; scripts/test.sh \
             installs them)"
        ),
    }
}

/// The directory screenshots are written to (created on first use).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("console-screenshots")
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium window of `width` × `height`.
    pub async fn start_sized(width: u32, height: u32) -> Browser {
        Browser::launch(width, height, None).await
    }

    /// A phone: Chromium's mobile emulation at `width` × `height` CSS pixels (a
    /// headless window cannot be made narrower than 500 pixels).
    pub async fn phone(width: u32, height: u32) -> Browser {
        let metrics =
            json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0}});
        Browser::launch(width.max(500), height, Some(metrics)).await
    }

    async fn launch(width: u32, height: u32, emulation: Option<serde_json::Value>) -> Browser {
        let chromium = binary("chromium", CHROMIUM);
        let driver_path = binary("chromedriver", "/usr/bin/chromedriver");
        let port = free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {driver_path}: {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let mut options = json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", format!("--window-size={width},{height}")],
        });
        if let Some(emulation) = emulation {
            options["mobileEmulation"] = emulation;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        let client = eventually(DEADLINE, "chromedriver to accept a session", || {
            let capabilities = capabilities.clone();
            let url = url.clone();
            async move {
                ClientBuilder::rustls()
                    .map_err(|e| e.to_string())?
                    .capabilities(capabilities)
                    .connect(&url)
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .await;
        Browser {
            client,
            _driver: driver,
        }
    }

    /// A desktop-sized window.
    pub async fn start() -> Browser {
        Browser::start_sized(1280, 1000).await
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The text of the element `css`, once it exists (found again when a live
    /// page replaced it between finding and reading).
    pub async fn text(&self, css: &str) -> String {
        eventually(DEADLINE, &format!("text of `{css}`"), || async {
            let element = self.find_now(css).await?;
            element.text().await.map_err(|e| e.to_string())
        })
        .await
    }

    /// The element `css` as the page is now.
    async fn find_now(&self, css: &str) -> Result<fantoccini::elements::Element, String> {
        self.client
            .find(Locator::Css(css))
            .await
            .map_err(|e| e.to_string())
    }

    /// The element `css`, waiting for it to exist.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        eventually(DEADLINE, &format!("element `{css}`"), || self.find_now(css)).await
    }

    /// Whether the element `css` exists now (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_default()
            .is_empty()
    }

    /// Types `text` into the field `css` (replacing what it held).
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        element
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clearing `{css}`: {e}"));
        element
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into `{css}`: {e}"));
    }

    /// Clicks the element `css` (found again when a live page replaced it).
    pub async fn click(&self, css: &str) {
        eventually(DEADLINE, &format!("clicking `{css}`"), || async {
            let element = self.find_now(css).await?;
            match element.click().await {
                Err(e) if e.to_string().contains("stale element") => Err(e.to_string()),
                Err(e) => panic!("clicking `{css}`: {e}"),
                Ok(_) => Ok(()),
            }
        })
        .await
    }

    /// The current page's path.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        url.path().to_owned()
    }

    /// Waits until the page at `css` shows text containing `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        eventually(
            DEADLINE,
            &format!("`{css}` to contain `{needle}`"),
            || async {
                let element = self.find_now(css).await?;
                let text = element.text().await.map_err(|e| e.to_string())?;
                if text.contains(needle) {
                    Ok(text)
                } else {
                    Err(text)
                }
            },
        )
        .await
    }

    /// Saves a PNG screenshot as `<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("screenshot written");
        path
    }
}

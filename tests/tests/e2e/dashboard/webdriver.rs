//! A small W3C WebDriver client over the blocking HTTP client the tests already use (ureq):
//! just what the dashboard test needs: start `chromedriver`, open a headless Chromium session,
//! set the viewport, navigate, run a script, type, click, take a screenshot.
//!
//! Why not fantoccini: see ARCHITECTURE.md, "Decisions" (it would bring hyper, a TLS stack
//! and the `webdriver` crate into the build for about 150 lines of JSON over HTTP).

use anyhow::{bail, Context, Result};
use coldaisle_testkit::procs::free_port;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The element reference key of the W3C protocol.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A `chromedriver` process on a free loopback port, killed on drop.
pub struct ChromeDriver {
    child: Child,
    base: String,
}

impl ChromeDriver {
    /// Starts `chromedriver` (Debian's `chromium-driver`) and waits until it is ready.
    pub fn start(log: &std::path::Path) -> Result<ChromeDriver> {
        let port = free_port()?;
        let log_file = std::fs::File::create(log)?;
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            .spawn()
            .context("starting chromedriver: is Debian's chromium-driver installed (./test.sh installs it)?")?;
        let driver = ChromeDriver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(status) = call("GET", &format!("{}/status", driver.base), None) {
                if status["ready"] == true {
                    return Ok(driver);
                }
            }
            if Instant::now() > deadline {
                bail!("chromedriver on {} not ready within 20 s", driver.base);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A new headless Chromium session (`--headless=new --no-sandbox`: tests run as root).
    pub fn session(&self) -> Result<Session> {
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--lang=en-GB"
            ]}
        }}});
        let value = call(
            "POST",
            &format!("{}/session", self.base),
            Some(capabilities),
        )
        .context("opening a Chromium session (is Debian's chromium installed?)")?;
        let id = value["sessionId"]
            .as_str()
            .context("no sessionId in the new session's answer")?;
        Ok(Session {
            url: format!("{}/session/{id}", self.base),
        })
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session, deleted (browser closed) on drop.
pub struct Session {
    url: String,
}

impl Session {
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        call(method, &format!("{}{path}", self.url), body)
    }

    /// Sets the viewport to `width` × `height` CSS pixels (Chromium's device metrics override,
    /// so the page sees exactly that `innerWidth`).
    pub fn viewport(&self, width: u32, height: u32) -> Result<()> {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                    "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false
                }}),
            ),
        )?;
        Ok(())
    }

    /// Loads `url` and waits for the document to load.
    pub fn goto(&self, url: &str) -> Result<()> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))?;
        Ok(())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Runs `script` until it returns something other than `null`/`false`, at most `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.execute(script, json!([]))?;
            if !value.is_null() && value != false {
                return Ok(value);
            }
            if Instant::now() > deadline {
                let page = self
                    .execute("return document.body.innerText", json!([]))
                    .unwrap_or_default();
                bail!("{what}: not seen within {timeout:?}; the page shows:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// The element `css` selects.
    pub fn find(&self, css: &str) -> Result<String> {
        let value = self
            .cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .with_context(|| format!("finding {css}"))?;
        value[ELEMENT_KEY]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("{css}: no element reference in {value}"))
    }

    /// Types `text` into the element `css` selects.
    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let id = self.find(css)?;
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )?;
        Ok(())
    }

    /// Clicks the element `css` selects.
    pub fn click(&self, css: &str) -> Result<()> {
        let id = self.find(css)?;
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})))?;
        Ok(())
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Result<Vec<u8>> {
        let value = self.cmd("GET", "/screenshot", None)?;
        let text = value.as_str().context("screenshot: not a string")?;
        let png = decode_base64(text)?;
        anyhow::ensure!(png.starts_with(b"\x89PNG"), "screenshot: not a PNG");
        Ok(png)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = call("DELETE", &self.url, None);
    }
}

/// One WebDriver command: the answer's `value`, or the WebDriver error as an error.
fn call(method: &str, url: &str, body: Option<Value>) -> Result<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut response = match (method, body) {
        ("GET", _) => agent.get(url).call()?,
        ("DELETE", _) => agent.delete(url).call()?,
        (_, body) => agent
            .post(url)
            .header("content-type", "application/json")
            .send(body.unwrap_or_else(|| json!({})).to_string())?,
    };
    let status = response.status().as_u16();
    let answer: Value = serde_json::from_str(&response.body_mut().read_to_string()?)
        .with_context(|| format!("{method} {url}: answer is not JSON"))?;
    let value = answer["value"].clone();
    if status != 200 {
        bail!(
            "{method} {url}: {status} {}: {}",
            value["error"].as_str().unwrap_or("?"),
            value["message"].as_str().unwrap_or("?")
        );
    }
    Ok(value)
}

/// Standard base64 (the WebDriver screenshot encoding) to bytes.
fn decode_base64(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
    {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            other => bail!("base64: unexpected byte {other:#x}"),
        };
        acc = (acc << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[test]
fn base64_decodes_the_standard_alphabet() -> Result<()> {
    assert_eq!(decode_base64("aGVsbG8=")?, b"hello");
    assert_eq!(decode_base64("iVBORw0K")?, b"\x89PNG\r\n");
    assert_eq!(decode_base64("+/8=")?, [0xfb, 0xff]);
    assert!(decode_base64("a*b").is_err());
    Ok(())
}

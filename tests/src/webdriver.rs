//! What the WebDriver end-to-end tests (`e2e_*`) share: finding tauri-driver, waiting for
//! the page, screenshots into `docs/screenshots`, stopping processes.

use anyhow::{anyhow, Context, Result};
use fantoccini::elements::Element;
use fantoccini::wd::WindowHandle;
use fantoccini::{Client, Locator};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (the tests crate's parent). The run-time `CARGO_MANIFEST_DIR` (cargo
/// test and nextest set it) comes first: worktrees that share one target dir share the
/// tests' artifacts too, so the build-time path may be another checkout's.
pub fn workspace_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `tauri-driver` on PATH or in cargo's bin dir (`cargo install tauri-driver`).
pub fn tauri_driver() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(h).join("bin"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(h).join(".cargo/bin"));
    }
    dirs.push(PathBuf::from("/root/.cargo/bin"));
    dirs.into_iter()
        .map(|d| d.join("tauri-driver"))
        .find(|p| p.is_file())
}

/// `kill <signal> <pid>`, ignoring a process that is already gone.
pub fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Poll `probe` every 250 ms until it gives a value; after `timeout`, fail naming `what`
/// and the last error the probe returned.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match probe().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "timed out after {timeout:?} waiting for {what}{}",
                last_err
                    .map(|e| format!(" (last error: {e:#})"))
                    .unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Run `script` in the page: a string result as it is, `null` as "", anything else as JSON.
pub async fn js(c: &Client, script: &str) -> Result<String> {
    Ok(match c.execute(script, vec![]).await? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Click `css` once it is displayed (30 s at most). The pages re-render when the app tells
/// them something: an element found just before that is gone by the click, so the click
/// is tried again on the new one.
pub async fn click(c: &Client, css: &str) -> Result<()> {
    wait_until(&format!("`{css}`"), Duration::from_secs(30), || async {
        let Some(el) = displayed(c, css).await? else {
            return Ok(None);
        };
        match el.click().await {
            Ok(()) => Ok(Some(())),
            Err(e) if stale(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Type `text` into the field `css` once it is displayed (30 s at most), until the field
/// holds exactly that. As for [`click`]: a re-render between finding the field and typing
/// replaces it (the page keeps what was typed, but the old node is gone), so it is found
/// again and filled afresh. The field is read and emptied by script: WebKitWebDriver
/// answers the element `clear` and `property` commands with a bare error.
pub async fn type_into(c: &Client, css: &str, text: &str) -> Result<()> {
    let field = format!("document.querySelector({})", serde_json::to_string(css)?);
    wait_until(
        &format!("`{css}` to hold what was typed"),
        Duration::from_secs(30),
        || async {
            let Some(el) = displayed(c, css).await? else {
                return Ok(None);
            };
            js(c, &format!("const f = {field}; if (f) f.value = '';")).await?;
            match el.send_keys(text).await {
                Ok(()) => {}
                Err(e) if stale(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            let now = js(c, &format!("return {field}?.value ?? ''")).await?;
            Ok((now == text).then_some(()))
        },
    )
    .await
}

/// The node a command was given is gone: the page re-rendered since it was found.
/// WebKitWebDriver says so in its own words rather than with the standard error code.
pub fn stale(e: &fantoccini::error::CmdError) -> bool {
    e.is_stale_element_reference() || e.to_string().contains("was not found")
}

/// The element matching `css`, if it exists and is displayed (a node replaced by a
/// re-render between finding and asking counts as not displayed yet).
pub async fn displayed(c: &Client, css: &str) -> Result<Option<Element>> {
    match c.find(Locator::Css(css)).await {
        Ok(e) => match e.is_displayed().await {
            Ok(true) => Ok(Some(e)),
            Ok(false) => Ok(None),
            Err(err) if stale(&err) => Ok(None),
            Err(err) => Err(err.into()),
        },
        Err(e) if e.is_no_such_element() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Save the window as `docs/screenshots/<name>`, after the page has painted what its DOM
/// already says (fonts, two animation frames, then a beat).
pub async fn screenshot(c: &Client, name: &str) -> Result<()> {
    let _ = c
        .execute(
            "return document.fonts.ready.then(() => new Promise(r => \
             requestAnimationFrame(() => requestAnimationFrame(() => r(true)))))",
            vec![],
        )
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let png = c.screenshot().await?;
    let dir = workspace_root().join("docs/screenshots");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("screenshot: {}", path.display());
    Ok(())
}

/// A WebDriver session on tauri-driver at `127.0.0.1:<port>`. tauri-driver accepts
/// connections before its WebKitWebDriver answers, so "did not respond" is retried for
/// up to 20 s (on a loaded machine this was seen to fail once in a few runs). An attempt
/// that gets no answer at all in 90 s (the app died before its window, e.g. no display)
/// fails instead of waiting forever.
pub async fn new_session(
    port: u16,
    caps: serde_json::Map<String, serde_json::Value>,
) -> Result<Client> {
    use hyper_util::client::legacy::connect::HttpConnector;
    let url = format!("http://127.0.0.1:{port}");
    wait_until("a WebDriver session", Duration::from_secs(20), || {
        let (caps, url) = (caps.clone(), url.clone());
        async move {
            let mut builder = fantoccini::ClientBuilder::new(HttpConnector::new());
            builder.capabilities(caps);
            match tokio::time::timeout(Duration::from_secs(90), builder.connect(&url)).await {
                Ok(Ok(c)) => Ok(Some(c)),
                Ok(Err(e)) => Err(anyhow!(e).context("creating a WebDriver session")),
                Err(_) => Err(anyhow!(
                    "no WebDriver session after 90 s: the app did not open its window (see its log)"
                )),
            }
        }
    })
    .await
}

/// Wait for tauri-driver on `driver_port`, then open a session on the app `app_exe` started
/// with `args`.
pub async fn app_session(driver_port: u16, app_exe: &Path, args: &[&str]) -> Result<Client> {
    wait_until(
        "tauri-driver to listen",
        Duration::from_secs(20),
        || async {
            Ok(std::net::TcpStream::connect(("127.0.0.1", driver_port))
                .ok()
                .map(|_| ()))
        },
    )
    .await?;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "tauri:options".into(),
        serde_json::json!({ "application": app_exe.to_string_lossy(), "args": args }),
    );
    new_session(driver_port, caps).await
}

/// Wait until the chat shows an assistant message containing `want` (an error shown in the
/// chat fails at once).
pub async fn wait_reply(c: &Client, want: &str, timeout: Duration) -> Result<()> {
    wait_until("the assistant's reply", timeout, || async {
        let v = c
            .execute(
                "return [...document.querySelectorAll('.msg.assistant')].map(e => e.innerText).join('\\n')",
                vec![],
            )
            .await?;
        let replies = v.as_str().unwrap_or_default().to_owned();
        if replies.contains("couldn't") || replies.contains("Try again") {
            return Err(anyhow!("the chat shows an error: {replies}"));
        }
        Ok(replies.contains(want).then_some(()))
    })
    .await
}

/// Switch to the window that opened since `before` (the handles then), once its title
/// contains `title`.
pub async fn switch_to_new_window(c: &Client, before: &[WindowHandle], title: &str) -> Result<()> {
    let handle = wait_until(
        &format!("the {title} window"),
        Duration::from_secs(20),
        || async {
            let now = c.windows().await?;
            Ok(now.into_iter().find(|h| !before.contains(h)))
        },
    )
    .await?;
    c.switch_to_window(handle).await?;
    wait_until(
        &format!("the {title} page to load"),
        Duration::from_secs(20),
        || async {
            let t = c.title().await?;
            Ok(t.contains(title).then_some(()))
        },
    )
    .await
}

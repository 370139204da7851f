//! The page in a real browser: headless Chromium driven over WebDriver (fantoccini), against the
//! app and the simulator on loopback (the page's contract in `docs/contracts.md#the-chat-app`:
//! `data-chat-id`, `data-unread`, `data-message-id`, `data-state`, `<form id="compose">` with a
//! `content` field).
//!
//! Every test is `#[ignore]`d: it needs `chromium` and `chromedriver`. `.ci/run` installs them
//! and runs `cargo test -p graph-chat-app --test browser -- --ignored`; run that way without
//! them, each test fails saying what is missing. The tests take turns (one browser at a time: the
//! machine may have two cores), and every wait polls the DOM and ends as soon as it holds.

mod common;

use std::future::Future;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use axum::http::Method;
use common::{wait_for, Harness, TempDir, PATIENCE};
use fantoccini::wd::{TimeoutConfiguration, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// How often a wait looks at the page.
const POLL: Duration = Duration::from_millis(50);

/// One browser at a time.
static TURN: Mutex<()> = Mutex::new(());

/// What the page shows, read in one round trip: the chats, the messages (in document order), the
/// title, and what must never be in a message element.
const SNAPSHOT: &str = r#"
const all = (root, s) => [...root.querySelectorAll(s)];
return {
  title: document.title,
  search: location.search,
  marker: window.__browserTestMarker === true,
  chats: all(document, "[data-chat-id]").map((e) => ({
    id: e.dataset.chatId,
    unread: e.dataset.unread,
    text: e.textContent,
  })),
  messages: all(document, "[data-message-id]").map((e) => ({
    id: e.dataset.messageId,
    state: e.dataset.state,
    text: e.textContent,
    html: e.outerHTML,
    bold: all(e, "b, strong").map((b) => b.textContent),
    active: all(e, "script, iframe, frame, frameset, object, embed").length,
    handlers: all(e, "*").concat([e]).flatMap((n) =>
      [...n.attributes].map((a) => a.name).filter((a) => a.toLowerCase().startsWith("on"))),
    scriptUrls: all(e, "[href], [src], [action], [formaction]").filter((n) =>
      ["href", "src", "action", "formaction"].some((a) =>
        /^\s*javascript:/i.test(n.getAttribute(a) || ""))).length,
  })),
  // The chat whose snapshot the page has rendered (none while one loads).
  loadedChat: document.getElementById("messages").dataset.loadedChat || null,
  // Reads (and sends) of a chat's messages the page made (all of them, or a page of its history).
  messageFetches: performance.getEntriesByType("resource")
    .filter((r) => /\/api\/chats\/[^/]+\/(messages|history)$/.test(new URL(r.name).pathname)).length,
};
"#;

/// A chromedriver of this test's own on a free loopback port, and one headless Chromium session.
struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _logs: TempDir,
    _turn: MutexGuard<'static, ()>,
}

fn driver_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMEDRIVER") {
        return path.into();
    }
    let debian = PathBuf::from("/usr/bin/chromedriver");
    if debian.exists() {
        debian
    } else {
        "chromedriver".into()
    }
}

fn chrome_binary() -> PathBuf {
    let path: PathBuf = std::env::var_os("CHROME_BIN")
        .map(Into::into)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    assert!(
        path.exists(),
        "no Chromium at {} (set CHROME_BIN, or: apt-get install chromium chromium-driver)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Browser {
    fn start() -> Self {
        let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let chrome = chrome_binary();
        let logs = TempDir::new("chromedriver");
        let log_path = logs.path().join("chromedriver.log");
        let port = free_port();
        let binary = driver_binary();
        let driver = Command::new(&binary)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log_path.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start chromedriver ({}): {e}; install it (apt-get install chromium \
                     chromium-driver) or set CHROMEDRIVER",
                    binary.display()
                )
            });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut browser = Self {
            runtime,
            client: None,
            driver,
            _logs: logs,
            _turn: turn,
        };
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Ok(Some(status)) = browser.driver.try_wait() {
                panic!(
                    "chromedriver exited ({status}) before listening:\n{}",
                    log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on 127.0.0.1:{port}:\n{}",
                log()
            );
            std::thread::sleep(POLL);
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome.to_string_lossy(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let client = browser
            .run("a Chromium session", async {
                ClientBuilder::rustls()
                    .expect("a WebDriver client")
                    .capabilities(capabilities)
                    .connect(&url)
                    .await
            })
            .unwrap_or_else(|e| panic!("no Chromium session through chromedriver: {e}\n{}", log()));
        browser
            .run("the timeouts", {
                let client = client.clone();
                async move {
                    client
                        .update_timeouts(TimeoutConfiguration::new(
                            Some(PATIENCE),
                            Some(PATIENCE),
                            Some(Duration::ZERO),
                        ))
                        .await
                }
            })
            .unwrap();
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> Client {
        self.client.clone().unwrap()
    }

    /// Runs one WebDriver exchange, bounded: a hung browser fails the test, never stalls it.
    fn run<T>(&self, what: &str, f: impl Future<Output = T>) -> T {
        self.runtime
            .block_on(async { tokio::time::timeout(PATIENCE + Duration::from_secs(10), f).await })
            .unwrap_or_else(|_| panic!("WebDriver did not answer: {what}"))
    }

    fn goto(&self, url: &str) {
        let client = self.client();
        self.run("navigate", async move { client.goto(url).await })
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    fn refresh(&self) {
        let client = self.client();
        self.run("reload", async move { client.refresh().await })
            .expect("reload");
    }

    fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        let client = self.client();
        self.run(
            "a script",
            async move { client.execute(script, args).await },
        )
        .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    fn snapshot(&self) -> Value {
        self.execute(SNAPSHOT, vec![])
    }

    /// Polls the page until `probe` gives `Some`; fails with the last snapshot otherwise. Every
    /// snapshot on the way is checked: the page's title is never a sender's.
    fn until<T>(&self, what: &str, mut probe: impl FnMut(&Value) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let page = self.snapshot();
            assert_ne!(page["title"], "pwned", "a sender's script ran: {page:#}");
            assert_eq!(
                page["search"], "",
                "the compose form was submitted by the browser itself (the page navigated)"
            );
            if let Some(v) = probe(&page) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the page:\n{page:#}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Opens the app and waits until it has loaded a chat's messages.
    fn open(&self, url: &str) -> Value {
        self.goto(url);
        self.loaded()
    }

    /// Waits until the page has read a chat's messages and rendered them (the read's answer
    /// arriving is not enough: rendering follows it).
    fn loaded(&self) -> Value {
        self.until("the page to load a chat", |page| {
            (page["messageFetches"].as_u64() >= Some(1) && page["loadedChat"].is_string())
                .then(|| page.clone())
        })
    }

    /// A Chrome DevTools Protocol command, through chromedriver.
    fn cdp(&self, cmd: &'static str, params: Value) -> Value {
        let client = self.client();
        self.run(
            cmd,
            async move { client.issue_cmd(Cdp { cmd, params }).await },
        )
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    /// Sets a flag that a reload would clear.
    fn mark(&self) {
        self.execute("window.__browserTestMarker = true;", vec![]);
    }

    /// Shows the page at `width` x `height` CSS pixels, as a phone (390) or a laptop (1280) does.
    fn viewport(&self, width: u32, height: u32) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 700}),
        );
    }

    /// axe-core's serious and critical violations on the page as it is now (the npm package,
    /// injected through WebDriver): `[{"id", "impact", "nodes"}]`.
    fn axe(&self) -> Vec<Value> {
        let loaded = self.execute(&format!("{}\nreturn typeof axe;", axe_source()), vec![]);
        assert_eq!(loaded, "object", "axe-core did not load");
        let client = self.client();
        let found = self
            .run("axe-core", async move {
                client
                    .execute_async(
                        "const done = arguments[arguments.length - 1];
                         axe.run(document).then((r) => done(r.violations
                           .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                           .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                             nodes: v.nodes.map((n) => n.target.join(' ')) }))),
                           (e) => done([{ id: 'axe failed', impact: 'critical', help: String(e) }]));",
                        vec![],
                    )
                    .await
            })
            .unwrap_or_else(|e| panic!("axe-core: {e}"));
        found.as_array().cloned().unwrap_or_default()
    }

    /// Presses `keys` (WebDriver key codes allowed) in the element that has the focus.
    fn keys(&self, keys: &str) {
        let client = self.client();
        self.run("keys", async move {
            client.active_element().await?.send_keys(keys).await
        })
        .unwrap_or_else(|e| panic!("cannot type: {e}"));
    }

    /// Clicks the first element matching `css`, finding it afresh on each try (the page may
    /// re-render it between a find and a click).
    fn click(&self, css: &str) {
        let client = self.client();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let result = self.run("a click", async {
                client.find(Locator::Css(css)).await?.click().await
            });
            match result {
                Ok(()) => return,
                Err(e) => assert!(Instant::now() < deadline, "cannot click {css}: {e}"),
            }
            std::thread::sleep(POLL);
        }
    }

    /// Types `text` into the compose form's `content` field and submits the form with its button.
    fn compose(&self, text: &str) {
        let client = self.client();
        self.run("compose", async {
            let field = client.find(Locator::Css("#compose [name=content]")).await?;
            field.clear().await?;
            field.send_keys(text).await?;
            client.form(Locator::Id("compose")).await?.submit().await
        })
        .unwrap_or_else(|e| panic!("cannot send from the page: {e}"));
    }
}

/// The axe-core version the audits run (npm's `axe-core`), installed under the target directory
/// when missing, like Chromium is by `.ci/run`.
const AXE_PACKAGE: &str = "axe-core@4.10.3";

/// axe-core's browser script, from `<target>/axe-core/`: `npm install`ed there on first use.
fn axe_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        // <target>/debug/deps/browser-<hash>: the cache sits beside the build.
        let exe = std::env::current_exe().expect("the test's path");
        let target = exe
            .ancestors()
            .nth(3)
            .expect("the test runs from <target>/<profile>/deps");
        let dir = target.join("axe-core");
        let file = dir.join("node_modules/axe-core/axe.min.js");
        if !file.exists() {
            std::fs::create_dir_all(&dir).unwrap();
            let status = Command::new("npm")
                .arg("install")
                .arg("--prefix")
                .arg(&dir)
                .args([
                    "--no-save",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    AXE_PACKAGE,
                ])
                .stdin(Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("cannot run npm to install {AXE_PACKAGE}: {e}"));
            assert!(
                status.success(),
                "npm install {AXE_PACKAGE} failed: {status}"
            );
        }
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()))
    })
}

/// chromedriver's `POST /session/{id}/goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (Method::POST, Some(body.to_string()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Ends the session: chromedriver quits its Chromium.
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn messages(page: &Value) -> &[Value] {
    page["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn message<'p>(page: &'p Value, id: &str) -> Option<&'p Value> {
    messages(page).iter().find(|m| m["id"] == id)
}

fn chat<'p>(page: &'p Value, id: &str) -> Option<&'p Value> {
    page["chats"].as_array()?.iter().find(|c| c["id"] == id)
}

fn text(m: &Value) -> &str {
    m["text"].as_str().unwrap_or("")
}

fn ids(page: &Value) -> Vec<String> {
    messages(page)
        .iter()
        .map(|m| m["id"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn api_ids(h: &Harness, chat_id: &str) -> Vec<String> {
    h.messages(chat_id)
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

fn id_of(message: &Value) -> String {
    message["id"].as_str().unwrap().to_owned()
}

/// The colleague writes, and the page shows it.
fn shown(h: &Harness, b: &Browser, chat_id: &str, content: &str) -> String {
    let id = id_of(&h.colleague_writes(chat_id, content, "text"));
    b.until("the colleague's message", |page| {
        message(page, &id)
            .filter(|m| text(m).contains(content))
            .map(drop)
    });
    id
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_colleagues_message_appears_in_the_open_chat_without_a_reload() {
    let h = Harness::start(Duration::from_secs(60));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    b.mark();
    let id = id_of(&h.colleague_writes(&chat_id, "hello from Megan", "text"));
    let m = b.until("the live message", |page| message(page, &id).cloned());
    assert!(text(&m).contains("hello from Megan"), "{m:#}");
    assert_eq!(m["state"], "visible");
    let page = b.snapshot();
    assert_eq!(page["marker"], true, "the page reloaded");
    assert_eq!(
        page["messageFetches"], 1,
        "the page read the chat again instead of the event"
    );
    assert_eq!(ids(&page), api_ids(&h, &chat_id));
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_message_sent_from_the_page_shows_once_after_its_notification_too() {
    let h = Harness::start(Duration::from_secs(60));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    b.mark();
    let before = h.sim().deliveries().delivered;
    let content = "sent from the browser";
    b.compose(content);
    let id = wait_for("the sent message in the API", || {
        h.messages(&chat_id)
            .into_iter()
            .find(|m| m["content"] == content)
            .map(|m| id_of(&m))
    });
    b.until("the sent message on the page", |page| {
        message(page, &id).map(drop)
    });
    // Its notification arrives too.
    wait_for("the sent message's notification", || {
        (h.sim().deliveries().delivered > before).then_some(())
    });
    // Something later shown live: the page has had every event the notification made.
    let later = shown(&h, &b, &chat_id, "and a reply");
    let page = b.snapshot();
    let same: Vec<&Value> = messages(&page)
        .iter()
        .filter(|m| text(m).contains(content) || m["id"] == id)
        .collect();
    assert_eq!(same.len(), 1, "{page:#}");
    assert_eq!(same[0]["id"], id.as_str());
    assert_eq!(same[0]["state"], "visible");
    assert_eq!(ids(&page), [id.clone(), later]);
    assert_eq!(ids(&page), api_ids(&h, &chat_id));
    assert_eq!(page["marker"], true, "sending reloaded the page");
    let field = b.execute(
        "return document.querySelector('#compose [name=content]').value;",
        vec![],
    );
    assert_eq!(field, "", "the field keeps what was sent");
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn an_edit_shows_the_new_text_and_the_edited_state() {
    let h = Harness::start(Duration::from_secs(60));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    let id = shown(&h, &b, &chat_id, "first draft");
    h.sim()
        .colleague_edits(&chat_id, &id, "final wording")
        .unwrap();
    let m = b.until("the edit", |page| {
        message(page, &id)
            .filter(|m| m["state"] == "edited")
            .cloned()
    });
    assert!(text(&m).contains("final wording"), "{m:#}");
    assert!(!text(&m).contains("first draft"), "{m:#}");
    assert_eq!(ids(&b.snapshot()), [id]);
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_delete_shows_the_deleted_state_and_the_text_goes() {
    let h = Harness::start(Duration::from_secs(60));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    let gone = shown(&h, &b, &chat_id, "regrettable remark");
    let kept = shown(&h, &b, &chat_id, "a later message");
    h.sim().colleague_deletes(&chat_id, &gone).unwrap();
    let m = b.until("the delete", |page| {
        message(page, &gone)
            .filter(|m| m["state"] == "deleted")
            .cloned()
    });
    assert!(!text(&m).contains("regrettable"), "{m:#}");
    // A deleted message keeps its place.
    let page = b.snapshot();
    assert_eq!(ids(&page), [gone, kept]);
    assert!(!page.to_string().contains("regrettable"), "{page:#}");
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_senders_html_shows_its_formatting_and_nothing_runs() {
    let h = Harness::start(Duration::from_secs(60));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    let id = id_of(&h.colleague_writes(
        &chat_id,
        concat!(
            r#"<p>Hi <b>all</b><script>document.title='pwned'</script>"#,
            r#"<img src=x onerror="document.title='pwned'">"#,
            r#"<a href="javascript:document.title='pwned'">click</a>"#,
            r#"<iframe src="javascript:parent.document.title='pwned'"></iframe>"#,
            r#"<svg onload="document.title='pwned'"></svg></p>"#,
        ),
        "html",
    ));
    let m = b.until("the HTML message", |page| message(page, &id).cloned());
    assert_eq!(m["bold"], json!(["all"]), "the formatting is gone: {m:#}");
    assert!(text(&m).contains("Hi all"), "{m:#}");
    assert_eq!(m["active"], 0, "a script or frame: {m:#}");
    assert_eq!(m["handlers"], json!([]), "an event handler: {m:#}");
    assert_eq!(m["scriptUrls"], 0, "a javascript: URL: {m:#}");
    let html = m["html"].as_str().unwrap().to_ascii_lowercase();
    for bad in ["<script", "<iframe", "onerror", "onload", "javascript:"] {
        assert!(!html.contains(bad), "{bad} in {html}");
    }
    // A later message shown live: whatever the first could start (an image's error) has had its
    // turn; `until` checks the title on every look.
    shown(&h, &b, &chat_id, "after the HTML");
    // Clicking the link does nothing either.
    b.click(&format!(r#"[data-message-id="{id}"] a"#));
    shown(&h, &b, &chat_id, "after the click");
    assert_eq!(b.snapshot()["title"], "Chat");
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn unread_counts_show_on_the_chats_and_opening_one_marks_it_read() {
    let h = Harness::start(Duration::from_secs(60));
    let project = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    // A second chat, created while the page is open: it joins the list.
    let design = h.create_chat("Design");
    b.until("the new chat in the list", |page| {
        chat(page, &design).map(drop)
    });
    // Open "Project" by clicking it: a message there shows that it is the one open.
    let seen = id_of(&h.colleague_writes(&project, "in project", "text"));
    b.click(&format!(r#"[data-chat-id="{project}"]"#));
    b.until("the Project chat open", |page| {
        message(page, &seen).map(drop)
    });
    b.until("Project read", |page| {
        (chat(page, &project)?["unread"] == "0").then_some(())
    });
    // The colleague writes twice in "Design", which is not open.
    let one = id_of(&h.colleague_writes(&design, "design one", "text"));
    let two = id_of(&h.colleague_writes(&design, "design two", "text"));
    b.until("Design's unread count", |page| {
        (chat(page, &design)?["unread"] == "2").then_some(())
    });
    let page = b.snapshot();
    assert!(
        message(&page, &one).is_none(),
        "a closed chat's message shows: {page:#}"
    );
    assert_eq!(chat(&page, &project).unwrap()["unread"], "0");
    // Clicking it opens it and marks it read.
    b.click(&format!(r#"[data-chat-id="{design}"]"#));
    b.until("Design open", |page| {
        (ids(page) == [one.clone(), two.clone()]).then_some(())
    });
    b.until("Design read", |page| {
        (chat(page, &design)?["unread"] == "0").then_some(())
    });
    wait_for("the API's count", || {
        (h.chat(&design)["unreadCount"] == 0).then_some(())
    });
    wait_for("Project's count in the API", || {
        (h.chat(&project)["unreadCount"] == 0).then_some(())
    });
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_reload_shows_the_same_messages_in_the_same_order() {
    let h = Harness::start(Duration::from_secs(60));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    let a = shown(&h, &b, &chat_id, "one");
    let c = shown(&h, &b, &chat_id, "two");
    b.compose("three, mine");
    let mine = b.until("my message", |page| {
        messages(page)
            .iter()
            .find(|m| text(m).contains("three, mine"))
            .map(id_of)
    });
    let d = shown(&h, &b, &chat_id, "four");
    h.sim()
        .colleague_edits(&chat_id, &c, "two, edited")
        .unwrap();
    h.sim().colleague_deletes(&chat_id, &d).unwrap();
    b.until("the edit and the delete", |page| {
        (message(page, &c)?["state"] == "edited" && message(page, &d)?["state"] == "deleted")
            .then_some(())
    });
    let live = b.snapshot();
    let order = api_ids(&h, &chat_id);
    assert_eq!(order, [a, c, mine, d]);
    assert_eq!(ids(&live), order);
    b.refresh();
    let reloaded = b.loaded();
    assert_eq!(ids(&reloaded), order);
    let view = |page: &Value| -> Vec<(Value, Value, Value)> {
        messages(page)
            .iter()
            .map(|m| (m["id"].clone(), m["state"].clone(), m["text"].clone()))
            .collect()
    };
    assert_eq!(view(&reloaded), view(&live));
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_dlp_block_hides_the_message() {
    let h = Harness::start(Duration::from_secs(60));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    let id = shown(&h, &b, &chat_id, "card number 4111 1111 1111 1111");
    h.sim()
        .policy_violation(&chat_id, &id, "BlockAccess")
        .unwrap();
    let m = b.until("the DLP verdict", |page| {
        message(page, &id)
            .filter(|m| m["state"] == "blocked")
            .cloned()
    });
    assert!(!text(&m).contains("4111"), "{m:#}");
    assert!(!b.snapshot().to_string().contains("4111"));
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_message_typed_as_soon_as_the_page_opens_is_sent_and_the_page_stays() {
    let h = Harness::start(Duration::from_secs(60));
    let chat_id = h.first_chat();
    let b = Browser::start();
    // A slow network (every request 400 ms), and no wait for the page's script to load
    // anything: a quick user.
    b.cdp("Network.enable", json!({}));
    b.cdp(
        "Network.emulateNetworkConditions",
        json!({"offline": false, "latency": 400, "downloadThroughput": -1, "uploadThroughput": -1}),
    );
    b.goto(&h.login_url());
    b.compose("typed at once");
    let m = b.until("the early message", |page| {
        messages(page)
            .iter()
            .find(|m| text(m).contains("typed at once"))
            .cloned()
    });
    let sent: Vec<Value> = h
        .messages(&chat_id)
        .into_iter()
        .filter(|m| m["content"] == "typed at once")
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(m["id"], sent[0]["id"]);
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_double_submit_sends_once() {
    let h = Harness::start(Duration::from_secs(60));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    let client = b.client();
    b.run("type", async {
        client
            .find(Locator::Css("#compose [name=content]"))
            .await?
            .send_keys("only once")
            .await
    })
    .unwrap();
    // Two presses of the button before the first send has answered.
    b.execute(
        "const f = document.getElementById('compose'); f.requestSubmit(); f.requestSubmit();",
        vec![],
    );
    let id = b.until("the message", |page| {
        messages(page)
            .iter()
            .find(|m| text(m).contains("only once"))
            .map(id_of)
    });
    let later = shown(&h, &b, &chat_id, "a reply");
    let page = b.snapshot();
    assert_eq!(ids(&page), [id, later], "{page:#}");
    assert_eq!(ids(&page), api_ids(&h, &chat_id));
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn before_its_script_runs_the_form_submits_nothing() {
    let h = Harness::start(Duration::from_secs(60));
    let b = Browser::start();
    // The page's script never arrives (a slow or failed load of app.js).
    b.cdp("Network.enable", json!({}));
    b.cdp("Network.setBlockedURLs", json!({"urls": ["*/app.js"]}));
    b.goto(&h.login_url());
    // A submit the page did not take over would navigate away: note it, and stay.
    b.execute(
        "window.addEventListener('submit', (e) => { \
           window.__nativeSubmit = !e.defaultPrevented; e.preventDefault(); });",
        vec![],
    );
    let client = b.client();
    b.run("type and press Enter", async {
        let field = client.find(Locator::Css("#compose [name=content]")).await?;
        field.send_keys("not yet\u{E007}").await?;
        client.form(Locator::Id("compose")).await?.submit().await
    })
    .unwrap();
    let page = b.execute(
        "return { submitted: window.__nativeSubmit === true, search: location.search, \
                  value: document.querySelector('#compose [name=content]').value };",
        vec![],
    );
    assert_eq!(
        page["submitted"], false,
        "the browser would submit the form itself"
    );
    assert_eq!(page["search"], "", "the browser submitted the form itself");
    // Enter in the message box before the script runs is the textarea's own new line.
    assert_eq!(page["value"].as_str().map(str::trim_end), Some("not yet"));
}

/// What a phone-sized screen shows: whether anything scrolls sideways, and where things are.
const LAYOUT: &str = r##"
const box = (s) => { const e = document.querySelector(s); if (!e) return null;
  const r = e.getBoundingClientRect(); const st = getComputedStyle(e);
  return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width,
    shown: st.display !== "none" && st.visibility !== "hidden" && r.width > 0 && r.height > 0 }; };
return {
  width: window.innerWidth,
  height: window.innerHeight,
  scrollWidth: document.documentElement.scrollWidth,
  bodyScrollWidth: document.body.scrollWidth,
  list: box("#chats"),
  messages: box("#scroller"),
  send: box("#compose button[type=submit]"),
  field: box("#compose [name=content]"),
  back: box("#back"),
  widest: Math.max(0, ...[...document.querySelectorAll("[data-message-id], [data-chat-id]")]
    .map((e) => e.getBoundingClientRect().right)),
};
"##;

fn fits(layout: &Value) -> bool {
    let width = layout["width"].as_f64().unwrap_or(0.0);
    layout["scrollWidth"].as_f64() <= Some(width)
        && layout["bodyScrollWidth"].as_f64() <= Some(width)
        && layout["widest"].as_f64() <= Some(width + 0.5)
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn axe_core_finds_no_serious_violation_at_1280_and_390_px() {
    let h = Harness::start(Duration::from_secs(60));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    shown(&h, &b, &chat_id, "something to read");
    b.compose("and something of mine");
    b.until("my message", |page| {
        messages(page)
            .iter()
            .any(|m| text(m).contains("something of mine"))
            .then_some(())
    });
    let wide = b.axe();
    assert!(wide.is_empty(), "at 1280 px: {wide:#?}");
    b.viewport(390, 844);
    // The list (the address names no chat), then the open chat.
    b.goto(&h.login_url());
    b.until("the chat list", |page| {
        page["chats"].as_array().filter(|c| !c.is_empty()).map(drop)
    });
    let list = b.axe();
    assert!(list.is_empty(), "at 390 px, the list: {list:#?}");
    b.click(&format!(r#"[data-chat-id="{chat_id}"]"#));
    b.loaded();
    let open = b.axe();
    assert!(open.is_empty(), "at 390 px, the open chat: {open:#?}");
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn at_390_px_the_list_and_the_chat_fit_the_screen_and_send_is_on_it() {
    let h = Harness::start(Duration::from_secs(60));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.viewport(390, 844);
    b.goto(&h.login_url());
    b.until("the chat list", |page| chat(page, &chat_id).map(drop));
    let layout = b.execute(LAYOUT, vec![]);
    assert!(fits(&layout), "the list scrolls sideways: {layout:#}");
    assert_eq!(layout["list"]["shown"], true, "{layout:#}");
    // The list takes the screen: the chat opens in its place.
    b.click(&format!(r#"[data-chat-id="{chat_id}"]"#));
    b.loaded();
    // A long word, and a message of mine with one too.
    let word = "Donaudampfschifffahrtsgesellschaftskapitän".repeat(40);
    let long = shown(&h, &b, &chat_id, &word);
    b.compose(&format!("mine: {word}"));
    b.until("my long message", |page| {
        messages(page)
            .iter()
            .any(|m| text(m).contains("mine: "))
            .then_some(())
    });
    let layout = b.execute(LAYOUT, vec![]);
    assert!(fits(&layout), "the chat scrolls sideways: {layout:#}");
    assert_eq!(layout["list"]["shown"], false, "{layout:#}");
    let width = layout["width"].as_f64().unwrap();
    let height = layout["height"].as_f64().unwrap();
    let send = &layout["send"];
    assert_eq!(send["shown"], true, "{layout:#}");
    assert!(
        send["right"].as_f64() <= Some(width) && send["bottom"].as_f64() <= Some(height),
        "Send is off screen: {layout:#}"
    );
    assert_eq!(ids(&b.snapshot())[0], long);
    // Back to the list.
    b.click("#back");
    let layout = b.execute(LAYOUT, vec![]);
    assert_eq!(layout["list"]["shown"], true, "{layout:#}");
    assert!(fits(&layout), "{layout:#}");
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn chats_are_reached_and_opened_by_keyboard_with_a_visible_focus() {
    let h = Harness::start(Duration::from_secs(60));
    let project = h.first_chat();
    let design = h.create_chat("Design");
    let b = Browser::start();
    b.open(&h.login_url());
    b.until("both chats", |page| chat(page, &design).map(drop));
    let focused = || {
        b.execute(
            "const e = document.activeElement; const s = getComputedStyle(e);
             return { chat: e.dataset ? e.dataset.chatId || null : null, tag: e.tagName,
                      name: (e.getAttribute('aria-label') || e.textContent || '').trim(),
                      outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2 };",
            vec![],
        )
    };
    // Tab from the top of the page to the first chat.
    b.execute(
        "document.activeElement && document.activeElement.blur();",
        vec![],
    );
    let mut entry = Value::Null;
    for _ in 0..10 {
        b.keys("\u{E004}");
        let now = focused();
        if now["chat"].is_string() {
            entry = now;
            break;
        }
    }
    assert!(entry["chat"].is_string(), "Tab never reached a chat");
    assert_eq!(entry["outline"], true, "no visible focus: {entry:#}");
    assert!(!entry["name"].as_str().unwrap().is_empty(), "{entry:#}");
    // Tab to the other chat and open it with Enter.
    let other = if entry["chat"] == project.as_str() {
        &design
    } else {
        &project
    };
    b.keys("\u{E004}");
    assert_eq!(focused()["chat"], other.as_str());
    let said = id_of(&h.colleague_writes(other, "opened by keyboard", "text"));
    b.keys("\u{E007}");
    b.until("the chat opened by Enter", |page| {
        message(page, &said).map(drop)
    });
    let current = b.execute(
        "return [...document.querySelectorAll('[data-chat-id][aria-current=true]')].map((e) => e.dataset.chatId);",
        vec![],
    );
    assert_eq!(current, json!([other]));
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn enter_sends_shift_enter_starts_a_new_line_and_no_format_picker_is_left() {
    let h = Harness::start(Duration::from_secs(60));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    let field = b.execute(
        "const f = document.querySelector('#compose [name=content]');
         return { tag: f.tagName, selects: document.querySelectorAll('#compose select').length };",
        vec![],
    );
    assert_eq!(field, json!({"tag": "TEXTAREA", "selects": 0}));
    b.click("#compose [name=content]");
    b.keys("line one\u{E008}\u{E007}\u{E000}line two\u{E007}");
    let sent = wait_for("the message in Graph", || {
        h.sim().truth(&chat_id).unwrap().into_iter().find(|m| {
            m["body"]["content"]
                .as_str()
                .is_some_and(|c| c.contains("line two"))
        })
    });
    assert_eq!(sent["body"]["content"], "line one\nline two");
    let id = id_of(&sent);
    b.until("the message on the page", |page| {
        message(page, &id).map(drop)
    });
    let value = b.execute(
        "return document.querySelector('#compose [name=content]').value;",
        vec![],
    );
    assert_eq!(value, "");
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_new_message_is_announced_to_screen_readers() {
    let h = Harness::start(Duration::from_secs(60));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    shown(&h, &b, &chat_id, "can anyone hear me");
    let live = || {
        b.execute(
            "return [...document.querySelectorAll('[aria-live]:not([aria-live=off]), [role=log], [role=status], [role=alert]')]
               .map((e) => e.textContent).join(' | ');",
            vec![],
        )
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        let said = live();
        if said
            .as_str()
            .unwrap_or("")
            .contains("Adele Vance: can anyone hear me")
        {
            break;
        }
        assert!(Instant::now() < deadline, "not announced: {said}");
        std::thread::sleep(POLL);
    }
}

/// Where the open chat is scrolled, and which messages are in view.
const SCROLL: &str = r##"
const s = document.getElementById("scroller");
const view = s.getBoundingClientRect();
return {
  atBottom: s.scrollHeight - s.scrollTop - s.clientHeight < 2,
  scrollable: s.scrollHeight > s.clientHeight,
  inView: [...document.querySelectorAll("[data-message-id]")].filter((e) => {
    const r = e.getBoundingClientRect();
    return r.bottom > view.top && r.top < view.bottom;
  }).map((e) => e.dataset.messageId),
  older: (() => { const b = document.getElementById("older"); return b && !b.hidden; })(),
  divider: (() => { const d = document.querySelector("#messages .divider");
    const next = d && d.nextElementSibling; return next ? next.dataset.messageId || null : null; })(),
};
"##;

/// The colleague writes `n` messages ("old 0", "old 1"...); their ids in order.
fn history(h: &Harness, chat_id: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| h.says(chat_id, &format!("old {i}")))
        .collect()
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_long_chat_opens_at_its_newest_page_and_pages_back_to_its_first_message() {
    let mut h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let written = history(&h, &chat_id, 130);
    wait_for("the cache to hold them all", || {
        (api_ids(&h, &chat_id) == written).then_some(())
    });
    // The cache lets go of the oldest 30 (as a purge would): only Graph still has them. (Older
    // than the two newest pages a start reads, so no read brings them back before the person
    // pages back to them.)
    h.stop_app();
    {
        let file = graph_chat_app::people::cache_file(&h.dir.path().join("data"), &h.user());
        let cache = rusqlite::Connection::open(file).unwrap();
        for id in &written[..30] {
            cache
                .execute(
                    "DELETE FROM messages WHERE chat_id = ?1 AND id = ?2",
                    [&chat_id, id],
                )
                .unwrap();
        }
    }
    {
        // Its watermark past them too, or the restart's read would fetch them all again (they
        // are all within its overlap).
        let file = graph_chat_app::people::cache_file(&h.dir.path().join("data"), &h.user());
        let cache = rusqlite::Connection::open(file).unwrap();
        cache
            .execute(
                "INSERT OR REPLACE INTO watermarks (chat_id, at) \
                 VALUES (?1, '2999-01-01T00:00:00.000000000Z')",
                [&chat_id],
            )
            .unwrap();
    }
    h.start_app();
    assert_eq!(api_ids(&h, &chat_id), written[30..]);
    let b = Browser::start();
    let page = b.open(&h.login_url());
    // The newest page, scrolled to its end.
    assert_eq!(ids(&page), written[80..], "not the newest page");
    let at = b.execute(SCROLL, vec![]);
    assert_eq!(at["atBottom"], true, "{at:#}");
    assert!(
        at["inView"]
            .as_array()
            .unwrap()
            .contains(&json!(written[129])),
        "{at:#}"
    );
    assert_eq!(at["older"], true, "{at:#}");
    // button#older: the next page, from the cache; then the first 30, from Graph past it.
    // (Pressed where it is: a WebDriver click would scroll to the top first, which loads a
    // page by itself.)
    b.execute("document.getElementById('older').click();", vec![]);
    // (A read since the restart may already have brought back a message or so of the older
    // ones: the page holds at least the cache's second page.)
    b.until("the second page", |page| {
        let shown = ids(page);
        (shown.len() >= 100 && shown.ends_with(&written[30..])).then_some(())
    });
    // Scrolling to the top loads the next.
    b.until("the first message", |page| {
        b.execute("document.getElementById('scroller').scrollTop = 0;", vec![]);
        (ids(page) == written).then_some(())
    });
    let at = b.execute(SCROLL, vec![]);
    assert_eq!(
        at["older"], false,
        "more offered past the first message: {at:#}"
    );
    // Graph's truth, in the cache and on the page.
    let truth: Vec<String> = {
        let mut t = h.sim().truth(&chat_id).unwrap();
        t.sort_by_key(|m| m["id"].as_str().unwrap().parse::<u128>().unwrap());
        t.iter().map(id_of).collect()
    };
    assert_eq!(truth, written);
    assert_eq!(api_ids(&h, &chat_id), written);
    assert_eq!(ids(&b.snapshot()), written);
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn new_messages_scroll_into_view_and_the_open_chat_stays_read() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let written = history(&h, &chat_id, 40);
    wait_for("the cache", || {
        (api_ids(&h, &chat_id).len() == 40).then_some(())
    });
    let b = Browser::start();
    b.open(&h.login_url());
    let at = b.execute(SCROLL, vec![]);
    assert_eq!(at["scrollable"], true, "{at:#}");
    assert_eq!(at["atBottom"], true, "{at:#}");
    // Unread before it was opened: the divider marks where the person left off.
    assert_eq!(at["divider"], written[0].as_str(), "{at:#}");
    b.until("the chat read", |page| {
        (chat(page, &chat_id)?["unread"] == "0").then_some(())
    });
    wait_for("Graph's viewpoint", || {
        (h.chat(&chat_id)["unreadCount"] == 0).then_some(())
    });
    // The colleague writes while the person reads: in view, and never counted unread.
    for n in 0..3 {
        let id = h.says(&chat_id, &format!("while reading {n}"));
        b.until("the new message in view", |page| {
            assert_eq!(
                chat(page, &chat_id).unwrap()["unread"],
                "0",
                "the open chat counted a message unread: {page:#}"
            );
            let at = b.execute(SCROLL, vec![]);
            at["inView"]
                .as_array()
                .unwrap()
                .contains(&json!(id))
                .then_some(())
        });
    }
    wait_for("Graph's viewpoint read again", || {
        (h.chat(&chat_id)["unreadCount"] == 0).then_some(())
    });
    // Sent from the page: in view too.
    b.compose("my answer");
    let mine = b.until("my answer", |page| {
        messages(page)
            .iter()
            .find(|m| text(m).contains("my answer"))
            .map(id_of)
    });
    let at = b.execute(SCROLL, vec![]);
    assert!(
        at["inView"].as_array().unwrap().contains(&json!(mine)),
        "{at:#}"
    );
    assert_eq!(chat(&b.snapshot(), &chat_id).unwrap()["unread"], "0");
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn chats_are_named_as_teams_names_them_with_a_preview_by_latest_activity() {
    let h = Harness::start(Duration::from_secs(3600));
    let project = h.first_chat();
    // A one-on-one chat has no topic: Teams names it after the other person.
    let user = h.sim().identity().user_id;
    let member = |id: &str| {
        json!({"@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": ["owner"],
               "user@odata.bind": format!("https://graph.microsoft.com/v1.0/users('{id}')")})
    };
    let body =
        json!({"chatType": "oneOnOne", "members": [member(&user), member(common::COLLEAGUE.0)]});
    let mut answer = h
        .http
        .post(&format!("{}v1.0/chats", h.sim().base_url()))
        .header(
            "Authorization",
            format!("Bearer {}", common::token_for(h.sim(), &user)),
        )
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    let direct: Value = serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
    let direct = direct["id"].as_str().unwrap().to_owned();
    h.says(&project, "in the project");
    h.says(&direct, "just between us");
    let b = Browser::start();
    b.open(&h.login_url());
    let order = |page: &Value| -> Vec<String> {
        page["chats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let page = b.until("both chats", |page| {
        (order(page) == [direct.clone(), project.clone()]).then(|| page.clone())
    });
    // Named after the other member, as the chat's members name them.
    let other = h.chat(&direct)["members"][0]["displayName"]
        .as_str()
        .expect("the chat's members")
        .to_owned();
    let named = b.execute(
        "return document.querySelector(`[data-chat-id=\"${arguments[0]}\"] .name`).textContent;",
        vec![json!(direct)],
    );
    assert_eq!(named, other.as_str());
    let entry = chat(&page, &direct).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(entry.contains("just between us"), "no preview: {entry}");
    assert!(!entry.contains("Direct chat"), "{entry}");
    let entry = chat(&page, &project).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        entry.contains("Project") && entry.contains("in the project"),
        "{entry}"
    );
    // Activity moves a chat to the top.
    h.says(&project, "back to work");
    b.until("Project on top with its newest message", |page| {
        (order(page) == [project.clone(), direct.clone()]
            && text(chat(page, &project)?).contains("back to work"))
        .then_some(())
    });
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn with_no_chats_the_page_says_so_and_a_send_says_why_not() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let (status, _) = h.graph("DELETE", &format!("v1.0/chats/{chat_id}"));
    assert_eq!(status, 204);
    wait_for("the app to forget the chat", || {
        h.chat_ids().is_empty().then_some(())
    });
    let b = Browser::start();
    b.goto(&h.login_url());
    let shown = |css: &str| {
        b.execute(
            "const e = document.querySelector(arguments[0]);
             return e && !e.hidden && e.getClientRects().length > 0 ? e.textContent.trim() : null;",
            vec![json!(css)],
        )
    };
    let deadline = Instant::now() + PATIENCE;
    while shown("#no-chats").is_null() {
        assert!(Instant::now() < deadline, "no empty state");
        std::thread::sleep(POLL);
    }
    assert!(shown("#no-chats").as_str().unwrap().contains("No chats"));
    b.click("#compose [name=content]");
    b.keys("hello?\u{E007}");
    let deadline = Instant::now() + PATIENCE;
    while shown("#send-error").is_null() {
        assert!(Instant::now() < deadline, "Enter did nothing, silently");
        std::thread::sleep(POLL);
    }
    assert!(shown("#send-error")
        .as_str()
        .unwrap()
        .contains("open a chat"));
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_failed_send_shows_with_a_retry_that_clears_it_and_a_failed_mark_read_shows() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let design = h.create_chat("Design");
    let b = Browser::start();
    b.open(&h.login_url());
    b.until("both chats", |page| chat(page, &design).map(drop));
    let error = || {
        b.execute(
            "const e = document.getElementById('send-error');
             return e.hidden ? null : { text: e.textContent, role: e.getAttribute('role'),
               retry: !!e.querySelector('button#retry') };",
            vec![],
        )
    };
    b.click(&format!(r#"[data-chat-id="{chat_id}"]"#));
    b.until("Project open", |page| {
        (page["loadedChat"] == chat_id.as_str()).then_some(())
    });
    // The app cannot be reached (a throttled Graph is no failure: the app answers 202 and
    // sends once Graph takes it): the send fails, and says so.
    b.cdp("Network.enable", json!({}));
    b.cdp(
        "Network.setBlockedURLs",
        json!({"urls": ["*/messages", "*/read"]}),
    );
    b.compose("please arrive");
    let deadline = Instant::now() + PATIENCE;
    let shown = loop {
        let e = error();
        if !e.is_null() {
            break e;
        }
        assert!(Instant::now() < deadline, "the failure is not shown");
        std::thread::sleep(POLL);
    };
    assert_eq!(shown["role"], "alert", "{shown:#}");
    assert_eq!(shown["retry"], true, "{shown:#}");
    assert!(
        shown["text"].as_str().unwrap().contains("Not sent"),
        "{shown:#}"
    );
    // A failed mark-read is shown too.
    b.click(&format!(r#"[data-chat-id="{design}"]"#));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let e = b.execute(
            "const e = document.getElementById('read-error'); return e.hidden ? '' : e.textContent;",
            vec![],
        );
        if e.as_str().unwrap_or("").contains("Could not mark") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failed mark-read is not shown"
        );
        std::thread::sleep(POLL);
    }
    assert!(h
        .sim()
        .truth(&chat_id)
        .unwrap()
        .iter()
        .all(|m| m["body"]["content"] != "please arrive"));
    // The app is reached again: Retry sends it (to the chat it was written in), once.
    b.cdp("Network.setBlockedURLs", json!({"urls": []}));
    b.click("#retry");
    let sent = wait_for("the retried message in Graph", || {
        h.sim()
            .truth(&chat_id)
            .unwrap()
            .into_iter()
            .find(|m| m["body"]["content"] == "please arrive")
    });
    let deadline = Instant::now() + PATIENCE;
    while !error().is_null() {
        assert!(
            Instant::now() < deadline,
            "the failure stays after the send succeeded"
        );
        std::thread::sleep(POLL);
    }
    let copies = h
        .sim()
        .truth(&chat_id)
        .unwrap()
        .iter()
        .filter(|m| m["body"]["content"] == "please arrive")
        .count();
    assert_eq!(copies, 1, "{sent:#}");
}

/// The first message of the page whose text contains `content`.
fn find_text(page: &Value, content: &str) -> Option<Value> {
    messages(page)
        .iter()
        .find(|m| text(m).contains(content))
        .cloned()
}

/// Graph's copy of message `id`.
fn truth_of(h: &Harness, chat_id: &str, id: &str) -> Value {
    h.sim()
        .truth(chat_id)
        .unwrap()
        .into_iter()
        .find(|m| m["id"] == id)
        .unwrap_or(Value::Null)
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn own_messages_are_edited_in_place_and_deleted_with_an_undo() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    let theirs = shown(&h, &b, &chat_id, "not mine to change");
    b.compose("first draft");
    let mine = b.until("my message", |page| {
        find_text(page, "first draft").map(|m| id_of(&m))
    });
    let buttons = |id: &str| {
        b.execute(
            "return [...document.querySelectorAll(`[data-message-id=\"${arguments[0]}\"] button[data-action]`)]
               .map((e) => e.dataset.action);",
            vec![json!(id)],
        )
    };
    assert_eq!(
        buttons(&theirs),
        json!(["react", "reply"]),
        "only my own messages can be changed"
    );
    assert_eq!(buttons(&mine), json!(["react", "reply", "edit", "delete"]));
    // Edit in place.
    b.click(&format!(
        r#"[data-message-id="{mine}"] button[data-action=edit]"#
    ));
    b.keys("\u{E009}a\u{E000}\u{E017}final wording\u{E007}");
    b.until("the edit shown", |page| {
        let m = message(page, &mine)?;
        (m["state"] == "edited"
            && text(m).contains("final wording")
            && !text(m).contains("first draft"))
        .then_some(())
    });
    let graph = truth_of(&h, &chat_id, &mine);
    assert_eq!(graph["body"]["content"], "final wording");
    assert!(!graph["lastEditedDateTime"].is_null(), "{graph:#}");
    // Delete, then undo.
    b.click(&format!(
        r#"[data-message-id="{mine}"] button[data-action=delete]"#
    ));
    b.until("the delete shown", |page| {
        (message(page, &mine)?["state"] == "deleted").then_some(())
    });
    assert!(!truth_of(&h, &chat_id, &mine)["deletedDateTime"].is_null());
    assert_eq!(buttons(&mine), json!(["undo-delete"]));
    b.click(&format!(
        r#"[data-message-id="{mine}"] button[data-action=undo-delete]"#
    ));
    b.until("the message back", |page| {
        let m = message(page, &mine)?;
        (m["state"] != "deleted" && text(m).contains("final wording")).then_some(())
    });
    assert!(truth_of(&h, &chat_id, &mine)["deletedDateTime"].is_null());
    h.converged(&chat_id);
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn reactions_show_with_counts_and_are_set_and_unset_by_click() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let me = h.sim().identity().user_id;
    let b = Browser::start();
    b.open(&h.login_url());
    let id = shown(&h, &b, &chat_id, "react to this");
    let reaction = |page_id: &str| {
        b.execute(
            "const e = document.querySelector(`[data-message-id=\"${arguments[0]}\"] [data-reaction]`);
             return e ? { type: e.dataset.reaction, count: e.dataset.count,
                          pressed: e.getAttribute('aria-pressed'), label: e.getAttribute('aria-label') } : null;",
            vec![json!(page_id)],
        )
    };
    assert!(reaction(&id).is_null());
    b.click(&format!(
        r#"[data-message-id="{id}"] button[data-action=react]"#
    ));
    let deadline = Instant::now() + PATIENCE;
    let set = loop {
        let r = reaction(&id);
        if !r.is_null() {
            break r;
        }
        assert!(Instant::now() < deadline, "the reaction does not show");
        std::thread::sleep(POLL);
    };
    assert_eq!(set["count"], "1", "{set:#}");
    assert_eq!(set["pressed"], "true", "{set:#}");
    assert!(set["label"].as_str().unwrap().contains("You"), "{set:#}");
    let graph = truth_of(&h, &chat_id, &id);
    let reactions = graph["reactions"].as_array().cloned().unwrap_or_default();
    assert_eq!(reactions.len(), 1, "{graph:#}");
    assert_eq!(reactions[0]["reactionType"], set["type"]);
    assert_eq!(reactions[0]["user"]["user"]["id"], me.as_str());
    // A click on it takes it back.
    b.click(&format!(r#"[data-message-id="{id}"] [data-reaction]"#));
    let deadline = Instant::now() + PATIENCE;
    while !reaction(&id).is_null() {
        assert!(Instant::now() < deadline, "the reaction stays");
        std::thread::sleep(POLL);
    }
    let graph = truth_of(&h, &chat_id, &id);
    assert!(
        graph["reactions"].as_array().is_none_or(Vec::is_empty),
        "{graph:#}"
    );
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_chat_is_marked_unread_hidden_and_unhidden_from_the_page() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    shown(&h, &b, &chat_id, "one");
    shown(&h, &b, &chat_id, "two");
    wait_for("read", || {
        (h.chat(&chat_id)["unreadCount"] == 0).then_some(())
    });
    b.click("button[data-action=mark-unread]");
    b.until("the chat unread", |page| {
        (chat(page, &chat_id)?["unread"] != "0").then_some(())
    });
    let (_, graph) = h.graph("GET", &format!("v1.0/me/chats/{chat_id}"));
    assert!(!graph["viewpoint"].is_null(), "{graph:#}");
    assert!(h.chat(&chat_id)["unreadCount"].as_u64() > Some(0));
    // Open again (read), then hide it.
    b.click(&format!(r#"[data-chat-id="{chat_id}"]"#));
    b.until("read again", |page| {
        (chat(page, &chat_id)?["unread"] == "0").then_some(())
    });
    wait_for("read in Graph", || {
        (h.chat(&chat_id)["unreadCount"] == 0).then_some(())
    });
    b.click("button[data-action=hide]");
    wait_for("hidden in Graph", || {
        (h.chat(&chat_id)["hidden"] == true).then_some(())
    });
    let (_, graph) = h.graph("GET", &format!("v1.0/me/chats/{chat_id}"));
    assert_eq!(graph["viewpoint"]["isHidden"], true, "{graph:#}");
    b.click("button[data-action=unhide]");
    wait_for("unhidden in Graph", || {
        (h.chat(&chat_id)["hidden"] == false).then_some(())
    });
    let (_, graph) = h.graph("GET", &format!("v1.0/me/chats/{chat_id}"));
    assert_eq!(graph["viewpoint"]["isHidden"], false, "{graph:#}");
    b.until("the chat listed", |page| {
        (chat(page, &chat_id)?["unread"] == "0").then_some(())
    });
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_reply_quotes_the_message_it_answers() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    let asked = shown(&h, &b, &chat_id, "lunch at noon?");
    b.click(&format!(
        r#"[data-message-id="{asked}"] button[data-action=reply]"#
    ));
    b.compose("noon works");
    let reply = b.until("the reply", |page| {
        find_text(page, "noon works").map(|m| id_of(&m))
    });
    let shown = b.execute(
        "const e = document.querySelector(`[data-message-id=\"${arguments[0]}\"]`);
         return { replyTo: e.dataset.replyTo || null, quote: (e.querySelector('.quote') || {}).textContent || '' };",
        vec![json!(reply)],
    );
    assert_eq!(shown["replyTo"], asked.as_str(), "{shown:#}");
    assert!(
        shown["quote"].as_str().unwrap().contains("lunch at noon?"),
        "{shown:#}"
    );
    // Graph holds a reply as Teams sends one: the reference and its attachment.
    let graph = truth_of(&h, &chat_id, &reply);
    assert_eq!(graph["body"]["contentType"], "html", "{graph:#}");
    assert!(
        graph["body"]["content"]
            .as_str()
            .unwrap()
            .contains(&format!(r#"<attachment id="{asked}">"#)),
        "{graph:#}"
    );
    assert_eq!(graph["attachments"][0]["contentType"], "messageReference");
    assert_eq!(graph["attachments"][0]["id"], asked.as_str());
    // The next message is no reply.
    b.compose("and a plain one");
    let plain = b.until("the plain message", |page| {
        find_text(page, "and a plain one").map(|m| id_of(&m))
    });
    assert!(truth_of(&h, &chat_id, &plain)["attachments"]
        .as_array()
        .is_none_or(Vec::is_empty));
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn system_events_show_as_teams_words_them_never_raw() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    // Graph's system messages, as a notification brings them.
    let event = |id: &str, detail: Value| {
        json!({
            "id": id, "chatId": chat_id, "messageType": "systemEventMessage",
            "createdDateTime": "2026-12-01T09:00:00.000Z",
            "lastModifiedDateTime": "2026-12-01T09:00:00.000Z",
            "from": null, "body": {"contentType": "html", "content": "<systemEventMessage/>"},
            "eventDetail": detail,
        })
        .to_string()
    };
    let adele = json!({"user": {"id": common::COLLEAGUE.0, "displayName": common::COLLEAGUE.1}});
    let person = h.app().person(&h.user()).expect("the user is signed in");
    let store = person.store();
    store
        .apply_message(
            &chat_id,
            &event(
                "1764579600001",
                json!({"@odata.type": "#microsoft.graph.membersAddedEventMessageDetail",
                       "initiator": adele,
                       "members": [{"id": "a1", "displayName": "Alex Wilber"}]}),
            ),
            false,
        )
        .unwrap();
    store
        .apply_message(
            &chat_id,
            &event(
                "1764579600002",
                json!({"@odata.type": "#microsoft.graph.chatRenamedEventMessageDetail",
                       "initiator": adele, "chatDisplayName": "Launch"}),
            ),
            false,
        )
        .unwrap();
    let page = b.until("both events", |page| {
        (message(page, "1764579600001").is_some() && message(page, "1764579600002").is_some())
            .then(|| page.clone())
    });
    let added = text(message(&page, "1764579600001").unwrap());
    assert!(added.contains("Adele Vance added Alex Wilber"), "{added}");
    let renamed = text(message(&page, "1764579600002").unwrap());
    assert!(
        renamed.contains("Adele Vance renamed the chat to"),
        "{renamed}"
    );
    assert!(renamed.contains("Launch"), "{renamed}");
    for m in messages(&page) {
        assert!(!m["html"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("systemeventmessage"));
        assert!(!text(m).contains("Unknown sender"), "{m:#}");
    }
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn at_opens_a_picker_of_the_chats_members_and_sends_a_real_mention() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    // The colleague as the chat's members name them.
    let name = h.chat(&chat_id)["members"][0]["displayName"]
        .as_str()
        .expect("the chat's members")
        .to_owned();
    b.click("#compose [name=content]");
    b.keys(&format!("thanks @{}", &name[..2]));
    let picker = b.execute(
        "const p = document.getElementById('mention-picker');
         return p.hidden ? null : [...p.querySelectorAll('[role=option]')].map((o) => o.textContent);",
        vec![],
    );
    assert_eq!(picker, json!([name]), "the picker");
    // Enter picks the person; a second Enter sends.
    b.keys("\u{E007}for this\u{E007}");
    let sent = wait_for("the message in Graph", || {
        h.sim().truth(&chat_id).unwrap().into_iter().find(|m| {
            m["body"]["content"]
                .as_str()
                .is_some_and(|c| c.contains("for this"))
        })
    });
    let content = sent["body"]["content"].as_str().unwrap();
    assert_eq!(sent["body"]["contentType"], "html", "{sent:#}");
    assert!(
        content.contains(&format!(r#"<at id="0">{name}</at>"#)),
        "{sent:#}"
    );
    assert_eq!(
        sent["mentions"][0]["mentioned"]["user"]["id"],
        common::COLLEAGUE.0,
        "{sent:#}"
    );
    let id = id_of(&sent);
    b.until("the mention shown highlighted", |page| {
        message(page, &id)?;
        let shown = b.execute(
            "const e = document.querySelector(`[data-message-id=\"${arguments[0]}\"] at.mention`);
             return e ? { text: e.textContent, user: e.dataset.userId || null } : null;",
            vec![json!(id)],
        );
        (shown["text"] == name.as_str() && shown["user"] == common::COLLEAGUE.0).then_some(())
    });
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_person_signs_in_from_the_page_with_one_click_and_out_again() {
    let h = Harness::start(Duration::from_secs(60));
    let chat_id = h.first_chat();
    let b = Browser::start();
    // Without a session: the sign-in page, no chat.
    b.goto(&h.url());
    let signed_out = |b: &Browser| {
        b.execute(
            "return { signIn: !!document.getElementById('sign-in'), \
                      chats: document.querySelectorAll('[data-chat-id]').length };",
            vec![],
        )
    };
    let page = signed_out(&b);
    assert_eq!(page["signIn"], true, "{page}");
    assert_eq!(page["chats"], 0, "{page}");
    // Sign in, then the identity platform's list of users: the user is the first.
    b.click("#sign-in");
    b.click("li a");
    let page = b.loaded();
    assert!(
        page["chats"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == chat_id.as_str()),
        "{page:#}"
    );
    // Signing out ends the session: the sign-in page again, and the API refuses.
    b.click("#sign-out button");
    let deadline = Instant::now() + PATIENCE;
    while signed_out(&b)["signIn"] != true {
        assert!(
            Instant::now() < deadline,
            "the page did not show the sign-in"
        );
        std::thread::sleep(POLL);
    }
    // The browser's cookie opens the API no more.
    b.goto(&format!("{}api/chats", h.url()));
    let body = b.execute("return document.body.textContent;", vec![]);
    assert!(body.as_str().unwrap().contains("sign in first"), "{body}");
}

/// Alex Wilber, the simulator's second colleague (in no chat at the start).
const ALEX: (&str, &str) = ("8d0f6b51-3b9e-4a57-9a4e-7e1b3c2d4e02", "Alex Wilber");

/// The people the page's picker shows (`[data-user-id]`) and has picked (`[data-picked-user-id]`),
/// and how many directory searches it has made.
const PICKER: &str = r##"
const all = (s) => [...document.querySelectorAll(s)];
return {
  results: all("#new-chat-form [data-user-id]").map((e) => e.dataset.userId),
  picked: all("#new-chat-form [data-picked-user-id]").map((e) => e.dataset.pickedUserId),
  searches: performance.getEntriesByType("resource")
    .filter((r) => new URL(r.name).pathname === "/api/people").length,
  topicDisabled: document.querySelector("#new-chat-form input[name=topic]").disabled,
};
"##;

/// Types `words` in the picker and picks the person `id` once the directory has found them.
fn pick(b: &Browser, words: &str, id: &str) {
    b.click("#new-chat-form input[name=people]");
    b.keys(words);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let picker = b.execute(PICKER, vec![]);
        if picker["results"].as_array().unwrap().contains(&json!(id)) {
            break;
        }
        assert!(Instant::now() < deadline, "{id} is not found: {picker:#}");
        std::thread::sleep(POLL);
    }
    b.click(&format!(r#"#new-chat-form [data-user-id="{id}"]"#));
}

/// The chat's member ids in Graph, sorted.
fn members_in_graph(h: &Harness, chat_id: &str) -> Vec<String> {
    let (status, members) = h.graph("GET", &format!("v1.0/chats/{chat_id}/members"));
    assert_eq!(status, 200, "{members:#}");
    let mut ids: Vec<String> = members["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userId"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_new_chat_is_started_from_the_people_picker_and_opens() {
    let h = Harness::start(Duration::from_secs(3600));
    let me = h.user();
    let before = h.sim().chat_ids();
    let b = Browser::start();
    b.open(&h.login_url());
    b.click("button#new-chat");
    // A burst of keys searches once (debounced), never for the signed-in person.
    b.click("#new-chat-form input[name=people]");
    b.keys("Al");
    b.until("the picker's results", |_| {
        let picker = b.execute(PICKER, vec![]);
        (picker["results"] == json!([ALEX.0])).then_some(())
    });
    let picker = b.execute(PICKER, vec![]);
    assert_eq!(picker["searches"], 1, "{picker:#}");
    b.click(&format!(r#"#new-chat-form [data-user-id="{}"]"#, ALEX.0));
    pick(&b, "Ad", common::COLLEAGUE.0);
    let picker = b.execute(PICKER, vec![]);
    assert_eq!(picker["picked"], json!([ALEX.0, common::COLLEAGUE.0]));
    assert_eq!(picker["topicDisabled"], false, "a group may be named");
    // Removable: Adele out, and in again.
    b.click(&format!(
        r#"[data-picked-user-id="{}"] button"#,
        common::COLLEAGUE.0
    ));
    let picker = b.execute(PICKER, vec![]);
    assert_eq!(picker["picked"], json!([ALEX.0]));
    assert_eq!(
        picker["topicDisabled"], true,
        "a one-on-one chat has no name"
    );
    pick(&b, "Ade", common::COLLEAGUE.0);
    b.click("#new-chat-form input[name=topic]");
    b.keys("Launch plans");
    b.click("#new-chat-form button[type=submit]");
    // Opened, and in the list once, named by its topic.
    let page = b.until("the new chat open", |page| {
        let id = page["loadedChat"].as_str()?;
        (!before.iter().any(|c| c == id)).then(|| page.clone())
    });
    let group = page["loadedChat"].as_str().unwrap().to_owned();
    assert!(
        chat(&page, &group).unwrap()["text"]
            .as_str()
            .unwrap()
            .contains("Launch plans"),
        "{page:#}"
    );
    let current = b.execute(
        "return document.querySelector('[data-chat-id][aria-current=true]').dataset.chatId;",
        vec![],
    );
    assert_eq!(current, group.as_str());
    // Graph's truth: a group of the three, with its topic.
    assert!(h.sim().chat_ids().contains(&group));
    let (_, graph) = h.graph("GET", &format!("v1.0/chats/{group}"));
    assert_eq!(graph["chatType"], "group", "{graph:#}");
    assert_eq!(graph["topic"], "Launch plans", "{graph:#}");
    let mut three = vec![
        me.clone(),
        ALEX.0.to_owned(),
        common::COLLEAGUE.0.to_owned(),
    ];
    three.sort();
    assert_eq!(members_in_graph(&h, &group), three);
    // A message there; once it has come back, the chat's notification has too: still one entry.
    b.compose("welcome, both");
    b.until("the message", |page| {
        find_text(page, "welcome, both").map(drop)
    });
    wait_for("the chat in the app's list", || {
        h.chat_ids().contains(&group).then_some(())
    });
    let entries = b.execute(
        "return document.querySelectorAll(`[data-chat-id=\"${arguments[0]}\"]`).length;",
        vec![json!(group)],
    );
    assert_eq!(entries, 1);
    // One person: a one-on-one chat, named after them.
    b.click("button#new-chat");
    pick(&b, "Wil", ALEX.0);
    b.click("#new-chat-form button[type=submit]");
    let page = b.until("the one-on-one chat open", |page| {
        let id = page["loadedChat"].as_str()?;
        (id != group && !before.iter().any(|c| c == id)).then(|| page.clone())
    });
    let direct = page["loadedChat"].as_str().unwrap().to_owned();
    let (_, graph) = h.graph("GET", &format!("v1.0/chats/{direct}"));
    assert_eq!(graph["chatType"], "oneOnOne", "{graph:#}");
    let mut two = vec![me, ALEX.0.to_owned()];
    two.sort();
    assert_eq!(members_in_graph(&h, &direct), two);
    assert!(
        chat(&page, &direct).unwrap()["text"]
            .as_str()
            .unwrap()
            .contains(ALEX.1),
        "{page:#}"
    );
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn axe_core_finds_no_serious_violation_with_the_new_chat_form_open() {
    let h = Harness::start(Duration::from_secs(3600));
    let b = Browser::start();
    b.open(&h.login_url());
    let audit = |width: u32| {
        b.click("button#new-chat");
        pick(&b, "Al", ALEX.0);
        // Results showing, one person picked.
        b.click("#new-chat-form input[name=people]");
        b.keys("Ad");
        b.until("the results", |_| {
            let picker = b.execute(PICKER, vec![]);
            (picker["results"] == json!([common::COLLEAGUE.0])).then_some(())
        });
        let found = b.axe();
        assert!(found.is_empty(), "at {width} px: {found:#?}");
        b.click("#new-chat-cancel");
    };
    audit(1280);
    b.viewport(390, 844);
    b.click("#back");
    audit(390);
}

/// A 2 x 2 PNG, as a screenshot tool would paste one.
const PNG_2X2: &str = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAwMDAwMDAAAANAAH/3WvRAAAAAElFTkSuQmCC";

/// Pastes a file into the message box, as a browser does (a `paste` event carrying it):
/// `bytes` is base64, or a count of zero bytes when a number.
fn paste_file(b: &Browser, name: &str, content_type: &str, bytes: Value) {
    b.execute(
        "const [name, type, bytes] = arguments;
         const data = typeof bytes === 'number' ? new Uint8Array(bytes)
           : Uint8Array.from(atob(bytes), (c) => c.charCodeAt(0));
         const transfer = new DataTransfer();
         transfer.items.add(new File([data], name, { type }));
         const field = document.querySelector('#compose [name=content]');
         field.focus();
         field.dispatchEvent(new ClipboardEvent('paste', { clipboardData: transfer, bubbles: true, cancelable: true }));",
        vec![json!(name), json!(content_type), bytes],
    );
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_pasted_image_is_sent_inline_and_shown_and_other_files_are_refused_saying_why() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    let in_graph = || h.sim().truth(&chat_id).unwrap().len();
    let before = in_graph();
    let refusal = || {
        b.execute(
            "const e = document.getElementById('attach-error');
             return e && !e.hidden ? e.textContent : null;",
            vec![],
        )
    };
    // Not an image: refused on the page, nothing sent.
    paste_file(&b, "notes.txt", "text/plain", json!("aGVsbG8="));
    let said = refusal();
    assert!(
        said.as_str().is_some_and(|s| s.contains("only images")),
        "{said}"
    );
    // Too large: refused, saying the limit.
    paste_file(&b, "huge.png", "image/png", json!(3 << 20));
    let said = refusal();
    assert!(said.as_str().is_some_and(|s| s.contains("2 MB")), "{said}");
    assert_eq!(in_graph(), before, "nothing was sent");
    // An image, with a caption: sent inline (hostedContents), shown through the app.
    paste_file(&b, "screenshot.png", "image/png", json!(PNG_2X2));
    assert!(refusal().is_null());
    let found = b.axe();
    assert!(found.is_empty(), "with an image attached: {found:#?}");
    b.click("#compose [name=content]");
    b.keys("the chart\u{E007}");
    let sent = wait_for("the image in Graph", || {
        h.sim().truth(&chat_id).unwrap().into_iter().find(|m| {
            m["body"]["content"]
                .as_str()
                .is_some_and(|c| c.contains("the chart"))
        })
    });
    let content = sent["body"]["content"].as_str().unwrap();
    assert_eq!(sent["body"]["contentType"], "html", "{sent:#}");
    assert!(content.contains("/hostedContents/"), "{sent:#}");
    let id = id_of(&sent);
    let (status, hosted) = h.graph(
        "GET",
        &format!("v1.0/chats/{chat_id}/messages/{id}/hostedContents"),
    );
    assert_eq!(status, 200, "{hosted:#}");
    assert_eq!(
        hosted["value"].as_array().map(Vec::len),
        Some(1),
        "{hosted:#}"
    );
    let shown = b.until("the image shown", |page| {
        message(page, &id)?;
        let image = b.execute(
            "const i = document.querySelector(`[data-message-id=\"${arguments[0]}\"] img`);
             return i && i.complete && i.naturalWidth > 0
               ? { src: i.getAttribute('src'), width: i.naturalWidth } : null;",
            vec![json!(id)],
        );
        (!image.is_null()).then_some(image)
    });
    assert_eq!(shown["width"], 2, "{shown:#}");
    assert!(
        shown["src"].as_str().unwrap().starts_with("/api/chats/"),
        "shown through the app: {shown:#}"
    );
    let attached = b.execute(
        "return document.getElementById('attachment').hidden;",
        vec![],
    );
    assert_eq!(attached, true, "the attachment is cleared once sent");
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn files_show_as_links_with_their_names_and_cards_as_a_placeholder_never_raw() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    // The colleague sends a file, a card and a file with a script URL, through Graph.
    let file = "https://contoso.sharepoint.com/sites/team/Shared%20Documents/Budget%202027.xlsx";
    let body = json!({
        "body": {"contentType": "html", "content":
            "<p>see attached</p><attachment id=\"f1\"></attachment><attachment id=\"c1\"></attachment><attachment id=\"f2\"></attachment>"},
        "attachments": [
            {"id": "f1", "contentType": "reference", "contentUrl": file, "name": "Budget 2027.xlsx"},
            {"id": "c1", "contentType": "application/vnd.microsoft.card.adaptive",
             "content": "{\"type\":\"AdaptiveCard\",\"body\":[{\"type\":\"TextBlock\",\"text\":\"words of the card\"}]}"},
            {"id": "f2", "contentType": "reference", "contentUrl": "javascript:alert(1)", "name": "notes.txt"},
        ],
    });
    let mut answer = h
        .http
        .post(&format!(
            "{}v1.0/chats/{chat_id}/messages",
            h.sim().base_url()
        ))
        .header(
            "Authorization",
            format!("Bearer {}", common::token_for(h.sim(), common::COLLEAGUE.0)),
        )
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    let sent: Value = serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
    let id = id_of(&sent);
    let graph = truth_of(&h, &chat_id, &id);
    assert_eq!(
        graph["attachments"].as_array().map(Vec::len),
        Some(3),
        "{graph:#}"
    );
    let page = b.until("the message with its attachments", |page| {
        message(page, &id).cloned()
    });
    let shown = b.execute(
        "return [...document.querySelectorAll(`[data-message-id=\"${arguments[0]}\"] [data-attachment]`)]
           .map((e) => { const a = e.querySelector('a');
             return { kind: e.dataset.attachment, text: e.textContent, href: a ? a.href : null }; });",
        vec![json!(id)],
    );
    assert_eq!(shown[0]["kind"], "file", "{shown:#}");
    assert_eq!(shown[0]["href"], file, "{shown:#}");
    assert!(shown[0]["text"]
        .as_str()
        .unwrap()
        .contains("Budget 2027.xlsx"));
    assert_eq!(shown[1]["kind"], "card", "{shown:#}");
    assert!(
        shown[1]["text"].as_str().unwrap().contains("A card"),
        "{shown:#}"
    );
    assert_eq!(shown[2]["kind"], "file", "{shown:#}");
    assert!(shown[2]["href"].is_null(), "no script link: {shown:#}");
    assert!(shown[2]["text"].as_str().unwrap().contains("notes.txt"));
    let html = page["html"].as_str().unwrap();
    assert!(
        !html.contains("AdaptiveCard") && !html.contains("words of the card"),
        "a card's JSON is never shown: {html}"
    );
    assert_eq!(page["scriptUrls"], 0, "{page:#}");
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_group_chat_is_renamed_from_the_page() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    b.click("button[data-action=rename]");
    let found = b.axe();
    assert!(found.is_empty(), "with the rename form open: {found:#?}");
    b.keys("\u{E009}a\u{E000}\u{E017}Project Phoenix\u{E007}");
    b.until("the new name listed", |page| {
        chat(page, &chat_id)?["text"]
            .as_str()?
            .contains("Project Phoenix")
            .then_some(())
    });
    let title = b.execute(
        "return document.getElementById('chat-title').textContent;",
        vec![],
    );
    assert_eq!(title, "Project Phoenix");
    let (_, graph) = h.graph("GET", &format!("v1.0/chats/{chat_id}"));
    assert_eq!(graph["topic"], "Project Phoenix", "{graph:#}");
    assert_eq!(h.chat(&chat_id)["topic"], "Project Phoenix");
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_colleagues_reaction_arrives_live_with_its_count_and_who() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    let id = shown(&h, &b, &chat_id, "react to this, Adele");
    let reaction = |page_id: &str| {
        b.execute(
            "const e = document.querySelector(`[data-message-id=\"${arguments[0]}\"] [data-reaction]`);
             return e ? { count: e.dataset.count, pressed: e.getAttribute('aria-pressed'),
                          label: e.getAttribute('aria-label') } : null;",
            vec![json!(page_id)],
        )
    };
    assert!(reaction(&id).is_null());
    // The page stays as it is: no reload from here on.
    b.execute("window.__kept = true; return null;", vec![]);
    h.sim()
        .colleague_reacts(&chat_id, &id, common::COLLEAGUE.0, "👍", true)
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let shown = loop {
        let r = reaction(&id);
        if !r.is_null() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the colleague's reaction does not show"
        );
        std::thread::sleep(POLL);
    };
    assert_eq!(shown["count"], "1", "{shown:#}");
    assert_eq!(shown["pressed"], "false", "{shown:#}");
    assert!(
        shown["label"]
            .as_str()
            .unwrap()
            .contains(common::COLLEAGUE.1),
        "{shown:#}"
    );
    assert_eq!(
        b.execute("return window.__kept === true;", vec![]),
        json!(true),
        "the page was reloaded"
    );
    // Taken back, live too.
    h.sim()
        .colleague_reacts(&chat_id, &id, common::COLLEAGUE.0, "👍", false)
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !reaction(&id).is_null() {
        assert!(Instant::now() < deadline, "the reaction stays");
        std::thread::sleep(POLL);
    }
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn people_are_added_to_a_group_chat_with_the_picker_and_the_chat_says_so() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let me = h.user();
    let b = Browser::start();
    b.open(&h.login_url());
    b.until("the chat open", |page| {
        (page["loadedChat"] == chat_id.as_str()).then_some(())
    });
    b.click("button#add-people");
    pick(&b, "Wil", ALEX.0);
    b.click("#new-chat-form button[type=submit]");
    // Graph's truth: the three of them.
    let mut three = vec![
        me.clone(),
        ALEX.0.to_owned(),
        common::COLLEAGUE.0.to_owned(),
    ];
    three.sort();
    let deadline = Instant::now() + PATIENCE;
    while members_in_graph(&h, &chat_id) != three {
        assert!(Instant::now() < deadline, "Alex was not added");
        std::thread::sleep(POLL);
    }
    // The chat says who added whom, as Teams does, live.
    let page = b.until("the system event", |page| {
        find_text(page, "added Alex Wilber").map(|_| page.clone())
    });
    let event = find_text(&page, "added Alex Wilber").unwrap();
    assert!(
        text(&event).contains("Megan Bowen added Alex Wilber"),
        "{event:#}"
    );
    assert!(!text(&event).contains("Unknown sender"), "{event:#}");
    // The form is closed; a oneOnOne chat offers no "Add people".
    let hidden = b.execute(
        "return document.getElementById('new-chat-form').hidden;",
        vec![],
    );
    assert_eq!(hidden, json!(true));
    b.click("button#new-chat");
    pick(&b, "Ad", common::COLLEAGUE.0);
    b.click("#new-chat-form button[type=submit]");
    b.until("the one-on-one chat open", |page| {
        let id = page["loadedChat"].as_str()?;
        (id != chat_id).then_some(())
    });
    let offered = b.execute(
        "return !document.getElementById('add-people').hidden;",
        vec![],
    );
    assert_eq!(offered, json!(false));
}

#[test]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); .ci/run runs it with --ignored"]
fn a_reaction_graph_throttles_shows_waiting_then_lands_once() {
    let h = Harness::start(Duration::from_secs(3600));
    let chat_id = h.first_chat();
    let b = Browser::start();
    b.open(&h.login_url());
    let id = shown(&h, &b, &chat_id, "react while Teams is busy");
    let pending = |page_id: &str| {
        b.execute(
            "const e = document.querySelector(`[data-message-id=\"${arguments[0]}\"]`);
             return e ? { pending: e.dataset.pending || null,
                          reacted: Boolean(e.querySelector('[data-reaction]')) } : null;",
            vec![json!(page_id)],
        )
    };
    h.sim()
        .set_faults(graph_sim::Faults {
            throttle: 1.0,
            ..graph_sim::Faults::default()
        })
        .unwrap();
    b.click(&format!(
        r#"[data-message-id="{id}"] button[data-action=react]"#
    ));
    let deadline = Instant::now() + PATIENCE;
    loop {
        if pending(&id)["pending"] == "true" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reaction does not show as waiting"
        );
        std::thread::sleep(POLL);
    }
    h.sim().set_faults(graph_sim::Faults::default()).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = pending(&id);
        if state["pending"].is_null() && state["reacted"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reaction does not land: {state:#}"
        );
        std::thread::sleep(POLL);
    }
    let graph = truth_of(&h, &chat_id, &id);
    let reactions = graph["reactions"].as_array().cloned().unwrap_or_default();
    assert_eq!(reactions.len(), 1, "{graph:#}");
}

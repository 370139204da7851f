//! People sign in (`docs/contracts.md#the-chat-app`): the authorization code flow with PKCE,
//! sessions, each person's chats for that person only, tokens that expire and are refreshed,
//! a revoked person signed out, and secrets kept sealed under `--data`.

use crate::common;

use std::time::Duration;

use crate::common::{
    agent, agent_with_session, create_chat_as, get, location, post, raw_agent, set_cookie,
    sign_in_cookie, wait_for, Harness, COLLEAGUE, PATIENCE, SESSION_COOKIE,
};
use serde_json::{json, Value};

/// Alex, in no chat of the harness's user.
const ALEX: &str = "8d0f6b51-3b9e-4a57-9a4e-7e1b3c2d4e02";

fn ids(chats: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = chats
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// GET `url`: the status and the body as text.
fn text(agent: &ureq::Agent, url: &str) -> (u16, String) {
    let mut response = agent.get(url).call().unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// Every route of the API, with the method it takes.
fn api_routes(chat: &str) -> Vec<(&'static str, String)> {
    let chat = common::encode(chat);
    vec![
        ("GET", "api/me".into()),
        ("GET", "api/chats".into()),
        ("GET", format!("api/chats/{chat}/messages")),
        ("POST", format!("api/chats/{chat}/messages")),
        ("POST", format!("api/chats/{chat}/read")),
        (
            "GET",
            format!("api/chats/{chat}/messages/1/hostedContents/1"),
        ),
        ("GET", "api/events".into()),
        ("GET", "api/nowhere".into()),
    ]
}

fn status_of(agent: &ureq::Agent, method: &str, url: &str) -> u16 {
    let response = match method {
        "POST" => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(json!({"content": "x"}).to_string().as_bytes()),
        _ => agent.get(url).call(),
    };
    response.unwrap().status().as_u16()
}

#[test]
fn two_people_see_their_own_chats_and_a_stranger_sees_nothing() {
    let h = Harness::start(Duration::from_secs(600));
    let me = h.user();
    let shared = h.first_chat();
    // A chat of Adele and Alex, without the harness's user.
    let private = create_chat_as(&agent(), h.sim(), COLLEAGUE.0, &[ALEX], "Not yours");
    let adele = common::sign_in(&h.url(), COLLEAGUE.0);
    let app = h.url();

    // Who is who.
    let (status, who) = get(&h.http, &format!("{app}api/me"));
    assert_eq!(status, 200);
    assert_eq!(who["id"], me.as_str());
    assert!(
        who["displayName"].as_str().is_some_and(|n| !n.is_empty()),
        "{who}"
    );
    let (_, who) = get(&adele, &format!("{app}api/me"));
    assert_eq!(who["id"], COLLEAGUE.0);
    assert_eq!(who["displayName"], COLLEAGUE.1);

    // Each lists their own chats.
    assert_eq!(ids(&common::chats(&h.http, &app)), vec![shared.clone()]);
    let mut both = vec![shared.clone(), private.clone()];
    both.sort();
    assert_eq!(ids(&common::chats(&adele, &app)), both);

    // Another person's chat is not there for the user, whatever the route.
    for (method, path) in api_routes(&private)
        .into_iter()
        .filter(|(_, p)| p.contains("/chats/"))
    {
        let status = status_of(&h.http, method, &format!("{app}{path}"));
        assert_eq!(status, 404, "{method} {path}");
    }

    // A stranger: 401 on every route of the API, the sign-in page on `/`.
    let stranger = agent();
    for (method, path) in api_routes(&shared) {
        let status = status_of(&stranger, method, &format!("{app}{path}"));
        assert_eq!(status, 401, "{method} {path}");
    }
    let (status, page) = text(&stranger, &app);
    assert_eq!(status, 200);
    assert!(page.contains("href=\"/auth/login\""), "{page}");
    assert!(!page.contains("id=\"compose\""), "{page}");
    let (_, page) = text(&h.http, &app);
    assert!(page.contains("id=\"compose\""), "{page}");

    // Each person's stream: their chats' events only. Adele's first stream stays live when she
    // signs in again elsewhere.
    let mine = h.events(None, None);
    let adele_session = sign_in_cookie(&app, COLLEAGUE.0);
    let adeles = common::Sse::open(&app, &adele_session, None, None);
    let elsewhere = agent_with_session(&sign_in_cookie(&app, COLLEAGUE.0));
    assert_eq!(get(&elsewhere, &format!("{app}api/chats")).0, 200);
    let secret = h
        .sim()
        .colleague_writes(
            &private,
            graph_sim::Sender {
                id: ALEX.into(),
                display_name: "Alex Wilber".into(),
            },
            "only for Adele and Alex",
            "text",
        )
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    adeles.until("Adele's private message", |e| {
        e.data["id"] == secret.as_str()
    });
    let open = h.says(&shared, "for both of us");
    let seen = mine.until("the shared message", |e| e.data["id"] == open.as_str());
    assert_eq!(seen.data["chatId"], shared.as_str());
    // Everything the user's stream sent before it: none of the private chat.
    let replay = common::Sse::open(&app, &h.session, Some(0), None);
    let events = replay.drain(Duration::from_secs(2));
    assert!(!events.is_empty());
    for e in events {
        assert_ne!(e.data["chatId"], private.as_str(), "{:?}", e.data);
        assert_ne!(e.data["id"], private.as_str(), "{:?}", e.data);
    }

    // One chat, two viewpoints: the user writes; Adele has it unread, the user does not.
    let (status, _) = post(
        &h.http,
        &format!("{app}api/chats/{}/messages", common::encode(&shared)),
        &json!({"content": "from me"}),
    );
    assert_eq!(status, 201);
    let unread = |who: &ureq::Agent| {
        common::chats(who, &app)
            .into_iter()
            .find(|c| c["id"] == shared.as_str())
            .unwrap()["unreadCount"]
            .as_u64()
            .unwrap()
    };
    wait_for("Adele's unread count", || {
        (unread(&adele) >= 1).then_some(())
    });
    let (status, _) = post(
        &h.http,
        &format!("{app}api/chats/{}/read", common::encode(&shared)),
        &Value::Null,
    );
    assert_eq!(status, 204);
    assert_eq!(unread(&h.http), 0);
    assert!(unread(&adele) >= 1, "the user's read is not Adele's");
}

#[test]
fn forged_expired_ended_and_brought_sessions_are_not_sessions() {
    let h = Harness::start(Duration::from_secs(600));
    let app = h.url();
    let chats = format!("{app}api/chats");
    assert_eq!(get(&h.http, &chats).0, 200);

    // A forged id, or one of the right shape, is nobody's.
    for forged in ["forged", &"a".repeat(64), &h.session[..63]] {
        assert_eq!(get(&agent_with_session(forged), &chats).0, 401, "{forged}");
    }
    // Another person's session is that person's: their chats, not the user's.
    let private = create_chat_as(&agent(), h.sim(), COLLEAGUE.0, &[ALEX], "Adele's");
    let adele = agent_with_session(&sign_in_cookie(&app, COLLEAGUE.0));
    assert!(ids(&common::chats(&adele, &app)).contains(&private));
    assert!(!ids(&common::chats(&h.http, &app)).contains(&private));

    // The session's id is not kept in clear; its cookie is HttpOnly and SameSite=Lax.
    let data = h.dir.path().join("data");
    let kept = std::fs::read(data.join("app.sqlite")).unwrap_or_default();
    assert!(!contains(&kept, h.session.as_bytes()));
    let raw = raw_agent();
    let login = raw
        .get(&format!("{app}auth/login?login_hint={}", h.user()))
        .call()
        .unwrap();
    let pending = set_cookie(&login, "chat_login").unwrap();
    let authorized = raw.get(&location(&login)).call().unwrap();
    // The browser brings a session id of its choosing: it gets a fresh one.
    let callback = raw
        .get(&location(&authorized))
        .header(
            "Cookie",
            format!("chat_login={pending}; {SESSION_COOKIE}={}", "b".repeat(64)),
        )
        .call()
        .unwrap();
    assert_eq!(callback.status().as_u16(), 302);
    let header = callback
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(SESSION_COOKIE))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(header.contains(attribute), "{header}");
    }
    assert!(!header.contains("Secure"), "http: {header}");
    let fresh = set_cookie(&callback, SESSION_COOKIE).unwrap();
    assert_ne!(fresh, "b".repeat(64));
    assert_eq!(get(&agent_with_session(&"b".repeat(64)), &chats).0, 401);
    assert_eq!(get(&agent_with_session(&fresh), &chats).0, 200);

    // Signing out: from another site, refused; from the page, the session ends, and so does
    // the event stream it had open.
    let stream = common::Sse::open(&app, &fresh, None, None);
    let logout = format!("{app}auth/logout");
    let cross = agent_with_session(&fresh)
        .post(&logout)
        .header("Origin", "http://evil.example")
        .send_empty()
        .unwrap();
    assert_eq!(cross.status().as_u16(), 403);
    assert_eq!(get(&agent_with_session(&fresh), &chats).0, 200);
    let out = raw
        .post(&logout)
        .header("Cookie", format!("{SESSION_COOKIE}={fresh}"))
        .header("Origin", app.trim_end_matches('/'))
        .send_empty()
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    assert_eq!(location(&out), "/");
    assert_eq!(get(&agent_with_session(&fresh), &chats).0, 401);
    assert!(
        stream.ends_within(PATIENCE),
        "the ended session's stream goes on"
    );
    assert_eq!(
        get(&h.http, &chats).0,
        200,
        "the user's other session goes on"
    );

    // Expired sessions are over.
    let records = rusqlite::Connection::open(data.join("app.sqlite")).unwrap();
    records.busy_timeout(Duration::from_secs(10)).unwrap();
    records
        .execute("UPDATE sessions SET expires = 0", [])
        .unwrap();
    assert_eq!(get(&h.http, &chats).0, 401);
    assert_eq!(get(&adele, &chats).0, 401);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A sign-in begun at the app: its login cookie and the authorize URL it redirects to.
fn begin(app: &str, user: &str) -> (String, url::Url) {
    let login = raw_agent()
        .get(&format!("{app}auth/login?login_hint={user}"))
        .call()
        .unwrap();
    assert_eq!(login.status().as_u16(), 302);
    let authorize = url::Url::parse(&location(&login)).unwrap();
    let params: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    for name in ["state", "nonce", "code_challenge", "redirect_uri"] {
        assert!(
            param(name).is_some_and(|v| !v.is_empty()),
            "{name} in {authorize}"
        );
    }
    assert_eq!(param("login_hint").as_deref(), Some(user));
    (set_cookie(&login, "chat_login").unwrap(), authorize)
}

/// `url` with its query parameter `name` set to `value`.
fn with_param(url: &url::Url, name: &str, value: &str) -> url::Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .map(|(n, v)| {
            if n == name {
                (n, value.to_owned())
            } else {
                (n, v)
            }
        })
        .collect();
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(pairs);
    out
}

/// The callback the identity platform redirects to for `authorize`.
fn authorized(authorize: &url::Url) -> url::Url {
    let answer = raw_agent().get(authorize.as_str()).call().unwrap();
    assert_eq!(answer.status().as_u16(), 302, "{authorize}");
    url::Url::parse(&location(&answer)).unwrap()
}

/// The callback with `cookie` (the login cookie, if any): its status and whether it set a
/// session.
fn complete(callback: &url::Url, cookie: Option<&str>) -> (u16, bool) {
    let mut request = raw_agent().get(callback.as_str());
    if let Some(c) = cookie {
        request = request.header("Cookie", format!("chat_login={c}"));
    }
    let answer = request.call().unwrap();
    (
        answer.status().as_u16(),
        set_cookie(&answer, SESSION_COOKIE).is_some_and(|v| !v.is_empty()),
    )
}

#[test]
fn a_tampered_state_code_verifier_or_nonce_starts_no_session() {
    let h = Harness::start(Duration::from_secs(600));
    let app = h.url();
    let user = h.user();

    // A state that is not the sign-in's; the pending sign-in is used up by the attempt: the
    // right state no longer helps.
    let (cookie, authorize) = begin(&app, &user);
    let good = authorized(&authorize);
    let forged = with_param(&good, "state", "forged");
    assert_eq!(complete(&forged, Some(&cookie)), (400, false));
    assert_eq!(complete(&good, Some(&cookie)), (400, false), "used up");

    // Without the login cookie of the browser that began it, or with another: nothing.
    let (cookie, authorize) = begin(&app, &user);
    let good = authorized(&authorize);
    assert_eq!(complete(&good, None), (400, false), "no login cookie");
    assert_eq!(
        complete(&good, Some("forged")),
        (400, false),
        "another cookie"
    );

    // A code issued for another sign-in (its PKCE challenge): the verifier does not match.
    let (cookie_a, authorize_a) = begin(&app, &user);
    let (_cookie_b, authorize_b) = begin(&app, &user);
    let code_b = authorized(&authorize_b);
    let state_a = authorize_a
        .query_pairs()
        .find(|(n, _)| n == "state")
        .unwrap()
        .1
        .into_owned();
    let injected = with_param(&code_b, "state", &state_a);
    assert_eq!(complete(&injected, Some(&cookie_a)), (400, false));

    // A code whose id token carries another nonce.
    let (cookie_n, authorize_n) = begin(&app, &user);
    let other_nonce = with_param(&authorize_n, "nonce", "not-the-apps-nonce");
    assert_eq!(
        complete(&authorized(&other_nonce), Some(&cookie_n)),
        (400, false)
    );

    // An error from the platform is shown as its code, and starts nothing.
    let (cookie_e, _) = begin(&app, &user);
    let mut error = url::Url::parse(&format!("{app}auth/callback")).unwrap();
    error
        .query_pairs_mut()
        .append_pair("error", "access_denied<script>")
        .append_pair("state", "x");
    let mut answer = raw_agent()
        .get(error.as_str())
        .header("Cookie", format!("chat_login={cookie_e}"))
        .call()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let body = answer.body_mut().read_to_string().unwrap();
    assert!(
        body.contains("access_denied") && !body.contains('<'),
        "{body}"
    );

    // The untampered flow works, once: its code and its pending sign-in are used up.
    assert_eq!(complete(&good, Some(&cookie)), (302, true));
    assert_eq!(complete(&good, Some(&cookie)), (400, false), "replayed");
}

#[test]
fn sessions_survive_a_restart_and_people_are_resumed() {
    let mut h = Harness::start(Duration::from_secs(600));
    let chat = h.first_chat();
    let adele = agent_with_session(&sign_in_cookie(&h.url(), COLLEAGUE.0));
    assert_eq!(h.sim().subscription_ids().len(), 4, "two per person");
    h.stop_app();
    h.start_app();
    let app = h.url();
    assert_eq!(ids(&common::chats(&h.http, &app)), vec![chat.clone()]);
    assert!(ids(&common::chats(&adele, &app)).contains(&chat));
    // Their Graph sides run again: a colleague's message arrives live.
    let events = h.events(None, None);
    let id = h.says(&chat, "after the restart");
    events.until("the message after the restart", |e| {
        e.data["id"] == id.as_str()
    });
}

/// A simulator whose access tokens live `seconds`.
fn short_tokens(seconds: u64) -> graph_sim::Config {
    graph_sim::Config {
        token_lifetime: Duration::from_secs(seconds),
        ..common::sim_config()
    }
}

#[test]
fn across_several_token_lifetimes_notifications_arrive_and_sends_work() {
    const LIFETIME: u64 = 4;
    let h = Harness::start_with(Duration::from_secs(600), short_tokens(LIFETIME));
    let chat = h.first_chat();
    let app = h.url();
    let events = h.events(None, None);
    for round in 0..4 {
        // One token lifetime and a bit: every token the app held before has expired.
        std::thread::sleep(Duration::from_secs(LIFETIME) + Duration::from_millis(500));
        let id = h.says(&chat, &format!("round {round}"));
        events.until("the colleague's message, live", |e| {
            e.data["id"] == id.as_str()
        });
        let (status, item) = post(
            &h.http,
            &format!("{app}api/chats/{}/messages", common::encode(&chat)),
            &json!({"content": format!("reply {round}")}),
        );
        assert_eq!(status, 201, "round {round}: {item}");
    }
    assert_eq!(get(&h.http, &format!("{app}api/chats")).0, 200);
    // Each reauthorization was made with a fresh token, which Graph did not ask about again at
    // once: a few per subscription and lifetime, not a storm.
    let reauthorizations: u64 = h
        .sim()
        .usage()
        .calls
        .iter()
        .filter(|c| c.route.ends_with("/reauthorize"))
        .map(|c| c.count)
        .sum();
    assert!(reauthorizations >= 2, "the subscriptions were reauthorized");
    assert!(
        reauthorizations <= 2 * 2 * 6,
        "{reauthorizations} reauthorizations"
    );
}

#[test]
fn a_revoked_person_is_signed_out_and_graph_hears_no_more_for_them() {
    const LIFETIME: u64 = 4;
    let h = Harness::start_with(Duration::from_secs(1), short_tokens(LIFETIME));
    let chat = h.first_chat();
    let app = h.url();
    let me = h.user();
    let adele = agent_with_session(&sign_in_cookie(&app, COLLEAGUE.0));
    let revoke = agent()
        .post(&format!("{}_sim/users/{me}/revoke", h.sim().base_url()))
        .send_empty()
        .unwrap();
    assert!(revoke.status().is_success(), "{}", revoke.status());
    // Within a token lifetime and the app's watch: signed out.
    wait_for("the user signed out", || {
        (get(&h.http, &format!("{app}api/chats")).0 == 401).then_some(())
    });
    let (status, page) = text(&h.http, &app);
    assert_eq!(status, 200);
    assert!(page.contains("href=\"/auth/login\""), "{page}");
    assert!(h.app().person(&me).is_none());
    // Their cache is gone with them: nothing would keep it current any more.
    wait_for("the revoked person's cache removed", || {
        (!graph_chat_app::people::cache_file(&h.dir.path().join("data"), &me).exists())
            .then_some(())
    });
    // Adele goes on.
    assert_eq!(get(&adele, &format!("{app}api/chats")).0, 200);

    // No more Graph calls for the user: not the periodic resync (every second here), not a
    // notification's read, not a renewal.
    h.sim().reset_usage();
    h.says(&chat, "after the revocation");
    std::thread::sleep(Duration::from_secs(LIFETIME));
    let theirs: Vec<_> = h
        .sim()
        .usage()
        .calls
        .into_iter()
        .filter(|c| c.user.as_deref() == Some(me.as_str()))
        .collect();
    assert!(
        theirs.is_empty(),
        "Graph calls for a revoked person: {theirs:?}"
    );
    let adeles = h
        .sim()
        .usage()
        .calls
        .into_iter()
        .filter(|c| c.user.as_deref() == Some(COLLEAGUE.0))
        .count();
    assert!(adeles > 0, "the other person's Graph side runs");
    // Signing in again works.
    let again = agent_with_session(&sign_in_cookie(&app, &me));
    assert_eq!(get(&again, &format!("{app}api/chats")).0, 200);
}

#[test]
fn refresh_tokens_and_the_client_state_are_nowhere_in_clear_under_data() {
    const LIFETIME: u64 = 3;
    let h = Harness::start_with(Duration::from_secs(600), short_tokens(LIFETIME));
    let data = h.dir.path().join("data");
    // A few rotations of the refresh token.
    std::thread::sleep(Duration::from_secs(2 * LIFETIME + 1));
    assert_eq!(h.chat_ids().len(), 1, "the user's Graph side still reads");
    let client_state = common::client_state(&data);
    let mut files = Vec::new();
    let mut dirs = vec![data.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.iter().any(|f| f.ends_with("app.sqlite")), "{files:?}");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for secret in [
            "simrt.".as_bytes(),
            client_state.as_bytes(),
            h.session.as_bytes(),
        ] {
            assert!(
                !contains(&bytes, secret),
                "{} holds a secret in clear",
                file.display()
            );
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join(graph_chat_app::secrets::SEALING_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The refresh token is kept (sealed): a restart resumes the person without a sign-in.
    let records = rusqlite::Connection::open(data.join("app.sqlite")).unwrap();
    let sealed: Option<Vec<u8>> = records
        .query_row(
            "SELECT refresh FROM people WHERE user_id = ?1",
            [h.user()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sealed.is_some_and(|s| s.len() > 16));
}

#[test]
fn the_single_user_cache_of_an_earlier_version_is_removed_with_its_clear_client_state() {
    let mut h = Harness::start(Duration::from_secs(600));
    let data = h.dir.path().join("data");
    h.stop_app();
    let legacy = data.join(graph_chat_app::SINGLE_USER_CACHE);
    {
        let old = rusqlite::Connection::open(&legacy).unwrap();
        old.execute_batch(
            "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO settings VALUES ('clientState', 'legacy-client-state-in-clear');",
        )
        .unwrap();
    }
    assert!(legacy.exists());
    h.start_app();
    assert!(!legacy.exists());
    // The person signed in before goes on, from their own cache.
    assert_eq!(h.chat_ids().len(), 1);
}

#[test]
fn behind_an_https_public_url_cookies_are_secure_and_people_come_back_there() {
    let mut h = Harness::start(Duration::from_secs(600));
    h.stop_app();
    let mut config = h.config();
    config.public_url = Some("https://chat.example.com".into());
    h.app = Some(
        h.runtime
            .block_on(graph_chat_app::App::start(config))
            .unwrap(),
    );
    let login = raw_agent()
        .get(&format!("{}auth/login", h.url()))
        .call()
        .unwrap();
    assert_eq!(login.status().as_u16(), 302);
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("chat_login="))
        .unwrap();
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/auth"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let authorize = url::Url::parse(&location(&login)).unwrap();
    let redirect = authorize
        .query_pairs()
        .find(|(n, _)| n == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(redirect, "https://chat.example.com/auth/callback");
    // The session of before the restart goes on.
    assert_eq!(h.chat_ids().len(), 1);
}

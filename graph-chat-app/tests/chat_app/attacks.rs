//! What a stranger on the internet, or a signed-in person reaching for another's data, tries
//! against the app's sign-in (`docs/contracts.md#the-chat-app`), on loopback and bounded in
//! count.

use crate::common;

use std::time::Duration;

use crate::common::{
    agent, agent_with_session, get, location, post, raw_agent, set_cookie, sign_in_cookie, Harness,
    SESSION_COOKIE,
};
use serde_json::json;

/// A sign-in begun at the app as `user`: its login cookie and the authorize URL it redirects to.
fn begin(app: &str, user: &str) -> (String, String) {
    let login = raw_agent()
        .get(&format!("{app}auth/login?login_hint={user}"))
        .call()
        .unwrap();
    assert_eq!(login.status().as_u16(), 302);
    (
        set_cookie(&login, "chat_login").expect("a login cookie"),
        location(&login),
    )
}

/// The identity platform's answer to `authorize` (`login_hint` signs in at once), then the
/// app's callback with the login cookie: its status and whether it started a session.
fn finish(authorize: &str, cookie: &str) -> (u16, bool) {
    let raw = raw_agent();
    let answer = raw.get(authorize).call().unwrap();
    assert_eq!(answer.status().as_u16(), 302, "{authorize}");
    let callback = raw
        .get(&location(&answer))
        .header("Cookie", format!("chat_login={cookie}"))
        .call()
        .unwrap();
    (
        callback.status().as_u16(),
        set_cookie(&callback, SESSION_COOKIE).is_some_and(|v| !v.is_empty()),
    )
}

/// A stranger who asks for sign-ins faster than people complete theirs (no sign-in of their
/// own ever finishes) must not push a person's sign-in out: the person, back from the
/// identity platform, is signed in.
#[test]
fn a_flood_of_sign_ins_begun_does_not_lose_a_persons_sign_in() {
    let h = Harness::start(Duration::from_secs(600));
    let app = h.url();
    let (cookie, authorize) = begin(&app, &h.user());

    // More sign-ins begun than the app would keep pending, none completed: bounded in count,
    // on one kept-alive loopback connection.
    let stranger = raw_agent();
    for _ in 0..4200 {
        let answer = stranger.get(&format!("{app}auth/login")).call().unwrap();
        assert_eq!(answer.status().as_u16(), 302);
    }

    assert_eq!(finish(&authorize, &cookie), (302, true));
}

/// A person whose refresh token was revoked (their account reset by an administrator, say) and
/// who signs in again at once, before the app has noticed, stays signed in: the app takes the
/// new sign-in's tokens rather than going on with the revoked refresh token, also after a
/// restart.
#[test]
fn a_person_who_signs_in_again_after_a_revocation_stays_signed_in() {
    // Long enough that the app has not yet refreshed (nor noticed the revocation) when the
    // person signs in again, right after.
    const LIFETIME: u64 = 10;
    let config = graph_sim::Config {
        token_lifetime: Duration::from_secs(LIFETIME),
        ..common::sim_config()
    };
    let mut h = Harness::start_with(Duration::from_secs(600), config);
    let chat = h.first_chat();
    let me = h.user();
    let revoke = agent()
        .post(&format!("{}_sim/users/{me}/revoke", h.sim().base_url()))
        .send_empty()
        .unwrap();
    assert!(revoke.status().is_success(), "{}", revoke.status());
    let again = agent_with_session(&sign_in_cookie(&h.url(), &me));
    assert_eq!(get(&again, &format!("{}api/chats", h.url())).0, 200);

    // Every token the app held before the new sign-in has expired, and the app's token watch
    // has looked since: the revoked refresh token would have been tried and refused by now.
    std::thread::sleep(Duration::from_secs(LIFETIME + 6));
    let app = h.url();
    assert_eq!(get(&again, &format!("{app}api/chats")).0, 200);
    let (status, item) = post(
        &again,
        &format!("{app}api/chats/{}/messages", common::encode(&chat)),
        &json!({"content": "still here"}),
    );
    assert_eq!(status, 201, "{item}");

    // The new refresh token is the one kept: after a restart the person is resumed with it.
    h.stop_app();
    h.start_app();
    assert_eq!(get(&again, &format!("{}api/chats", h.url())).0, 200);
}

/// An event stream whose session cookie comes in a second `Cookie` header (as HTTP/2 sends
/// cookies, and proxies may pass them on) goes on like one opened with a single header: it was
/// let in, so its session checks must read the same cookies.
#[test]
fn an_event_stream_with_its_cookie_in_a_second_header_stays_open() {
    use std::io::{BufRead, BufReader, Write};

    let h = Harness::start(Duration::from_secs(600));
    let chat = h.first_chat();
    let app = url::Url::parse(&h.url()).unwrap();
    let host = format!("{}:{}", app.host_str().unwrap(), app.port().unwrap());
    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    stream.set_read_timeout(Some(common::PATIENCE)).unwrap();
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\
         Cookie: theme=dark\r\nCookie: {SESSION_COOKIE}={}\r\n\r\n",
        h.session
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // Past the stream's first session check, which comes at once.
    std::thread::sleep(Duration::from_millis(500));
    let id = h.says(&chat, "to a stream with two cookie headers");
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line).unwrap();
        assert!(read > 0, "the stream ended before the message");
        if line.contains(&id) {
            break;
        }
    }
}

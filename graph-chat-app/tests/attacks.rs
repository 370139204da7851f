//! What a stranger on the internet, or a signed-in person reaching for another's data, tries
//! against the app's sign-in (`docs/contracts.md#the-chat-app`), on loopback and bounded in
//! count.

mod common;

use std::time::Duration;

use common::{location, raw_agent, set_cookie, Harness, SESSION_COOKIE};

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

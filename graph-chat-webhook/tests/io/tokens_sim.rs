//! Tokens end to end against graph-sim's identity platform: a sign-in with PKCE and a nonce,
//! Graph calls as that person with rotating refresh tokens, and the person's revocation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use graph_chat_webhook::notifications::outbound::list_subscriptions;
use graph_chat_webhook::tokens::{Authority, OAuthClient, PersonTokens, TokenError};
use graph_chat_webhook::{ClientError, GraphClient};

const REDIRECT: &str = "http://127.0.0.1:9/auth/callback";

#[test]
fn a_person_signs_in_calls_graph_with_refreshed_tokens_and_is_revoked() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = runtime
        .block_on(graph_sim::Simulator::start(graph_sim::Config::default()))
        .unwrap();
    let base = sim.base_url();
    let id = sim.identity();
    let oauth = Arc::new(
        OAuthClient::new(
            Authority::new(&base, &id.tenant_id).unwrap(),
            &id.app_id,
            None,
            Some(REDIRECT),
        )
        .unwrap(),
    );

    // The browser's part: the authorize endpoint redirects to the callback with a code.
    let sign_in = oauth.begin_sign_in(
        &["openid", "profile", "offline_access", "Chat.ReadWrite"],
        Some(&id.user_id),
    );
    let browser: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let answer = browser.get(&sign_in.url).call().unwrap();
    assert_eq!(answer.status().as_u16(), 302);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    let callback = oauth2::url::Url::parse(&location).unwrap();
    let param = |name: &str| {
        callback
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    assert_eq!(param("state"), *sign_in.state);

    let set = oauth
        .redeem_code(&param("code"), &sign_in.pkce_verifier)
        .unwrap();
    let who = set.id_claims.clone().unwrap();
    who.check_nonce(&sign_in.nonce).unwrap();
    assert_eq!(who.oid, id.user_id);

    // Calls as that person, refreshing at each one (a margin longer than the lifetime).
    let rotated = Arc::new(Mutex::new(Vec::new()));
    let sink = rotated.clone();
    let person = Arc::new(
        PersonTokens::new(oauth.clone(), set)
            .with_margin(Duration::from_secs(7200))
            .on_rotate(move |rt| sink.lock().unwrap().push(rt.secret().to_owned())),
    );
    let graph = GraphClient::with_token_source(&base, person.clone());
    for _ in 0..2 {
        assert_eq!(graph.send(&list_subscriptions()).unwrap().status, 200);
    }
    {
        let rotated = rotated.lock().unwrap();
        assert_eq!(rotated.len(), 2);
        assert!(rotated.iter().all(|rt| rt.starts_with("simrt.")));
        assert_ne!(rotated[0], rotated[1]);
    }

    // Revoked: the next refresh is refused, and the person is signed out for good.
    sim.revoke_user(&id.user_id).unwrap();
    let err = graph.send(&list_subscriptions()).unwrap_err();
    assert!(
        matches!(err, ClientError::Token(TokenError::InvalidGrant)),
        "{err:?}"
    );
    assert!(person.is_revoked());
}

//! The simulator as the identity platform of its tenant: the authorization code flow with PKCE,
//! refresh tokens renewed at each use (the used one not spent) and revoked, client credentials, access tokens checked on
//! every call to Graph's API (401), a delegated token acting for its own user only (403), the
//! people picker's `/users?$search`, and delegated subscriptions that need reauthorization before
//! their creator's token expires and hold their deliveries past it.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::common::{items, receiver, Hook, Mode, Reply};
use axum::body::Bytes;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine as _;
use graph_chat_notifications::model::ChangeType::Created;
use graph_chat_notifications::outbound::{
    add_chat_member, mark_chat_read_for_user, ChatMember, CreateChat, HttpRequest, Resource,
    Subscription, SubscriptionRequest,
};
use graph_sim::{Config, Simulator};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-some-more-entropy";
const REDIRECT: &str = "http://127.0.0.1:8080/auth/callback";

fn challenge(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

async fn checked_sim(config: Config) -> Simulator {
    Simulator::start(Config {
        retry_base: Duration::from_millis(100),
        ..config
    })
    .await
    .expect("the simulator starts")
}

/// One HTTP request with the given headers and body.
async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut builder = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(builder.body(Full::new(Bytes::from(body.to_vec()))).unwrap())
        .await
        .expect("the simulator answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// A GET with a bearer token (or none).
async fn get(url: &str, token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    request("GET", url, &headers, b"").await
}

/// One of the crate's request values, sent with `token`.
async fn send_as(sim: &Simulator, request_value: HttpRequest, token: &str) -> Reply {
    let r = request_value.with_base(&sim.base_url());
    let auth = format!("Bearer {token}");
    let mut headers: Vec<(&str, &str)> = vec![("Authorization", auth.as_str())];
    for (k, v) in &r.headers {
        headers.push((k, v));
    }
    request(
        r.method.as_str(),
        &r.url,
        &headers,
        r.body.as_deref().unwrap_or_default(),
    )
    .await
}

/// `GET /{tenant}/oauth2/v2.0/authorize` with these parameters (added to the good ones; an
/// empty value leaves one out).
async fn authorize(sim: &Simulator, extra: &[(&str, &str)]) -> Reply {
    let id = sim.identity();
    let challenge = challenge(VERIFIER);
    let mut pairs: Vec<(&str, &str)> = vec![
        ("client_id", id.app_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile offline_access Chat.ReadWrite"),
        ("state", "xyz-state"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        pairs.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    get(
        &format!(
            "{}{}/oauth2/v2.0/authorize?{query}",
            sim.base_url(),
            id.tenant_id
        ),
        None,
    )
    .await
}

/// The `code` of a 302 to the redirect URI, checking `state` came back.
fn code_of(reply: &Reply) -> String {
    assert_eq!(
        reply.status,
        302,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let location = reply.headers["location"].to_str().unwrap();
    let (target, query) = location.split_once('?').expect("a query");
    assert_eq!(target, REDIRECT);
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("state").as_deref(), Some("xyz-state"));
    get("code").expect("a code")
}

/// `POST /{tenant}/oauth2/v2.0/token` with a form.
async fn token(sim: &Simulator, form: &[(&str, &str)]) -> Reply {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    request(
        "POST",
        &format!(
            "{}{}/oauth2/v2.0/token",
            sim.base_url(),
            sim.identity().tenant_id
        ),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .await
}

async fn redeem(sim: &Simulator, code: &str, verifier: &str) -> Reply {
    let app = sim.identity().app_id;
    token(
        sim,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &app),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// A JWT's claims, unchecked.
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64URL.decode(payload).unwrap()).unwrap()
}

fn oauth_error(reply: &Reply) -> String {
    reply.json()["error"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn the_code_flow_with_pkce_signs_a_user_in_once_per_code() {
    let sim = checked_sim(Config::default()).await;
    let adele = sim.users()[1].clone();
    assert_eq!(adele.display_name, "Adele Vance");

    // login_hint by principal name: a 302 at once, with a code and the state.
    let code = code_of(&authorize(&sim, &[("login_hint", &adele.user_principal_name)]).await);
    let reply = redeem(&sim, &code, VERIFIER).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let v = reply.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(v["ext_expires_in"], 3600);
    assert!(v["scope"].as_str().unwrap().contains("Chat.ReadWrite"));
    let refresh = v["refresh_token"].as_str().unwrap();
    assert!(refresh.starts_with("simrt."), "{refresh}");

    let access = v["access_token"].as_str().unwrap();
    let c = claims(access);
    let id = sim.identity();
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(
        c["iss"],
        format!("https://sts.windows.net/{}/", id.tenant_id)
    );
    assert_eq!(c["tid"], id.tenant_id.as_str());
    assert_eq!(c["oid"], adele.id.as_str());
    assert_eq!(c["upn"], adele.user_principal_name.as_str());
    assert_eq!(c["name"], "Adele Vance");
    assert_eq!(c["appid"], id.app_id.as_str());
    assert_eq!(c["scp"], "Chat.ReadWrite");
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );
    // Signed with a key of the JWKS.
    let header: Value =
        serde_json::from_slice(&B64URL.decode(access.split('.').next().unwrap()).unwrap()).unwrap();
    let jwks: Value = serde_json::from_slice(&sim.jwks()).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert!(jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kid"] == header["kid"]));

    let idt = claims(v["id_token"].as_str().unwrap());
    assert_eq!(idt["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(idt["aud"], id.app_id.as_str());
    assert_eq!(idt["oid"], adele.id.as_str());
    assert_eq!(
        idt["preferred_username"],
        adele.user_principal_name.as_str()
    );
    assert_eq!(idt["tid"], id.tenant_id.as_str());

    // The token acts as Adele.
    let me = get(&format!("{}v1.0/me", sim.base_url()), Some(access)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["id"], adele.id.as_str());
    assert_eq!(me.json()["displayName"], "Adele Vance");

    // The OpenID configuration names both endpoints.
    let config = get(
        &format!(
            "{}{}/v2.0/.well-known/openid-configuration",
            sim.base_url(),
            id.tenant_id
        ),
        None,
    )
    .await
    .json();
    assert_eq!(
        config["authorization_endpoint"],
        format!("{}{}/oauth2/v2.0/authorize", sim.base_url(), id.tenant_id)
    );
    assert_eq!(
        config["token_endpoint"],
        format!("{}{}/oauth2/v2.0/token", sim.base_url(), id.tenant_id)
    );

    // A code is good once.
    let again = redeem(&sim, &code, VERIFIER).await;
    assert_eq!(again.status, 400);
    assert_eq!(oauth_error(&again), "invalid_grant");
    assert!(again.json()["error_description"].is_string());
}

#[tokio::test]
async fn a_wrong_verifier_plain_pkce_and_foreign_redirects_are_refused() {
    let sim = checked_sim(Config {
        redirect_uris: vec!["https://chat.example.com/auth/callback".into()],
        ..Config::default()
    })
    .await;
    let me = sim.identity().user_id;

    let code = code_of(&authorize(&sim, &[("login_hint", &me)]).await);
    let wrong = redeem(
        &sim,
        &code,
        "another-verifier-of-enough-length-to-be-a-verifier",
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(oauth_error(&wrong), "invalid_grant");

    for (why, extra) in [
        ("plain PKCE", vec![("code_challenge_method", "plain")]),
        (
            "no PKCE",
            vec![("code_challenge", ""), ("code_challenge_method", "")],
        ),
        (
            "a redirect that is not loopback http",
            vec![("redirect_uri", "https://evil.example.com/cb")],
        ),
        (
            "loopback over https",
            vec![("redirect_uri", "https://127.0.0.1:8080/cb")],
        ),
        ("another client", vec![("client_id", "someone-else")]),
    ] {
        let mut extra = extra;
        extra.push(("login_hint", &me));
        let reply = authorize(&sim, &extra).await;
        assert_eq!(reply.status, 400, "{why}");
        assert!(!oauth_error(&reply).is_empty(), "{why}");
        assert!(reply.json()["error_description"].is_string(), "{why}");
    }

    // A redirect URI given to the simulator is accepted.
    let reply = authorize(
        &sim,
        &[
            ("login_hint", &me),
            ("redirect_uri", "https://chat.example.com/auth/callback"),
        ],
    )
    .await;
    assert_eq!(reply.status, 302);
    assert!(reply.headers["location"]
        .to_str()
        .unwrap()
        .starts_with("https://chat.example.com/auth/callback?code="));
}

#[tokio::test]
async fn without_a_login_hint_a_page_lists_the_users_each_a_sign_in() {
    let sim = checked_sim(Config::default()).await;
    let users = sim.users();
    assert!(users.len() >= 3);
    assert_eq!(users[0].id, sim.identity().user_id);

    let page = authorize(&sim, &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(html.contains("<html lang=\"en\">"));
    for u in &users {
        assert!(html.contains(&u.display_name), "{html}");
    }
    // Follow the second user's link: a 302 with a code that signs in as that user.
    let link = html
        .split("href=\"")
        .nth(2)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let reply = get(&format!("{}{}", sim.base_url(), &link[1..]), None).await;
    let code = code_of(&reply);
    let v = redeem(&sim, &code, VERIFIER).await.json();
    assert_eq!(
        claims(v["access_token"].as_str().unwrap())["oid"],
        users[1].id.as_str()
    );

    // The same list under /_sim/users.
    let listed = common::call("GET", &format!("{}_sim/users", sim.base_url()), None, false).await;
    let value = listed.json()["value"].as_array().unwrap().clone();
    assert_eq!(value.len(), users.len());
    assert_eq!(value[0]["id"], users[0].id.as_str());
    assert!(value[0]["displayName"].is_string());
    assert!(value[0]["userPrincipalName"].is_string());
}

#[tokio::test]
async fn refresh_tokens_are_renewed_not_spent_and_a_revoked_users_are_refused() {
    let sim = checked_sim(Config::default()).await;
    let me = sim.identity().user_id;
    let app = sim.identity().app_id;
    let code = code_of(&authorize(&sim, &[("login_hint", &me)]).await);
    let first = redeem(&sim, &code, VERIFIER).await.json();
    let r1 = first["refresh_token"].as_str().unwrap().to_string();

    let refresh = |rt: String| {
        let sim = &sim;
        let app = app.clone();
        async move {
            token(
                sim,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", &app),
                    ("refresh_token", &rt),
                ],
            )
            .await
        }
    };
    let second = refresh(r1.clone()).await;
    assert_eq!(
        second.status,
        200,
        "{}",
        String::from_utf8_lossy(&second.body)
    );
    let r2 = second.json()["refresh_token"].as_str().unwrap().to_string();
    assert!(r2.starts_with("simrt."));
    assert_ne!(r1, r2, "each use answers a new refresh token");
    assert_eq!(
        claims(second.json()["access_token"].as_str().unwrap())["oid"],
        me.as_str()
    );
    // As on the identity platform, redeeming does not revoke the one used: a second copy of an
    // app holding the same stored token still refreshes with it (and gets its own new one).
    let reused = refresh(r1.clone()).await;
    assert_eq!(
        reused.status,
        200,
        "{}",
        String::from_utf8_lossy(&reused.body)
    );
    let r3 = reused.json()["refresh_token"].as_str().unwrap().to_string();
    assert!(r3 != r1 && r3 != r2);
    assert_eq!(
        claims(reused.json()["access_token"].as_str().unwrap())["oid"],
        me.as_str()
    );

    // Revoked: the user's refresh tokens answer invalid_grant; the access token stays valid.
    let access = second.json()["access_token"].as_str().unwrap().to_string();
    let revoked = common::call(
        "POST",
        &format!("{}_sim/users/{me}/revoke", sim.base_url()),
        None,
        false,
    )
    .await;
    assert_eq!(revoked.status, 204);
    // Every one of them ends: the first, the ones it gave, used or not.
    for rt in [r1, r2, r3] {
        let refused = refresh(rt).await;
        assert_eq!(refused.status, 400);
        assert_eq!(oauth_error(&refused), "invalid_grant");
    }
    assert_eq!(
        get(&format!("{}v1.0/me", sim.base_url()), Some(&access))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn client_credentials_give_an_app_token_with_roles_and_no_refresh_token() {
    let sim = checked_sim(Config::default()).await;
    let id = sim.identity();
    let reply = token(
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id.app_id),
            ("client_secret", "a-secret"),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let v = reply.json();
    assert!(v.get("refresh_token").is_none());
    let access = v["access_token"].as_str().unwrap();
    let c = claims(access);
    assert!(c["roles"].as_array().is_some_and(|r| !r.is_empty()));
    assert!(c.get("scp").is_none());
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    // An app token reads any user's chats.
    let chats = get(
        &format!("{}v1.0/users/{}/chats", sim.base_url(), id.user_id),
        Some(access),
    )
    .await;
    assert_eq!(
        chats.status,
        200,
        "{}",
        String::from_utf8_lossy(&chats.body)
    );
}

#[tokio::test]
async fn missing_forged_wrongly_addressed_and_expired_bearers_are_401() {
    let path = std::env::temp_dir().join(format!("graph-sim-identity-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let sim = checked_sim(Config {
        state_path: Some(path.clone()),
        token_lifetime: Duration::from_secs(2),
        ..Config::default()
    })
    .await;
    let me_url = format!("{}v1.0/me", sim.base_url());
    let good = sim.token_for(&sim.identity().user_id).unwrap();
    assert_eq!(get(&me_url, Some(&good)).await.status, 200);

    let invalid = |r: &Reply| {
        assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.error_code(), "InvalidAuthenticationToken");
    };
    invalid(&get(&me_url, None).await);
    invalid(&get(&me_url, Some("any-token")).await);
    // Forged: another user's oid under the same signature.
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let mut c = claims(&good);
    c["oid"] = sim.users()[1].id.clone().into();
    parts[1] = B64URL.encode(serde_json::to_vec(&c).unwrap());
    invalid(&get(&me_url, Some(&parts.join("."))).await);

    // Another audience, signed with the simulator's own key (read from its state file).
    let state: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let der = B64.decode(state["signingKey"].as_str().unwrap()).unwrap();
    let key = graph_chat_notifications::crypto::PrivateKey::from_pkcs8_der(&der).unwrap();
    let id = sim.identity();
    let signer = graph_chat_notifications::testing::GraphSimulator::with_signing_key(
        &key,
        "graph-sim",
        &id.app_id,
        &id.tenant_id,
    );
    let mut other = claims(&good);
    other["aud"] = "api://someone-else".into();
    let wrong_aud = signer.sign(&signer.header(), &other);
    invalid(&get(&me_url, Some(&wrong_aud)).await);
    // The same key and claims for Graph pass: the check is the audience.
    other["aud"] = "https://graph.microsoft.com".into();
    let _ = signer.sign(&signer.header(), &other);

    // Expired: the 2 s token is refused once its time is up.
    let started = Instant::now();
    loop {
        let r = get(&me_url, Some(&good)).await;
        if r.status == 401 {
            invalid(&r);
            assert!(
                r.message().to_lowercase().contains("expired"),
                "{}",
                r.message()
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(sim);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_delegated_token_acts_for_its_own_user_only() {
    let sim = checked_sim(Config::default()).await;
    let users = sim.users();
    let (megan, adele, alex) = (&users[0], &users[1], &users[2]);
    let megan_token = sim.token_for(&megan.id).unwrap();
    let adele_token = sim.token_for(&adele.user_principal_name).unwrap();

    // Megan and Alex's chat, which Adele is not in.
    let created = send_as(
        &sim,
        CreateChat::one_on_one(
            ChatMember::owner(megan.id.clone()),
            ChatMember::owner(alex.id.clone()),
        )
        .build()
        .unwrap(),
        &megan_token,
    )
    .await;
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let chat = created.json()["id"].as_str().unwrap().to_string();
    let base = sim.base_url();

    let theirs = get(&format!("{base}v1.0/chats/{chat}"), Some(&megan_token)).await;
    assert_eq!(theirs.status, 200);
    let forbidden = get(
        &format!("{base}v1.0/chats/{chat}/messages"),
        Some(&adele_token),
    )
    .await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.error_code(), "Forbidden");
    let other_user = get(
        &format!("{base}v1.0/users/{}/chats", megan.id),
        Some(&adele_token),
    )
    .await;
    assert_eq!(other_user.status, 403);
    assert_eq!(other_user.error_code(), "Forbidden");
    // Her own chats: not theirs.
    let mine = get(&format!("{base}v1.0/me/chats"), Some(&adele_token)).await;
    assert_eq!(mine.status, 200);
    assert!(!mine.json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == chat.as_str()));
    let megans = get(
        &format!("{base}v1.0/users/{}/chats", megan.id),
        Some(&megan_token),
    )
    .await;
    assert!(megans.json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == chat.as_str()));

    // Adele and Megan's chat: Adele may mark it read for herself, not for Megan.
    let shared = send_as(
        &sim,
        CreateChat::one_on_one(
            ChatMember::owner(megan.id.clone()),
            ChatMember::owner(adele.id.clone()),
        )
        .build()
        .unwrap(),
        &megan_token,
    )
    .await;
    let shared = shared.json()["id"].as_str().unwrap().to_string();
    let tenant = sim.identity().tenant_id;
    let for_her = send_as(
        &sim,
        mark_chat_read_for_user(&shared, &adele.id, &tenant).unwrap(),
        &adele_token,
    )
    .await;
    assert_eq!(
        for_her.status,
        204,
        "{}",
        String::from_utf8_lossy(&for_her.body)
    );
    let for_megan = send_as(
        &sim,
        mark_chat_read_for_user(&shared, &megan.id, &tenant).unwrap(),
        &adele_token,
    )
    .await;
    assert_eq!(for_megan.status, 403);

    // Nor may she subscribe to Megan's chats, or to a chat she is not in.
    let hook = Hook::start(Mode::Good, Some(Arc::new(receiver(&sim)))).await;
    for resource in [
        Resource::user_chat_messages(&megan.id),
        Resource::chat_messages(&chat),
    ] {
        let request_value = SubscriptionRequest::builder(resource, &hook.url)
            .allow_loopback_http()
            .change_types([Created])
            .expires_in(SystemTime::now(), Duration::from_secs(30 * 60))
            .build()
            .unwrap();
        let reply = send_as(&sim, request_value, &adele_token).await;
        assert_eq!(
            reply.status,
            403,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    assert_eq!(hook.handshakes(), 0);

    // The usage counts name the token's user.
    let usage = sim.usage();
    assert!(usage
        .calls
        .iter()
        .any(|c| c.user.as_deref() == Some(adele.id.as_str())));
}

#[tokio::test]
async fn the_people_picker_searches_users_with_eventual_consistency() {
    let sim = checked_sim(Config::default()).await;
    let token = sim.token_for(&sim.identity().user_id).unwrap();
    let auth = format!("Bearer {token}");
    let url = format!(
        "{}v1.0/users?$search=%22displayName:ad%22&$select=id,displayName",
        sim.base_url()
    );
    let without = request("GET", &url, &[("Authorization", &auth)], b"").await;
    assert_eq!(without.status, 400);
    let with = request(
        "GET",
        &url,
        &[("Authorization", &auth), ("ConsistencyLevel", "eventual")],
        b"",
    )
    .await;
    assert_eq!(with.status, 200, "{}", String::from_utf8_lossy(&with.body));
    let names: Vec<String> = with.json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["displayName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["Adele Vance"]);

    let adele = &sim.users()[1];
    let one = get(
        &format!("{}v1.0/users/{}", sim.base_url(), adele.id),
        Some(&token),
    )
    .await;
    assert_eq!(one.status, 200);
    assert_eq!(
        one.json()["userPrincipalName"],
        adele.user_principal_name.as_str()
    );
    let none = get(
        &format!(
            "{}v1.0/users/00000000-0000-0000-0000-000000000000",
            sim.base_url()
        ),
        Some(&token),
    )
    .await;
    assert_eq!(none.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegated_subscription_asks_for_reauthorization_then_holds_deliveries_until_it_comes() {
    let sim = checked_sim(Config {
        token_lifetime: Duration::from_secs(3),
        ..Config::default()
    })
    .await;
    let users = sim.users();
    let (megan, adele) = (&users[0], &users[1]);
    let rx = Arc::new(receiver(&sim));
    let hook = Hook::start(Mode::Good, Some(rx)).await;
    let token = sim.token_for(&megan.id).unwrap();
    let created = send_as(
        &sim,
        CreateChat::one_on_one(
            ChatMember::owner(megan.id.clone()),
            ChatMember::owner(adele.id.clone()),
        )
        .build()
        .unwrap(),
        &token,
    )
    .await;
    let chat = created.json()["id"].as_str().unwrap().to_string();
    let request_value = SubscriptionRequest::builder(Resource::chat_messages(&chat), &hook.url)
        .allow_loopback_http()
        .change_types([Created])
        .lifecycle_url(&hook.url)
        .expires_in(SystemTime::now(), Duration::from_secs(50 * 60))
        .build()
        .unwrap();
    let reply = send_as(&sim, request_value, &token).await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let sub = Subscription::from_json(&reply.body).unwrap();

    // reauthorizationRequired before the token expires.
    let got = hook.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1);
    let item = &items(&got[0].body)[0];
    assert_eq!(item["lifecycleEvent"], "reauthorizationRequired");
    assert_eq!(item["subscriptionId"], sub.id.as_str());

    // Past the token's expiry (seen from outside: the token is refused), a change is held.
    let me_url = format!("{}v1.0/me", sim.base_url());
    let started = Instant::now();
    while get(&me_url, Some(&token)).await.status != 401 {
        assert!(started.elapsed() < Duration::from_secs(20), "never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An app's subscription to every chat's messages (an app token: nothing to reauthorize)
    // shows when the change went out: the held one has not.
    let app_hook = Hook::start(Mode::Good, Some(Arc::new(receiver(&sim)))).await;
    let app_sub = SubscriptionRequest::builder(Resource::all_chat_messages(), &app_hook.url)
        .allow_loopback_http()
        .change_types([Created])
        .expires_in(SystemTime::now(), Duration::from_secs(30 * 60))
        .build()
        .unwrap();
    let reply = send_as(&sim, app_sub, &sim.app_token()).await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    sim.colleague_writes(
        &chat,
        graph_sim::Sender {
            id: adele.id.clone(),
            display_name: adele.display_name.clone(),
        },
        "held until reauthorized",
        "text",
    )
    .unwrap();
    assert_eq!(app_hook.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    common::settle(&sim, Duration::from_millis(500)).await;
    let d = sim.deliveries();
    assert_eq!(d.pending, 1, "the held one: {d:?}");
    assert!(
        hook.got()
            .iter()
            .flat_map(|g| items(&g.body))
            .all(|i| i["changeType"] != "created"),
        "nothing sent while held"
    );

    // Reauthorized with a fresh token of the same user: the held notification flows.
    let fresh = sim.token_for(&megan.id).unwrap();
    let reauth = request(
        "POST",
        &format!(
            "{}v1.0/subscriptions/{}/reauthorize",
            sim.base_url(),
            sub.id
        ),
        &[("Authorization", &format!("Bearer {fresh}"))],
        b"",
    )
    .await;
    assert_eq!(
        reauth.status,
        200,
        "{}",
        String::from_utf8_lossy(&reauth.body)
    );
    let started = Instant::now();
    let changes = loop {
        let changes: Vec<Value> = hook
            .got()
            .iter()
            .flat_map(|g| items(&g.body))
            .filter(|i| i["changeType"] == "created")
            .collect();
        if !changes.is_empty() || started.elapsed() > Duration::from_secs(10) {
            break changes;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["subscriptionId"], sub.id.as_str());

    // Past the fresh token's expiry it is held again; a renewal (PATCH) with another user's
    // token is refused, one with a fresh token of Megan's lets the next change flow.
    let started = Instant::now();
    while get(&me_url, Some(&fresh)).await.status != 401 {
        assert!(started.elapsed() < Duration::from_secs(20), "never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sim.colleague_writes(
        &chat,
        graph_sim::Sender {
            id: adele.id.clone(),
            display_name: adele.display_name.clone(),
        },
        "held until renewed",
        "text",
    )
    .unwrap();
    assert_eq!(app_hook.wait_for(2, Duration::from_secs(10)).await.len(), 2);
    common::settle(&sim, Duration::from_millis(300)).await;
    assert_eq!(sim.deliveries().pending, 1);
    let renewal = format!(
        r#"{{"expirationDateTime": "{}"}}"#,
        graph_chat_notifications::outbound::format_time(
            SystemTime::now() + Duration::from_secs(40 * 60)
        )
        .unwrap()
    );
    let url = format!("{}v1.0/subscriptions/{}", sim.base_url(), sub.id);
    let patch = |token: String| {
        let (url, renewal) = (url.clone(), renewal.clone());
        async move {
            request(
                "PATCH",
                &url,
                &[
                    ("Authorization", &format!("Bearer {token}")),
                    ("Content-Type", "application/json"),
                ],
                renewal.as_bytes(),
            )
            .await
        }
    };
    let by_adele = patch(sim.token_for(&adele.id).unwrap()).await;
    assert_eq!(by_adele.status, 403);
    let renewed = patch(sim.token_for(&megan.id).unwrap()).await;
    assert_eq!(
        renewed.status,
        200,
        "{}",
        String::from_utf8_lossy(&renewed.body)
    );
    let started = Instant::now();
    loop {
        let created = hook
            .got()
            .iter()
            .flat_map(|g| items(&g.body))
            .filter(|i| i["changeType"] == "created")
            .count();
        if created == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not delivered after renewal"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_survive_a_restart_on_the_same_state_file_as_hashes_only() {
    let path = std::env::temp_dir().join(format!(
        "graph-sim-identity-restart-{}.json",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let config = Config {
        state_path: Some(path.clone()),
        ..Config::default()
    };
    let first = checked_sim(config.clone()).await;
    let me = first.identity().user_id;
    let code = code_of(&authorize(&first, &[("login_hint", &me)]).await);
    let reply = redeem(&first, &code, VERIFIER).await.json();
    let refresh_token = reply["refresh_token"].as_str().unwrap().to_string();
    first.shutdown().await;
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(
        !saved.contains("simrt."),
        "refresh tokens are kept as hashes"
    );

    let second = checked_sim(config).await;
    let app = second.identity().app_id;
    let refreshed = token(
        &second,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &app),
            ("refresh_token", &refresh_token),
        ],
    )
    .await;
    assert_eq!(
        refreshed.status,
        200,
        "{}",
        String::from_utf8_lossy(&refreshed.body)
    );
    // An access token issued before the restart still passes (the same signing key).
    let access = reply["access_token"].as_str().unwrap();
    assert_eq!(
        get(&format!("{}v1.0/me", second.base_url()), Some(access))
            .await
            .status,
        200
    );
    second.shutdown().await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_member_added_to_a_group_chat_sees_it_and_the_chat_says_who_added_whom() {
    let sim = checked_sim(Config::default()).await;
    let users = sim.users();
    let (megan, adele, alex) = (&users[0], &users[1], &users[2]);
    let megan_token = sim.token_for(&megan.id).unwrap();
    let alex_token = sim.token_for(&alex.id).unwrap();
    let base = sim.base_url();
    let created = send_as(
        &sim,
        CreateChat::group([
            ChatMember::owner(megan.id.clone()),
            ChatMember::owner(adele.id.clone()),
        ])
        .topic("Planning")
        .build()
        .unwrap(),
        &megan_token,
    )
    .await;
    assert_eq!(created.status, 201);
    let chat = created.json()["id"].as_str().unwrap().to_string();
    let not_yet = get(&format!("{base}v1.0/chats/{chat}"), Some(&alex_token)).await;
    assert_eq!(not_yet.status, 403);

    let added = send_as(
        &sim,
        add_chat_member(&chat, &ChatMember::owner(alex.id.clone()), None).unwrap(),
        &megan_token,
    )
    .await;
    assert_eq!(
        added.status,
        201,
        "{}",
        String::from_utf8_lossy(&added.body)
    );
    let member = added.json();
    assert_eq!(member["userId"], alex.id.as_str());
    assert_eq!(member["roles"][0], "owner");
    assert_eq!(
        member["@odata.type"],
        "#microsoft.graph.aadUserConversationMember"
    );
    // The new member sees the chat; its members are three.
    let seen = get(&format!("{base}v1.0/chats/{chat}"), Some(&alex_token)).await;
    assert_eq!(seen.status, 200);
    let members = get(
        &format!("{base}v1.0/chats/{chat}/members"),
        Some(&megan_token),
    )
    .await;
    assert_eq!(members.json()["value"].as_array().unwrap().len(), 3);
    // The chat says who added whom, as Teams does.
    let event = sim
        .truth(&chat)
        .unwrap()
        .into_iter()
        .find(|m| m["messageType"] == "systemEventMessage")
        .expect("a system event message");
    let detail = &event["eventDetail"];
    assert_eq!(
        detail["@odata.type"],
        "#microsoft.graph.membersAddedEventMessageDetail"
    );
    assert_eq!(detail["members"][0]["id"], alex.id.as_str());
    assert_eq!(detail["initiator"]["user"]["id"], megan.id.as_str());

    // Twice: 409. A oneOnOne chat takes no member: 400.
    let again = send_as(
        &sim,
        add_chat_member(&chat, &ChatMember::owner(alex.id.clone()), None).unwrap(),
        &megan_token,
    )
    .await;
    assert_eq!(again.status, 409);
    let direct = send_as(
        &sim,
        CreateChat::one_on_one(
            ChatMember::owner(megan.id.clone()),
            ChatMember::owner(adele.id.clone()),
        )
        .build()
        .unwrap(),
        &megan_token,
    )
    .await;
    let direct = direct.json()["id"].as_str().unwrap().to_string();
    let refused = send_as(
        &sim,
        add_chat_member(&direct, &ChatMember::owner(alex.id.clone()), None).unwrap(),
        &megan_token,
    )
    .await;
    assert_eq!(refused.status, 400);
    refused.error_code();
}

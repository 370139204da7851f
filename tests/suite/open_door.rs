//! The inbound path against a stranger: tenants bound to the tokens that vouch for them, a
//! receiver that can never decrypt unchecked, the JWKS refresh policy under a storm of unknown
//! kids and across a real rotation, the verified-token cache, and the issuers of every cloud.
#![cfg(feature = "rust-crypto")]

use std::cell::Cell;
use std::time::{Duration, SystemTime};

use crate::common::mint::{self, with, Minter, APP, TENANT};
use crate::common::*;
use graph_chat_notifications::crypto::{
    CryptoProvider, DecryptBuffer, PrivateKey, Rs256PublicKey, RUST_CRYPTO,
};
use graph_chat_notifications::inbound::{KeyUpdateError, Receiver};
use graph_chat_notifications::testing::{claims_v1, claims_v2, GraphSimulator};
use graph_chat_notifications::tokens::{JwksDecision, JwksRefresh, TokenError, TokenValidator};
use graph_chat_notifications::{BodyError, Cloud, ConfigError, ItemErrorKind, KeyError};
use serde_json::{json, Value};

const OTHER_TENANT: &str = "9c5a1f2e-0000-4000-8000-00000000000b";
const THIRD_TENANT: &str = "77777777-0000-4000-8000-00000000000c";

thread_local! {
    /// RS256 signature checks made on this test's thread.
    static VERIFIES: Cell<usize> = const { Cell::new(0) };
}

struct CountingRs256(Box<dyn Rs256PublicKey>);

impl Rs256PublicKey for CountingRs256 {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        VERIFIES.with(|n| n.set(n.get() + 1));
        self.0.verify(message, signature)
    }
}

fn counting_rs256(n: &[u8], e: &[u8]) -> Result<Box<dyn Rs256PublicKey>, KeyError> {
    Ok(Box::new(CountingRs256((provider().load_rs256_public_key)(
        n, e,
    )?)))
}

static COUNTING_RS256: CryptoProvider = RUST_CRYPTO
    .with_name("counting RS256")
    .with_rs256_public_key_loader(counting_rs256);

fn verifies() -> usize {
    VERIFIES.with(Cell::get)
}

fn validator_for(tenants: &[&str]) -> TokenValidator {
    let v = TokenValidator::with_provider(
        &COUNTING_RS256,
        [APP],
        tenants.iter().map(|t| t.to_string()),
    );
    v.update_jwks(&read("tokens/jwks.json"), mint::now())
        .unwrap();
    v
}

fn receiver_for(tenants: &[&str]) -> Receiver {
    Receiver::builder()
        .keys(all_keys())
        .client_state(CLIENT_STATE)
        .tokens(validator_for(tenants))
        .build()
        .unwrap()
}

fn v1_for(tenant: &str) -> Value {
    claims_v1(APP, tenant, mint::now())
}

fn v2_for(tenant: &str) -> Value {
    claims_v2(APP, tenant, mint::now())
}

/// The fixture batch's first (encrypted) item, claiming `tenant`.
fn item_of(tenant: Option<&str>) -> Value {
    let body: Value = serde_json::from_slice(&read("tokens/batch.json")).unwrap();
    let mut item = body["value"][0].clone();
    match tenant {
        Some(t) => item["tenantId"] = json!(t),
        None => {
            item.as_object_mut().unwrap().remove("tenantId");
        }
    }
    item
}

/// Opens each item of `items` under `tokens`: `Ok(())` or the failing field and kind.
fn open_each(
    r: &Receiver,
    items: Vec<Value>,
    tokens: Vec<String>,
) -> Vec<Result<(), (&'static str, ItemErrorKind)>> {
    let body = serde_json::to_vec(&json!({"value": items, "validationTokens": tokens})).unwrap();
    let batch = r.receive(&body, mint::now()).expect("tokens pass");
    let mut buf = DecryptBuffer::new();
    (0..batch.len())
        .map(|i| {
            batch
                .open(i, &mut buf)
                .map(|_| ())
                .map_err(|e| (e.field(), e.kind().clone()))
        })
        .collect()
}

#[test]
fn one_token_vouches_only_for_its_own_tenant() {
    let m = Minter::fixture();
    let r = receiver_for(&[TENANT, OTHER_TENANT]);
    for claims in [v1_for(TENANT), v2_for(TENANT)] {
        let results = open_each(
            &r,
            vec![
                item_of(Some(TENANT)),
                item_of(Some(OTHER_TENANT)),
                item_of(None),
                // Tenant ids are GUIDs: their letter case does not matter.
                item_of(Some(&TENANT.to_uppercase())),
            ],
            vec![m.token(&claims)],
        );
        assert_eq!(results[0], Ok(()));
        assert_eq!(
            results[1],
            Err(("tenantId", ItemErrorKind::TenantNotVouched))
        );
        assert_eq!(results[2], Err(("tenantId", ItemErrorKind::Missing)));
        assert_eq!(results[3], Ok(()));
    }
}

#[test]
fn two_tokens_vouch_for_two_tenants_and_no_third() {
    let m = Minter::fixture();
    let r = receiver_for(&[TENANT, OTHER_TENANT, THIRD_TENANT]);
    let results = open_each(
        &r,
        vec![
            item_of(Some(TENANT)),
            item_of(Some(THIRD_TENANT)),
            item_of(Some(OTHER_TENANT)),
        ],
        vec![m.token(&v1_for(TENANT)), m.token(&v2_for(OTHER_TENANT))],
    );
    assert_eq!(
        results,
        [
            Ok(()),
            Err(("tenantId", ItemErrorKind::TenantNotVouched)),
            Ok(())
        ]
    );
}

#[test]
fn the_error_names_the_notification_and_tenant_id() {
    let m = Minter::fixture();
    let r = receiver_for(&[TENANT, OTHER_TENANT]);
    let body = serde_json::to_vec(&json!({
        "value": [item_of(Some(TENANT)), item_of(Some(OTHER_TENANT))],
        "validationTokens": [m.token(&v1_for(TENANT))],
    }))
    .unwrap();
    let batch = r.receive(&body, mint::now()).unwrap();
    let e = batch.open(1, &mut DecryptBuffer::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "notification 1: tenantId: no validation token of the batch was issued for this tenant"
    );
}

#[test]
fn a_receiver_without_tokens_never_gets_keys_later() {
    let key = || PrivateKey::from_bytes(&read("keys/rsa2048/key.pkcs8.pem")).unwrap();
    let bare = Receiver::builder()
        .keys(store())
        .client_state(CLIENT_STATE)
        .build()
        .unwrap();
    assert_eq!(
        bare.update_keys(|k| k.insert("graphsim-rsa2048", key())),
        Err(KeyUpdateError::TokenValidationNotConfigured)
    );
    assert!(
        bare.keys().unwrap().is_empty(),
        "a refused update changes nothing"
    );
    // And so an encrypted item still cannot be opened.
    let body = read("batches/rsa2048.json");
    let batch = bare.receive(&body, SystemTime::now()).unwrap();
    let e = batch.open(0, &mut DecryptBuffer::new()).unwrap_err();
    assert_eq!(e.kind(), &ItemErrorKind::UnknownCertificate);

    // With a validator, or an explicit opt-out, keys may come later.
    let checked = Receiver::builder()
        .keys(store())
        .client_state(CLIENT_STATE)
        .tokens(validator_for(&[TENANT]))
        .build()
        .unwrap();
    checked
        .update_keys(|k| k.insert("graphsim-rsa2048", key()))
        .unwrap();
    let opted_out = Receiver::builder()
        .keys(store())
        .client_state(CLIENT_STATE)
        .dangerous_skip_token_validation()
        .build()
        .unwrap();
    opted_out
        .update_keys(|k| k.insert("graphsim-rsa2048", key()))
        .unwrap();
    // Removing every key is always allowed.
    checked
        .update_keys(|k| {
            k.remove("graphsim-rsa2048");
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_client_state_is_required_unless_dangerously_waived() {
    assert_eq!(
        Receiver::builder().build().unwrap_err(),
        ConfigError::ClientStateNotConfigured
    );
    let any = Receiver::builder()
        .dangerous_accept_any_client_state()
        .build()
        .unwrap();
    let body = br#"{"value":[{"changeType":"updated","clientState":"whatever","resource":"chats('19:a@thread.v2')"}]}"#;
    let batch = any.receive(body, SystemTime::now()).unwrap();
    assert!(batch.open(0, &mut DecryptBuffer::new()).is_ok());
}

#[test]
fn a_verified_token_is_verified_once_until_it_expires() {
    let m = Minter::fixture();
    let v = validator_for(&[TENANT]);
    let token = m.token(&Minter::v1());
    let before = verifies();
    for _ in 0..50 {
        assert_eq!(v.validate(&token, mint::now()).unwrap().tenant_id, TENANT);
    }
    assert_eq!(verifies() - before, 1, "one RS256 check for 50 uses");
    assert_eq!(v.cached_tokens(), 1);

    // Times are still checked against each call's `now`.
    let exp = v.validate(&token, mint::now()).unwrap().expires_at;
    let after_expiry = SystemTime::UNIX_EPOCH + Duration::from_secs(exp as u64 + 3600);
    assert!(matches!(
        v.validate(&token, after_expiry),
        Err(TokenError::Expired { .. })
    ));
    let before_nbf = mint::now() - Duration::from_secs(3600);
    assert!(matches!(
        v.validate(&token, before_nbf),
        Err(TokenError::NotYetValid { .. })
    ));

    // A token that fails is not remembered, and a different token is checked afresh.
    let forged = Minter::other().token(&Minter::v1());
    for _ in 0..3 {
        assert_eq!(v.validate(&forged, mint::now()), Err(TokenError::Signature));
    }
    assert_eq!(v.cached_tokens(), 1);
}

#[test]
fn the_token_cache_is_bounded_and_forgets_expired_tokens_first() {
    let m = Minter::fixture();
    let v = validator_for(&[TENANT]).token_cache_capacity(3);
    let token_at = |offset: i64| m.token(&Minter::v1_at(mint::NOW as i64 + offset));
    let tokens: Vec<String> = (0..10).map(|i| token_at(i * 10)).collect();
    for t in &tokens {
        v.validate(t, mint::now() + Duration::from_secs(100))
            .unwrap();
        assert!(v.cached_tokens() <= 3);
    }
    assert_eq!(v.cached_tokens(), 3);
    // The latest three are the ones kept: using them again checks no signature.
    let before = verifies();
    for t in &tokens[7..] {
        v.validate(t, mint::now() + Duration::from_secs(100))
            .unwrap();
    }
    assert_eq!(verifies(), before);
    v.validate(&tokens[0], mint::now() + Duration::from_secs(100))
        .unwrap();
    assert_eq!(verifies(), before + 1);

    let off = validator_for(&[TENANT]).token_cache_capacity(0);
    let before = verifies();
    off.validate(&tokens[0], mint::now()).unwrap();
    off.validate(&tokens[0], mint::now()).unwrap();
    assert_eq!(verifies(), before + 2);
    assert_eq!(off.cached_tokens(), 0);
}

#[test]
fn each_cloud_accepts_its_own_issuers_only() {
    let m = Minter::fixture();
    let issuers = |cloud: Cloud| {
        let v1 = format!("https://{}/{TENANT}/", cloud.v1_issuer_host());
        let v2 = format!("https://{}/{TENANT}/v2.0", cloud.login_host());
        [(v1, Minter::v1()), (v2, Minter::v2())]
    };
    for cloud in Cloud::ALL {
        let v = validator_for(&[TENANT]).cloud(cloud);
        assert_eq!(v.configured_cloud(), cloud);
        for other in Cloud::ALL {
            for (iss, claims) in issuers(other) {
                let token = m.token(&with(claims, json!({ "iss": iss })));
                let accepted = v.validate(&token, mint::now()).is_ok();
                let same_issuer = issuers(cloud).iter().any(|(i, _)| *i == iss);
                assert_eq!(accepted, same_issuer, "{cloud:?} given {iss}");
            }
        }
    }
    assert_eq!(
        Cloud::UsGovernment.graph_url(),
        "https://graph.microsoft.us"
    );
    assert_eq!(Cloud::China.v1_issuer_host(), "sts.chinacloudapi.cn");
}

/// A JWKS endpoint that counts its fetches and can rotate its keys.
struct Endpoint {
    jwks: Vec<u8>,
    fetches: usize,
}

impl Endpoint {
    fn fetch(&mut self) -> Vec<u8> {
        self.fetches += 1;
        self.jwks.clone()
    }
}

/// What a webhook does with a token refused for an unknown key: ask the policy, fetch when it
/// says so, and retry. Returns whether the token passed in the end (`None`: keep the batch and
/// retry later).
fn handle_unknown(
    v: &TokenValidator,
    policy: &JwksRefresh,
    endpoint: &mut Endpoint,
    token: &str,
    now: SystemTime,
) -> Option<bool> {
    match v.validate(token, now) {
        Ok(_) => Some(true),
        Err(e) => match e.unknown_key() {
            None => Some(false),
            Some(kid) => match policy.on_unknown_key(kid, now) {
                JwksDecision::Fetch(fetch) => {
                    v.update_jwks(&endpoint.fetch(), now).unwrap();
                    fetch.succeeded();
                    match v.validate(token, now) {
                        Ok(_) => Some(true),
                        Err(e) if e.unknown_key().is_some() => {
                            assert!(matches!(
                                policy.on_unknown_key(kid, now),
                                JwksDecision::Unknown
                            ));
                            Some(false)
                        }
                        Err(_) => Some(false),
                    }
                }
                JwksDecision::Wait { .. } => None,
                JwksDecision::Unknown => Some(false),
            },
        },
    }
}

#[test]
fn a_storm_of_unknown_kids_fetches_once_per_interval_and_a_rotation_still_validates() {
    let t0 = mint::now();
    let graph_old = Minter::fixture();
    // The identity platform's next key, under a new kid.
    let next_key = graph_chat_notifications::testing::generate_private_key(2048);
    let graph_new = GraphSimulator::with_signing_key(&next_key, "rotated-kid", APP, TENANT);
    let v = TokenValidator::with_provider(provider(), [APP], [TENANT])
        .retain_vanished_keys(Duration::from_secs(6 * 3600));
    let policy = JwksRefresh::new().min_interval(Duration::from_secs(300));
    let mut endpoint = Endpoint {
        jwks: read("tokens/jwks.json"),
        fetches: 0,
    };
    // Start-up.
    let fetch = policy.start(t0).unwrap();
    v.update_jwks(&endpoint.fetch(), t0).unwrap();
    fetch.succeeded();
    assert!(
        policy.start(t0).is_none(),
        "no second fetch within the interval"
    );

    // A storm: 5,000 tokens naming random kids over ten minutes, one every 120 ms. (A key that
    // is not held is refused before any signature check, so these need no real signature.)
    let mut kept = 0;
    for i in 0..5_000u64 {
        let now = t0 + Duration::from_millis(120 * i);
        let mut header = graph_old.header();
        header["kid"] = json!(format!("forged-{}", i % 2_000));
        let token = format!(
            "{}.c2lnbmF0dXJl",
            mint::signing_input(&header, &claims_v1(APP, TENANT, now))
        );
        match handle_unknown(&v, &policy, &mut endpoint, &token, now) {
            Some(true) => panic!("a forged token passed"),
            Some(false) => {}
            None => kept += 1,
        }
    }
    // Ten minutes from t0: fetches at 5 and 10 minutes at the most, besides start-up.
    assert!(endpoint.fetches <= 3, "{} fetches", endpoint.fetches);
    assert!(kept > 0, "tokens arriving between fetches wait");

    // The platform rotates: the new JWKS lists only the new key.
    endpoint.jwks = graph_new.jwks();
    let t1 = t0 + Duration::from_secs(900);
    let new_token = graph_new.token(t1);
    let old_token = graph_old.token(&claims_v1(APP, TENANT, t1));
    assert_eq!(
        handle_unknown(&v, &policy, &mut endpoint, &new_token, t1),
        Some(true),
        "the interval has passed: the new key is fetched at once"
    );
    let fetches = endpoint.fetches;
    // A batch received before the rotation, still in an inbox, validates with the old key.
    assert!(v.validate(&old_token, t1).is_ok());
    assert!(v.knows_key(&graph_old.kid) && v.knows_key("rotated-kid"));
    // Validating again costs no fetch.
    for _ in 0..100 {
        assert!(v.validate(&new_token, t1).is_ok());
    }
    assert_eq!(endpoint.fetches, fetches);

    // Once the retention has passed, the next refresh lets the vanished key go.
    let t2 = t1 + Duration::from_secs(7 * 3600);
    v.update_jwks(&endpoint.fetch(), t2).unwrap();
    assert!(!v.knows_key(&graph_old.kid));
    assert!(v.knows_key("rotated-kid"));
}

#[test]
fn one_fetch_at_a_time_and_failures_do_not_hammer() {
    let t0 = mint::now();
    let policy = JwksRefresh::new().min_interval(Duration::from_secs(60));
    let JwksDecision::Fetch(first) = policy.on_unknown_key("a", t0) else {
        panic!("the first unknown kid fetches")
    };
    // While it is under way, nobody else fetches, however long it takes.
    for s in [0, 59, 61, 600] {
        assert!(matches!(
            policy.on_unknown_key("b", t0 + Duration::from_secs(s)),
            JwksDecision::Wait { retry_after } if retry_after.is_zero()
        ));
    }
    drop(first); // the fetch failed
                 // A failure does not mark any kid as forged, and the interval still holds.
    assert!(matches!(
        policy.on_unknown_key("a", t0 + Duration::from_secs(30)),
        JwksDecision::Wait { retry_after } if retry_after == Duration::from_secs(30)
    ));
    let JwksDecision::Fetch(second) = policy.on_unknown_key("a", t0 + Duration::from_secs(60))
    else {
        panic!("after the interval, fetch again")
    };
    assert_eq!(second.started(), t0 + Duration::from_secs(60));
    second.succeeded();
    // "a" and "b" were both seen before that fetch began: both are now known to be absent.
    for kid in ["a", "b"] {
        assert!(matches!(
            policy.on_unknown_key(kid, t0 + Duration::from_secs(61)),
            JwksDecision::Unknown
        ));
    }
    // A kid first seen after the fetch began was not looked for: it waits.
    assert!(matches!(
        policy.on_unknown_key("c", t0 + Duration::from_secs(61)),
        JwksDecision::Wait { .. }
    ));
    // The memory of unknown kids is bounded.
    let small = JwksRefresh::new().remember_unknown_kids(10);
    for i in 0..10_000 {
        let _ = small.on_unknown_key(&format!("k{i}"), t0);
    }
    assert!(format!("{small:?}").contains("remembered_kids: 10"));
}

#[test]
fn refresh_hints_come_from_the_body_error() {
    let r = receiver_for(&[TENANT]);
    let forger = GraphSimulator::new(APP, TENANT);
    let mut header = forger.header();
    header["kid"] = json!("never-published");
    let token = forger.sign(&header, &Minter::v1());
    let body = serde_json::to_vec(&json!({
        "value": [item_of(Some(TENANT))],
        "validationTokens": [token],
    }))
    .unwrap();
    let e = r.receive(&body, mint::now()).unwrap_err();
    assert!(matches!(e, BodyError::Token { index: 0, .. }));
    assert_eq!(e.unknown_key(), Some("never-published"));
    assert!(BodyError::Empty.unknown_key().is_none());
}

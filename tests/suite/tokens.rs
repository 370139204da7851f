//! validationTokens: every rule, positive and negative, and no RSA work when a token fails.
#![cfg(feature = "rust-crypto")]

use std::cell::Cell;
use std::time::Duration;

use crate::common::mint::{self, with, Minter, APP, GRAPH, TENANT};
use crate::common::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use graph_chat_notifications::crypto::{
    CryptoFailure, CryptoProvider, DecryptBuffer, KeyStore, PrivateKey, RsaOaepSha1Key, RUST_CRYPTO,
};
use graph_chat_notifications::inbound::{Inbound, Payload, Receiver};
use graph_chat_notifications::tokens::{JwksError, TokenError, TokenValidator};
use graph_chat_notifications::{BodyError, ConfigError, KeyError};
use serde_json::{json, Value};

thread_local! {
    /// RSA-OAEP unwraps done on this test's thread.
    static UNWRAPS: Cell<usize> = const { Cell::new(0) };
}

struct Counting(Box<dyn RsaOaepSha1Key>);

impl RsaOaepSha1Key for Counting {
    fn unwrap_key(&self, ciphertext: &[u8], out: &mut [u8; 32]) -> Result<(), CryptoFailure> {
        UNWRAPS.with(|n| n.set(n.get() + 1));
        self.0.unwrap_key(ciphertext, out)
    }
}

fn counting_load(key: &PrivateKey) -> Result<Box<dyn RsaOaepSha1Key>, KeyError> {
    Ok(Box::new(Counting((provider().load_rsa_private_key)(key)?)))
}

static COUNTING: CryptoProvider = RUST_CRYPTO
    .with_name("counting")
    .with_rsa_private_key_loader(counting_load);

fn unwraps() -> usize {
    UNWRAPS.with(Cell::get)
}

fn validator() -> TokenValidator {
    let v = TokenValidator::with_provider(provider(), [APP], [TENANT]);
    assert_eq!(
        v.update_jwks(&read("tokens/jwks.json"), std::time::SystemTime::now())
            .unwrap(),
        1
    );
    v
}

fn token_receiver() -> Receiver {
    let key = PrivateKey::from_bytes(&read("keys/rsa2048/key.pkcs8.pem")).unwrap();
    let mut keys = KeyStore::with_provider(&COUNTING);
    keys.insert("graphsim-rsa2048", key).unwrap();
    Receiver::builder()
        .keys(keys)
        .client_state(CLIENT_STATE)
        .tokens(validator())
        .build()
        .unwrap()
}

/// The fixture batch with its tokens replaced.
fn batch_with(tokens: Value) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&read("tokens/batch.json")).unwrap();
    if tokens.is_null() {
        body.as_object_mut().unwrap().remove("validationTokens");
    } else {
        body["validationTokens"] = tokens;
    }
    serde_json::to_vec(&body).unwrap()
}

/// Receives `body` and opens every notification; returns the refusal if the body was refused.
fn receive_all(r: &Receiver, body: &[u8]) -> Result<Vec<String>, BodyError> {
    let batch = r.receive(body, mint::now())?;
    let mut buf = DecryptBuffer::new();
    Ok((0..batch.len())
        .map(|i| match batch.open(i, &mut buf).unwrap().payload {
            Payload::Decrypted(json) => json.into_owned(),
            other => panic!("{other:?}"),
        })
        .collect())
}

/// A body with `token` must be refused with `expected`, before any RSA unwrap.
fn refused(token: String, expected: TokenError) {
    let r = token_receiver();
    let before = unwraps();
    let err = receive_all(&r, &batch_with(json!([token]))).unwrap_err();
    assert_eq!(
        err,
        BodyError::Token {
            index: 0,
            error: expected
        }
    );
    assert_eq!(unwraps(), before, "no RSA work after a failed token");
}

#[test]
fn independently_minted_v1_and_v2_tokens_pass_and_the_batch_decrypts() {
    let v = validator();
    for name in ["v1.jwt", "v2.jwt"] {
        let token = String::from_utf8(read(&format!("tokens/{name}"))).unwrap();
        let ok = v
            .validate(&token, mint::now())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((ok.app_id.as_str(), ok.tenant_id.as_str()), (APP, TENANT));
        assert_eq!(ok.expires_at, mint::NOW as i64 + 3600);
    }
    let r = token_receiver();
    let before = unwraps();
    let plain = receive_all(&r, &read("tokens/batch.json")).unwrap();
    assert_eq!(
        plain,
        [
            plaintext("message-text.json"),
            plaintext("chat-oneonone.json")
        ]
    );
    assert_eq!(unwraps() - before, 2);
}

#[test]
fn rust_minted_tokens_of_both_shapes_pass() {
    let m = Minter::fixture();
    let v = validator();
    for claims in [Minter::v1(), Minter::v2()] {
        v.validate(&m.token(&claims), mint::now()).unwrap();
    }
    // aud as an array, upper-case GUIDs, fractional times: still the same identities.
    let claims = with(
        Minter::v1(),
        json!({"aud": ["api://other", APP.to_uppercase()], "exp": mint::NOW as f64 + 10.5, "appid": GRAPH.to_uppercase()}),
    );
    v.validate(&m.token(&claims), mint::now()).unwrap();
}

#[test]
fn expiry_and_not_before_respect_the_leeway_and_the_injected_time() {
    let m = Minter::fixture();
    let now = mint::NOW as i64;
    refused(
        String::from_utf8(read("tokens/expired.jwt")).unwrap(),
        TokenError::Expired {
            exp: now - 7200 + 3600,
            now,
        },
    );
    refused(
        m.token(&with(Minter::v1(), json!({"exp": now - 61}))),
        TokenError::Expired { exp: now - 61, now },
    );
    refused(
        m.token(&with(Minter::v1(), json!({"nbf": now + 61}))),
        TokenError::NotYetValid { nbf: now + 61, now },
    );
    refused(
        m.token(&with(Minter::v1(), json!({"exp": null}))),
        TokenError::Claim { claim: "exp" },
    );
    refused(
        m.token(&with(Minter::v1(), json!({"exp": "soon"}))),
        TokenError::Malformed {
            reason: "claims are not a JSON object of the expected types",
        },
    );
    let v = validator();
    // Within the 60 s leeway both ways.
    v.validate(
        &m.token(&with(Minter::v1(), json!({"exp": now - 30}))),
        mint::now(),
    )
    .unwrap();
    v.validate(
        &m.token(&with(Minter::v1(), json!({"nbf": now + 30}))),
        mint::now(),
    )
    .unwrap();
    // The same token is judged by the time passed in, not the clock.
    let t = m.token(&Minter::v1());
    assert!(v
        .validate(&t, mint::now() + Duration::from_secs(7200))
        .is_err());
    assert!(v
        .validate(&t, mint::now() - Duration::from_secs(7200))
        .is_err());
    let strict = validator().leeway(Duration::ZERO);
    assert!(strict
        .validate(
            &m.token(&with(Minter::v1(), json!({"exp": now - 1}))),
            mint::now()
        )
        .is_err());
}

#[test]
fn audience_must_be_a_configured_app() {
    let m = Minter::fixture();
    refused(
        m.token(&with(
            Minter::v1(),
            json!({"aud": "99999999-2222-3333-4444-555555555555"}),
        )),
        TokenError::Audience,
    );
    refused(
        m.token(&with(Minter::v1(), json!({"aud": [GRAPH]}))),
        TokenError::Audience,
    );
    refused(
        m.token(&with(Minter::v1(), json!({"aud": null}))),
        TokenError::Claim { claim: "aud" },
    );
    refused(
        m.token(&with(Minter::v1(), json!({"aud": format!("{APP}x")}))),
        TokenError::Audience,
    );
}

#[test]
fn publisher_must_be_graph_in_every_claim_present() {
    let m = Minter::fixture();
    let other = "22222222-0000-0000-0000-000000000000";
    let (v1, v2) = (Minter::v1(), Minter::v2());
    let publisher = |claim| TokenError::Publisher { claim };
    let missing = |claim| TokenError::Claim { claim };
    for (claims, changes, expected) in [
        // A present claim that names someone else fails, whichever it is.
        (&v1, json!({"appid": other}), publisher("appid")),
        (&v1, json!({"azp": other}), publisher("azp")),
        (&v2, json!({"azp": other}), publisher("azp")),
        (&v1, json!({"appid": 5}), publisher("appid")),
        // The claim of the token's version must be there: `appid` in v1, `azp` in v2.
        (&v1, json!({"appid": null, "azp": null}), missing("appid")),
        (&v1, json!({"appid": null}), missing("appid")),
        (&v2, json!({"azp": null}), missing("azp")),
        // Without `ver`, the issuer's format decides; an unknown `ver` is refused.
        (&v1, json!({"appid": null, "ver": null}), missing("appid")),
        (&v1, json!({"ver": "3.0"}), missing("ver")),
    ] {
        refused(m.token(&with(claims.clone(), changes)), expected);
    }
    refused(
        String::from_utf8(read("tokens/wrong-publisher.jwt")).unwrap(),
        publisher("appid"),
    );
    // v1 with only appid, v2 with only azp, either without `ver`: all fine.
    let v = validator();
    for claims in [
        with(v1.clone(), json!({"azp": null})),
        with(v1, json!({"azp": null, "ver": null})),
        with(v2, json!({"ver": null})),
    ] {
        v.validate(&m.token(&claims), mint::now()).unwrap();
    }
}

#[test]
fn issuer_and_tenant_match_exactly() {
    let m = Minter::fixture();
    let other = "0e0e0e0e-8ac6-4f0d-904a-7ebcd364bea1";
    for (iss, expected) in [
        (
            format!("https://sts.windows.net/{other}/"),
            TokenError::Tenant,
        ),
        (
            format!("https://login.microsoftonline.com/{other}/v2.0"),
            TokenError::Tenant,
        ),
        (
            format!("https://sts.windows.net/{TENANT}x/"),
            TokenError::Tenant,
        ),
        (
            format!("https://sts.windows.net/{}/", &TENANT[..30]),
            TokenError::Tenant,
        ),
        (
            format!("https://sts.windows.net/{TENANT}"),
            TokenError::Issuer,
        ),
        (
            format!("https://sts.windows.net/{TENANT}/extra/"),
            TokenError::Issuer,
        ),
        (
            format!("https://sts.windows.net.evil.example/{TENANT}/"),
            TokenError::Issuer,
        ),
        (
            format!("https://evil.example/{TENANT}/v2.0"),
            TokenError::Issuer,
        ),
        (
            format!("http://sts.windows.net/{TENANT}/"),
            TokenError::Issuer,
        ),
        (
            format!("https://login.microsoftonline.com/{TENANT}/v2.0/"),
            TokenError::Issuer,
        ),
    ] {
        // Without `tid`, so the issuer alone decides.
        refused(
            m.token(&with(Minter::v1(), json!({"iss": iss, "tid": null}))),
            expected,
        );
    }
    refused(
        m.token(&with(Minter::v1(), json!({"iss": null}))),
        TokenError::Claim { claim: "iss" },
    );
    refused(
        m.token(&with(Minter::v1(), json!({"tid": other}))),
        TokenError::Tenant,
    );
}

#[test]
fn only_rs256_signed_by_a_jwks_key() {
    let m = Minter::fixture();
    refused(
        String::from_utf8(read("tokens/other-signer.jwt")).unwrap(),
        TokenError::Signature,
    );
    refused(Minter::other().token(&Minter::v1()), TokenError::Signature);
    // Claims changed after signing.
    let good = m.token(&Minter::v1());
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged_claims = B64URL.encode(
        serde_json::to_vec(&with(
            Minter::v1(),
            json!({"aud": APP, "exp": 9_999_999_999u64}),
        ))
        .unwrap(),
    );
    parts[1] = &forged_claims;
    refused(parts.join("."), TokenError::Signature);

    // alg: none, with and without a signature.
    let none = mint::signing_input(&json!({"alg": "none", "kid": m.kid}), &Minter::v1());
    refused(
        format!("{none}."),
        TokenError::Algorithm { alg: "none".into() },
    );
    refused(
        format!("{none}.{}", good.rsplit('.').next().unwrap()),
        TokenError::Algorithm { alg: "none".into() },
    );

    // HS256 "signed" with the public key, the classic confusion attack.
    use hmac::{Hmac, Mac};
    let jwks: Value = serde_json::from_slice(&read("tokens/jwks.json")).unwrap();
    for secret in [
        jwks["keys"][0]["n"].as_str().unwrap().as_bytes().to_vec(),
        read("tokens/jwks.json"),
    ] {
        let input = mint::signing_input(&json!({"alg": "HS256", "kid": m.kid}), &Minter::v1());
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&secret).unwrap();
        mac.update(input.as_bytes());
        let token = format!("{input}.{}", B64URL.encode(mac.finalize().into_bytes()));
        refused(
            token,
            TokenError::Algorithm {
                alg: "HS256".into(),
            },
        );
    }
    for alg in ["RS512", "PS256", "ES256", "rs256"] {
        let mut header = m.header();
        header["alg"] = alg.into();
        refused(
            m.sign(&header, &Minter::v1()),
            TokenError::Algorithm { alg: alg.into() },
        );
    }
    let mut header = m.header();
    header.as_object_mut().unwrap().remove("alg");
    refused(
        m.sign(&header, &Minter::v1()),
        TokenError::Algorithm { alg: "".into() },
    );
}

/// RFC 7515, section 4.1.11: extensions listed in `crit` must be understood, or the token is
/// invalid. The validator understands none, so every `crit` refuses the token, before any RSA
/// work: `b64` (RFC 7797) would have the signature cover an unencoded payload, a different
/// message from the one checked.
#[test]
fn critical_header_extensions_are_refused() {
    let m = Minter::fixture();
    for (crit, name) in [
        (json!(["b64"]), "b64"),
        (
            json!(["http://example.com/ext", "b64"]),
            "http://example.com/ext",
        ),
        (json!([]), ""),
        (json!("b64"), ""),
        (json!([7]), ""),
        (Value::Null, ""),
    ] {
        let mut header = m.header();
        header["b64"] = false.into();
        header["crit"] = crit;
        refused(
            m.sign(&header, &Minter::v1()),
            TokenError::CriticalExtension { name: name.into() },
        );
    }
    // Without `crit`, the same header (an unknown member is ignored) passes.
    let mut header = m.header();
    header["b64"] = false.into();
    validator()
        .validate(&m.sign(&header, &Minter::v1()), mint::now())
        .unwrap();
}

#[test]
fn malformed_tokens() {
    let m = Minter::fixture();
    let good = m.token(&Minter::v1());
    let segments: Vec<&str> = good.split('.').collect();
    for (token, reason) in [
        ("".to_string(), "not three dot-separated segments"),
        ("abc".to_string(), "not three dot-separated segments"),
        ("a.b".to_string(), "not three dot-separated segments"),
        (format!("{good}.x"), "not three dot-separated segments"),
        (
            format!("%%%.{}.{}", segments[1], segments[2]),
            "header is not base64url",
        ),
        (
            format!("{}.{}.{}", B64URL.encode("[1]"), segments[1], segments[2]),
            "header is not a JSON object",
        ),
        (
            format!("{}.{}.***", segments[0], segments[1]),
            "signature is not base64url",
        ),
        ("x".repeat(20_000), "longer than 16 KiB"),
    ] {
        refused(token, TokenError::Malformed { reason });
    }
    let no_kid = m.sign(&json!({"alg": "RS256"}), &Minter::v1());
    refused(
        no_kid,
        TokenError::Malformed {
            reason: "header names no key (`kid`)",
        },
    );
    let bad_claims = {
        let input = format!(
            "{}.{}",
            B64URL.encode(serde_json::to_vec(&m.header()).unwrap()),
            B64URL.encode("not json")
        );
        mint::sign_input_with(&m, &input)
    };
    refused(
        bad_claims,
        TokenError::Malformed {
            reason: "claims are not a JSON object of the expected types",
        },
    );
}

#[test]
fn every_token_must_pass_and_encrypted_content_needs_tokens() {
    let m = Minter::fixture();
    let good = m.token(&Minter::v1());
    let bad = m.token(&with(Minter::v1(), json!({"aud": "someone-else"})));
    let r = token_receiver();
    let before = unwraps();
    assert_eq!(
        receive_all(&r, &batch_with(json!([good, bad]))).unwrap_err(),
        BodyError::Token {
            index: 1,
            error: TokenError::Audience
        }
    );
    assert_eq!(
        receive_all(&r, &batch_with(Value::Null)).unwrap_err(),
        BodyError::MissingValidationTokens
    );
    assert_eq!(
        receive_all(&r, &batch_with(json!([]))).unwrap_err(),
        BodyError::MissingValidationTokens
    );
    assert!(matches!(
        receive_all(&r, &batch_with(json!([good, 5]))).unwrap_err(),
        BodyError::BadValidationTokens { .. }
    ));
    assert_eq!(unwraps(), before);
    // Two good tokens (two tenants' worth) are fine.
    let v2 = m.token(&Minter::v2());
    assert_eq!(
        receive_all(&r, &batch_with(json!([good, v2])))
            .unwrap()
            .len(),
        2
    );
    // No encrypted content: tokens are optional, but checked when present.
    let plain = serde_json::to_vec(
        &json!({"value": [{"clientState": CLIENT_STATE, "lifecycleEvent": "missed"}]}),
    )
    .unwrap();
    assert!(r.receive(&plain, mint::now()).is_ok());
    // An encrypted notification too broken to parse still makes the body need tokens.
    let broken = serde_json::to_vec(&json!({"value": [
        {"clientState": CLIENT_STATE, "lifecycleEvent": "missed"},
        {"clientState": CLIENT_STATE, "encryptedContent": {"data": "QQ=="}},
    ]}))
    .unwrap();
    assert_eq!(
        r.receive(&broken, mint::now()).unwrap_err(),
        BodyError::MissingValidationTokens
    );
    let plain_bad =
        serde_json::to_vec(&json!({"value": [], "validationTokens": ["x.y.z"]})).unwrap();
    assert!(matches!(
        r.receive(&plain_bad, mint::now()).unwrap_err(),
        BodyError::Token { index: 0, .. }
    ));
}

#[test]
fn unknown_kid_asks_for_a_jwks_refresh_and_rotation_works() {
    let m = Minter::fixture();
    let mut header = m.header();
    header["kid"] = "rotated-key".into();
    header["x5t"] = "rotated-key".into();
    let token = m.sign(&header, &Minter::v1());
    let r = token_receiver();
    let err = receive_all(&r, &batch_with(json!([token.clone()]))).unwrap_err();
    assert_eq!(
        err,
        BodyError::Token {
            index: 0,
            error: TokenError::UnknownKey {
                kid: "rotated-key".into()
            }
        }
    );
    assert!(err.wants_jwks_refresh());
    // The new JWKS names the same key under its new id.
    let mut jwks: Value = serde_json::from_slice(&read("tokens/jwks.json")).unwrap();
    jwks["keys"][0]["kid"] = "rotated-key".into();
    assert_eq!(
        r.tokens().unwrap().update_jwks(
            &serde_json::to_vec(&jwks).unwrap(),
            std::time::SystemTime::now()
        ),
        Ok(1)
    );
    assert_eq!(
        receive_all(&r, &batch_with(json!([token]))).unwrap().len(),
        2
    );

    // Without any JWKS every token fails, asking for one.
    let empty = TokenValidator::with_provider(provider(), [APP], [TENANT]);
    let e = empty
        .validate(&m.token(&Minter::v1()), mint::now())
        .unwrap_err();
    assert_eq!(e, TokenError::NoJwks);
    assert!(e.wants_jwks_refresh());
    assert!(!TokenError::Signature.wants_jwks_refresh());
}

#[test]
fn jwks_documents_are_checked_and_a_bad_one_keeps_the_old_keys() {
    let v = validator();
    assert_eq!(
        v.update_jwks(b"not json", std::time::SystemTime::now()),
        Err(JwksError::NotJwks)
    );
    assert_eq!(
        v.update_jwks(b"{\"keys\": 3}", std::time::SystemTime::now()),
        Err(JwksError::NotJwks)
    );
    assert_eq!(
        v.update_jwks(b"{\"keys\": []}", std::time::SystemTime::now()),
        Err(JwksError::NoUsableKey)
    );
    assert_eq!(
        v.update_jwks(&vec![b' '; 2 << 20], std::time::SystemTime::now()),
        Err(JwksError::TooLarge)
    );
    let jwks: Value = serde_json::from_slice(&read("tokens/jwks.json")).unwrap();
    let key = jwks["keys"][0].clone();
    let unusable = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "ec", "x": "AA", "y": "AA"},
        with(key.clone(), json!({"use": "enc"})),
        with(key.clone(), json!({"kid": null})),
        with(key.clone(), json!({"alg": "RS512"})),
        {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
        "garbage",
    ]});
    assert_eq!(
        v.update_jwks(
            &serde_json::to_vec(&unusable).unwrap(),
            std::time::SystemTime::now()
        ),
        Err(JwksError::NoUsableKey)
    );
    // The old key still works.
    v.validate(&Minter::fixture().token(&Minter::v1()), mint::now())
        .unwrap();
    // Extra fields Microsoft's JWKS carries (x5c, issuer) are fine, and unusable keys are skipped.
    let real_shape = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "ec", "x": "AA", "y": "AA"},
        with(key, json!({"x5c": ["MIIC"], "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0"})),
    ]});
    assert_eq!(
        v.update_jwks(
            &serde_json::to_vec(&real_shape).unwrap(),
            std::time::SystemTime::now()
        ),
        Ok(1)
    );
}

#[test]
fn handshake_through_the_receiver_and_configuration_rules() {
    let r = token_receiver();
    match r
        .handle(
            "?validationToken=Validation%3A+Testing%20reachability%2B",
            b"",
            mint::now(),
        )
        .unwrap()
    {
        Inbound::Handshake(reply) => {
            assert_eq!(reply.status(), 200);
            assert_eq!(reply.content_type(), "text/plain; charset=utf-8");
            assert_eq!(reply.body(), "Validation: Testing reachability+");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        r.handle("a=b", &read("tokens/batch.json"), mint::now())
            .unwrap(),
        Inbound::Notifications(_)
    ));

    let key = || {
        store()
            .with_key(
                "k",
                PrivateKey::from_bytes(&read("keys/rsa2048/key.pkcs8.pem")).unwrap(),
            )
            .unwrap()
    };
    assert_eq!(
        Receiver::builder().keys(key()).build().unwrap_err(),
        ConfigError::ClientStateNotConfigured
    );
    assert_eq!(
        Receiver::builder()
            .keys(key())
            .client_state(CLIENT_STATE)
            .build()
            .unwrap_err(),
        ConfigError::TokenValidationNotConfigured
    );
    assert_eq!(
        Receiver::builder()
            .keys(key())
            .tokens(TokenValidator::with_provider(
                provider(),
                [APP],
                Vec::<String>::new()
            ))
            .build()
            .unwrap_err(),
        ConfigError::EmptyTokenValidator
    );
    assert_eq!(
        Receiver::builder()
            .client_state("x".repeat(129))
            .build()
            .unwrap_err(),
        ConfigError::BadClientState { len: 129 }
    );
    // Nothing secret in Debug.
    let dbg = format!("{r:?}");
    assert!(!dbg.contains(CLIENT_STATE));
    assert!(dbg.contains(APP));
}

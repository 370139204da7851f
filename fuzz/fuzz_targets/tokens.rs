//! Token validation: any string as a token, and any claims under a valid signature (the first
//! byte picks which), never a panic and never an accepted token that breaks a rule (app, tenant,
//! expiry, and the publisher in the claim of the token's version).
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use graph_chat_notifications::crypto::PrivateKey;
use graph_chat_notifications::testing::GraphSimulator;
use graph_chat_notifications::tokens::TokenValidator;
use libfuzzer_sys::fuzz_target;

const SIGNING: &[u8] = include_bytes!("../../tests/fixtures/tokens/signing.pem");
const KID: &str = include_str!("../../tests/fixtures/tokens/kid");
const JWKS: &[u8] = include_bytes!("../../tests/fixtures/tokens/jwks.json");
const APP: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1";

fn setup() -> &'static (TokenValidator, GraphSimulator) {
    static S: OnceLock<(TokenValidator, GraphSimulator)> = OnceLock::new();
    S.get_or_init(|| {
        let v = TokenValidator::new([APP], [TENANT]);
        v.update_jwks(JWKS, std::time::UNIX_EPOCH).unwrap();
        let key = PrivateKey::from_bytes(SIGNING).unwrap();
        (v, GraphSimulator::with_signing_key(&key, KID.trim(), APP, TENANT))
    })
}

fuzz_target!(|data: &[u8]| {
    let (validator, graph) = setup();
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let Some((&mode, rest)) = data.split_first() else { return };
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        // Arbitrary claims bytes, signed: everything after the signature check is exercised.
        use base64::Engine as _;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&graph.header()).unwrap());
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rest);
        graph.sign_input(&format!("{header}.{claims}"))
    };
    if let Ok(ok) = validator.validate(&token, now) {
        assert_eq!(ok.app_id, APP);
        assert_eq!(ok.tenant_id, TENANT);
        assert!(ok.expires_at + 60 > 1_800_000_000);
        if mode % 2 == 1 {
            // The publisher claim of the token's version (its `ver`, else its issuer) names Graph.
            let claims: serde_json::Value = serde_json::from_slice(rest).expect("accepted claims are JSON");
            let v2 = match claims.get("ver").and_then(|v| v.as_str()) {
                Some("2.0") => true,
                Some("1.0") => false,
                _ => claims["iss"].as_str().is_some_and(|i| i.ends_with("/v2.0")),
            };
            let publisher = &claims[if v2 { "azp" } else { "appid" }];
            assert!(publisher
                .as_str()
                .is_some_and(|p| p.eq_ignore_ascii_case("0bf30f3b-4a52-48df-9a82-234910c4a086")));
        }
    }
});

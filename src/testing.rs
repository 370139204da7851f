//! Graph's side of the scheme, for tests (feature `testing`). **Test-only**: nothing here is
//! needed to receive real notifications, and nothing here should run in production.
//!
//! A [`GraphSimulator`] encrypts resources for your certificate the way Graph does, builds
//! notification collections (with and without resource data, lifecycle events), and mints
//! `validationTokens` (v1 and v2) with its own signing key, whose JWKS it gives you. Your webhook's
//! tests can then run offline, without a tenant.
//!
//! ```
//! use std::time::SystemTime;
//! use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore};
//! use graph_chat_notifications::testing::{generate_private_key, GraphSimulator};
//! use graph_chat_notifications::tokens::TokenValidator;
//! use graph_chat_notifications::inbound::{Payload, Receiver};
//! use graph_chat_notifications::model::ChangeType;
//!
//! let now = SystemTime::now();
//! let graph = GraphSimulator::new("my-app-id", "my-tenant-id");
//! let key = generate_private_key(2048);
//! let item = graph.notification(r#"{"id":"19:a@thread.v2","chatType":"group"}"#, (&key).into(), "cert-1", ChangeType::Created);
//! let body = graph.collection(&[item], &[graph.token(now)]);
//!
//! let tokens = TokenValidator::new(["my-app-id"], ["my-tenant-id"]);
//! tokens.update_jwks(&graph.jwks(), std::time::SystemTime::now()).unwrap();
//! let receiver = Receiver::builder()
//!     .keys(KeyStore::new().with_key("cert-1", key).unwrap())
//!     .client_state(graph.client_state())
//!     .tokens(tokens)
//!     .build()
//!     .unwrap();
//! let batch = receiver.receive(&body, now).unwrap();
//! let mut buf = DecryptBuffer::new();
//! let opened = batch.open(0, &mut buf).unwrap();
//! assert!(matches!(opened.payload, Payload::Decrypted(ref json) if json.contains("group")));
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use aes::cipher::{block_padding::NoPadding, block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Oaep, Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::crypto::{Certificate, PrivateKey};
use crate::model::{ChangeType, EnumValue, LifecycleEvent};
use crate::tokens::GRAPH_CHANGE_TRACKING_APP_ID;

/// A new RSA private key of `bits` bits, for tests. Slow for large sizes (seconds at 4096).
pub fn generate_private_key(bits: usize) -> PrivateKey {
    let key = RsaPrivateKey::new(&mut OsRng, bits).expect("RSA key generation");
    let der = key.to_pkcs8_der().expect("PKCS#8 encoding");
    PrivateKey::from_pkcs8_der(der.as_bytes()).expect("a generated key loads")
}

/// Whom to encrypt for: a certificate (its thumbprint goes into the notification) or a key's
/// public half.
#[derive(Debug, Clone, Copy)]
pub enum Recipient<'a> {
    /// The certificate the subscription named.
    Certificate(&'a Certificate),
    /// A private key, of which only the public half is used.
    Key(&'a PrivateKey),
}

impl<'a> From<&'a Certificate> for Recipient<'a> {
    fn from(c: &'a Certificate) -> Self {
        Self::Certificate(c)
    }
}

impl<'a> From<&'a PrivateKey> for Recipient<'a> {
    fn from(k: &'a PrivateKey) -> Self {
        Self::Key(k)
    }
}

impl Recipient<'_> {
    fn public_key(&self) -> RsaPublicKey {
        let (n, e) = match self {
            Self::Certificate(c) => c.public_numbers(),
            Self::Key(k) => k.public_numbers(),
        };
        RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
            .expect("an RSA public key")
    }

    fn thumbprint(&self) -> Option<String> {
        match self {
            Self::Certificate(c) => Some(c.thumbprint_hex()),
            Self::Key(k) => k.certificate().map(Certificate::thumbprint_hex),
        }
    }
}

/// How to encrypt, for building broken notifications in negative tests. The default is what
/// Graph does. `Debug` shows the symmetric key's length, not its bytes.
#[derive(Clone, Default)]
pub struct Encryption {
    /// The symmetric key to wrap; 32 random bytes when `None`. Any length, to test refusals.
    pub symmetric_key: Option<Vec<u8>>,
    /// Leave out PKCS#7 padding (the plaintext must then be a multiple of 16 bytes).
    pub no_padding: bool,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryption")
            .field(
                "symmetric_key",
                &self
                    .symmetric_key
                    .as_ref()
                    .map(|k| format!("[{} bytes]", k.len())),
            )
            .field("no_padding", &self.no_padding)
            .finish()
    }
}

/// Microsoft Graph, simulated: encrypts, builds notification collections, mints tokens.
pub struct GraphSimulator {
    signing_key: RsaPrivateKey,
    kid: String,
    app_id: String,
    tenant_id: String,
    client_state: String,
}

impl std::fmt::Debug for GraphSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSimulator")
            .field("kid", &self.kid)
            .field("app_id", &self.app_id)
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

impl GraphSimulator {
    /// A simulator whose tokens are addressed to `app_id` from `tenant_id`, with a new 2048-bit
    /// signing key and the clientState `secretClientState`.
    pub fn new(app_id: impl Into<String>, tenant_id: impl Into<String>) -> Self {
        let signing_key = RsaPrivateKey::new(&mut OsRng, 2048).expect("RSA key generation");
        Self::with_signing_key_inner(
            signing_key,
            "graph-simulator-key".into(),
            app_id.into(),
            tenant_id.into(),
        )
    }

    /// A simulator that signs tokens with `signing_key` (a [`PrivateKey`] you keep, so JWKS and
    /// tokens stay stable across runs) under key id `kid`.
    pub fn with_signing_key(
        signing_key: &PrivateKey,
        kid: impl Into<String>,
        app_id: impl Into<String>,
        tenant_id: impl Into<String>,
    ) -> Self {
        let key = RsaPrivateKey::from_pkcs1_der(signing_key.expose_secret_pkcs1_der())
            .expect("a loaded key is valid");
        Self::with_signing_key_inner(key, kid.into(), app_id.into(), tenant_id.into())
    }

    fn with_signing_key_inner(
        signing_key: RsaPrivateKey,
        kid: String,
        app_id: String,
        tenant_id: String,
    ) -> Self {
        Self {
            signing_key,
            kid,
            app_id,
            tenant_id,
            client_state: "secretClientState".into(),
        }
    }

    /// Sets the clientState the notifications carry.
    pub fn client_state_value(mut self, client_state: impl Into<String>) -> Self {
        self.client_state = client_state.into();
        self
    }

    /// The clientState the notifications carry.
    pub fn client_state(&self) -> &str {
        &self.client_state
    }

    /// The tenant of the notifications and tokens.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The app id tokens are addressed to.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The signing key's id (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document that holds the signing key, as the identity platform serves it.
    pub fn jwks(&self) -> Vec<u8> {
        let public = self.signing_key.to_public_key();
        serde_json::to_vec(&json!({"keys": [{
            "kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "alg": "RS256",
            "n": B64URL.encode(public.n().to_bytes_be()),
            "e": B64URL.encode(public.e().to_bytes_be()),
        }]}))
        .expect("JSON")
    }

    /// The header of the tokens this simulator signs.
    pub fn header(&self) -> Value {
        json!({"typ": "JWT", "alg": "RS256", "kid": self.kid, "x5t": self.kid})
    }

    /// Claims of a v1 token issued at `now`, valid for an hour.
    pub fn claims_v1(&self, now: SystemTime) -> Value {
        claims_v1(&self.app_id, &self.tenant_id, now)
    }

    /// Claims of a v2 token issued at `now`, valid for an hour.
    pub fn claims_v2(&self, now: SystemTime) -> Value {
        claims_v2(&self.app_id, &self.tenant_id, now)
    }

    /// A v1 validation token issued at `now`.
    pub fn token(&self, now: SystemTime) -> String {
        self.sign(&self.header(), &self.claims_v1(now))
    }

    /// A v2 validation token issued at `now`.
    pub fn token_v2(&self, now: SystemTime) -> String {
        self.sign(&self.header(), &self.claims_v2(now))
    }

    /// The Microsoft Entra access token Event Grid sends as `Authorization: Bearer ...` to a
    /// protected webhook, issued at `now` for the simulator's app and tenant: a v2 token whose
    /// client (`azp`) is Event Grid's service principal, signed with the same JWKS key.
    pub fn event_grid_bearer(&self, now: SystemTime) -> String {
        let mut claims = self.claims_v2(now);
        claims["azp"] = json!(crate::tokens::EVENT_GRID_APP_ID);
        claims["roles"] = json!(["AzureEventGridSecureWebhookSubscriber"]);
        self.sign(&self.header(), &claims)
    }

    /// A token with any header and claims, signed RS256 with the simulator's key.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_input(&signing_input(header, claims))
    }

    /// Signs an arbitrary signing input (`header.claims` in base64url) RS256.
    pub fn sign_input(&self, input: &str) -> String {
        let digest = Sha256::digest(input.as_bytes());
        let signature = self
            .signing_key
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .expect("RSA signing");
        format!("{input}.{}", B64URL.encode(signature))
    }

    /// `encryptedContent` for `plaintext`, as Graph makes it.
    pub fn encrypt(
        &self,
        recipient: Recipient<'_>,
        certificate_id: &str,
        plaintext: &[u8],
    ) -> Value {
        self.encrypt_with(recipient, certificate_id, plaintext, &Encryption::default())
    }

    /// [`encrypt`](Self::encrypt) with the knobs of [`Encryption`].
    pub fn encrypt_with(
        &self,
        recipient: Recipient<'_>,
        certificate_id: &str,
        plaintext: &[u8],
        how: &Encryption,
    ) -> Value {
        encrypt_with(recipient, certificate_id, plaintext, how)
    }

    /// A notification with resource data for `resource_json` (a chat or chatMessage), with
    /// `resource` and `resourceData` named the way Graph names them.
    pub fn notification(
        &self,
        resource_json: &str,
        recipient: Recipient<'_>,
        certificate_id: &str,
        change: impl Into<EnumValue<'static, ChangeType>>,
    ) -> Value {
        let mut n = self.notification_without_data(resource_json, change);
        n["encryptedContent"] = self.encrypt(recipient, certificate_id, resource_json.as_bytes());
        n
    }

    /// A notification without resource data about `resource_json`.
    pub fn notification_without_data(
        &self,
        resource_json: &str,
        change: impl Into<EnumValue<'static, ChangeType>>,
    ) -> Value {
        let payload: Value = serde_json::from_str(resource_json).unwrap_or(Value::Null);
        let (resource, odata_type) = resource_path_for(&payload);
        json!({
            "subscriptionId": "3e4d6a0c-1f2b-4c5d-8e9f-0a1b2c3d4e5f",
            "changeType": change.into().as_str(),
            "clientState": self.client_state,
            "subscriptionExpirationDateTime": "2099-01-01T00:00:00.0000000+00:00",
            "resource": resource,
            "resourceData": {"id": payload.get("id").cloned().unwrap_or(Value::Null), "@odata.type": odata_type, "@odata.id": resource},
            "tenantId": self.tenant_id,
        })
    }

    /// A lifecycle notification (`EnumValue::new("brandNewEvent")` for an event newer than the
    /// crate).
    pub fn lifecycle(
        &self,
        subscription_id: &str,
        event: impl Into<EnumValue<'static, LifecycleEvent>>,
    ) -> Value {
        let event = event.into();
        let event = event.as_str();
        json!({
            "subscriptionId": subscription_id,
            "subscriptionExpirationDateTime": "2099-01-01T00:00:00.0000000+00:00",
            "tenantId": self.tenant_id,
            "clientState": self.client_state,
            "lifecycleEvent": event,
        })
    }

    /// Graph's validation message, which it drops into an Event Hub when a subscription is
    /// created there: every field `"NA"`, the `changeType` a sentence.
    pub fn event_hubs_validation_message(&self) -> Value {
        json!({
            "subscriptionId": "NA",
            "subscriptionExpirationDateTime": "NA",
            "clientState": "NA",
            "changeType": "Validation: Testing client application reachability for subscription Request-Id: 1b6e2a8c-8f3c-4c0e-9d0e-6b1f5c9a7d21",
            "resource": "NA",
            "resourceData": {"@odata.type": "NA", "@odata.id": "NA", "id": "NA"},
        })
    }

    /// An Event Hubs message body, as Graph sends it: the collection without
    /// `validationTokens`, after the validation message.
    pub fn event_hubs_body(&self, items: &[Value]) -> Vec<u8> {
        let mut all = vec![self.event_hubs_validation_message()];
        all.extend_from_slice(items);
        self.collection(&all, &[])
    }

    /// One notification as Event Grid delivers it from a Graph partner topic: a CloudEvents 1.0
    /// envelope (structured mode) whose `data` is the notification. The type is
    /// `Microsoft.Graph.{Chat|ChatMessage}{Created|Updated|Deleted}`, or
    /// `Microsoft.Graph.Subscription{Event}` for lifecycle notifications.
    pub fn cloud_event(&self, item: &Value) -> Value {
        let upper_first = |s: &str| {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        };
        let event_type = match item.get("lifecycleEvent").and_then(Value::as_str) {
            Some(event) => format!("Microsoft.Graph.Subscription{}", upper_first(event)),
            None => {
                let resource = item.get("resource").and_then(Value::as_str).unwrap_or("");
                let kind = if resource.contains("messages(") {
                    "ChatMessage"
                } else {
                    "Chat"
                };
                let change = item
                    .get("changeType")
                    .and_then(Value::as_str)
                    .unwrap_or("created");
                format!("Microsoft.Graph.{kind}{}", upper_first(change))
            }
        };
        let tenant = item
            .get("tenantId")
            .and_then(Value::as_str)
            .unwrap_or(&self.tenant_id);
        // A distinct id per distinct notification, without any state.
        let digest = {
            use sha2::Digest as _;
            sha2::Sha256::digest(serde_json::to_vec(item).expect("JSON"))
        };
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        json!({
            "specversion": "1.0",
            "type": event_type,
            "source": format!("/tenants/{tenant}/applications/{}", self.app_id),
            "subject": item.get("resource").cloned().unwrap_or(Value::Null),
            "id": format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]),
            "time": "2026-11-26T07:00:00.000000Z",
            "datacontenttype": "application/json",
            "data": item,
        })
    }

    /// A batch of CloudEvents as Event Grid POSTs it (`application/cloudevents-batch+json`): a
    /// JSON array, one event per notification.
    pub fn cloud_events(&self, items: &[Value]) -> Vec<u8> {
        let events: Vec<Value> = items.iter().map(|i| self.cloud_event(i)).collect();
        serde_json::to_vec(&events).expect("JSON")
    }

    /// A notification collection: `{"value": [...], "validationTokens": [...]}` (tokens left out
    /// when there are none), as bytes to POST.
    pub fn collection(&self, items: &[Value], tokens: &[String]) -> Vec<u8> {
        let mut body = json!({"value": items});
        if !tokens.is_empty() {
            body["validationTokens"] = json!(tokens);
        }
        serde_json::to_vec(&body).expect("JSON")
    }
}

/// `encryptedContent` for `plaintext` as Graph makes it, with the knobs of [`Encryption`] (the
/// default is what Graph does). Needs no simulator: encryption uses only the recipient's public
/// key.
pub fn encrypt_with(
    recipient: Recipient<'_>,
    certificate_id: &str,
    plaintext: &[u8],
    how: &Encryption,
) -> Value {
    let key = how.symmetric_key.clone().unwrap_or_else(|| {
        let mut k = vec![0u8; 32];
        OsRng.fill_bytes(&mut k);
        k
    });
    let mut aes_key = [0u8; 32];
    let n = key.len().min(32);
    aes_key[..n].copy_from_slice(&key[..n]);
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&aes_key[..16]);
    let encryptor = cbc::Encryptor::<aes::Aes256>::new(&aes_key.into(), &iv.into());
    let ciphertext = if how.no_padding {
        let mut buf = plaintext.to_vec();
        let len = buf.len();
        encryptor
            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
            .expect("unpadded plaintext must be a multiple of 16 bytes");
        buf
    } else {
        encryptor.encrypt_padded_vec_mut::<Pkcs7>(plaintext)
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&aes_key).expect("HMAC takes any key");
    mac.update(&ciphertext);
    let wrapped = recipient
        .public_key()
        .encrypt(&mut OsRng, Oaep::new::<sha1::Sha1>(), &key)
        .expect("RSA-OAEP encryption");
    let mut content = json!({
        "data": B64.encode(&ciphertext),
        "dataSignature": B64.encode(mac.finalize().into_bytes()),
        "dataKey": B64.encode(wrapped),
        "encryptionCertificateId": certificate_id,
    });
    if let Some(t) = recipient.thumbprint() {
        content["encryptionCertificateThumbprint"] = t.into();
    }
    content
}

/// Claims of a v1 validation token for `app_id` from `tenant_id`, issued at `now`, valid for an
/// hour: what the identity platform puts in one.
pub fn claims_v1(app_id: &str, tenant_id: &str, now: SystemTime) -> Value {
    let now = unix(now);
    json!({
        "aud": app_id, "iss": format!("https://sts.windows.net/{tenant_id}/"),
        "iat": now - 5, "nbf": now - 5, "exp": now + 3600,
        "appid": GRAPH_CHANGE_TRACKING_APP_ID, "azp": GRAPH_CHANGE_TRACKING_APP_ID,
        "appidacr": "2", "azpacr": "2", "tid": tenant_id, "ver": "1.0",
    })
}

/// Claims of a v2 validation token (`azp` only, the v2 issuer).
pub fn claims_v2(app_id: &str, tenant_id: &str, now: SystemTime) -> Value {
    let now = unix(now);
    json!({
        "aud": app_id, "iss": format!("https://login.microsoftonline.com/{tenant_id}/v2.0"),
        "iat": now - 5, "nbf": now - 5, "exp": now + 3600,
        "azp": GRAPH_CHANGE_TRACKING_APP_ID, "azpacr": "2", "tid": tenant_id, "ver": "2.0",
    })
}

/// `base64url(header).base64url(claims)`: what a JWT signature covers.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        B64URL.encode(serde_json::to_vec(header).expect("JSON")),
        B64URL.encode(serde_json::to_vec(claims).expect("JSON"))
    )
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `(resource, @odata.type)` for a chat or chatMessage, as Graph names them.
fn resource_path_for(payload: &Value) -> (String, &'static str) {
    let s = |k: &str| payload.get(k).and_then(Value::as_str).unwrap_or("");
    let id = s("id");
    if payload.get("chatType").is_some()
        || payload.get("viewpoint").is_some()
        || id.starts_with("19:")
    {
        return (format!("chats('{id}')"), "#microsoft.graph.chat");
    }
    let path = match payload.get("channelIdentity").filter(|c| c.is_object()) {
        Some(ci) => {
            let team = ci.get("teamId").and_then(Value::as_str).unwrap_or("");
            let channel = ci.get("channelId").and_then(Value::as_str).unwrap_or("");
            match payload.get("replyToId").and_then(Value::as_str) {
                Some(parent) => format!(
                    "teams('{team}')/channels('{channel}')/messages('{parent}')/replies('{id}')"
                ),
                None => format!("teams('{team}')/channels('{channel}')/messages('{id}')"),
            }
        }
        None => format!("chats('{}')/messages('{id}')", s("chatId")),
    };
    (path, "#Microsoft.Graph.chatMessage")
}

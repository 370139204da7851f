//! Admission: what a webhook stores before it answers 2xx. The checks that need no private key
//! run on the request path ([`Batch::admit`](super::Batch::admit)); what passed becomes a
//! record that a worker opens later ([`Receiver::dangerous_open_admitted`](super::Receiver)),
//! without depending on signing keys or a configuration that may have changed in between.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{BodyError, ChangeNotification, CloudEvent, Envelope};
use crate::error::ItemError;

/// The format marker and version of a record; a record without it is refused.
const RECORD_VERSION: u32 = 1;

/// What admission made of a batch: the record to store (the admitted notifications), and the
/// notifications it refused, each with the error that names its field.
///
/// Store the record only when something was admitted ([`is_empty`](Self::is_empty) is false):
/// a body whose every notification was refused is not worth a disk sync. `Debug` shows counts.
#[derive(Clone, PartialEq, Eq)]
pub struct Admission {
    record: Vec<u8>,
    admitted: usize,
    refused: Vec<ItemError>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("record_bytes", &self.record.len())
            .field("admitted", &self.admitted)
            .field("refused", &self.refused)
            .finish()
    }
}

impl Admission {
    pub(super) fn new(admitted: &[&ChangeNotification<'_>], refused: Vec<ItemError>) -> Self {
        let record = RecordOut {
            version: RECORD_VERSION,
            items: admitted.iter().map(|n| ItemOut::of(n)).collect(),
        };
        Self {
            // Strings, raw JSON values and integers only: serializing cannot fail.
            record: serde_json::to_vec(&record).expect("an admission record serializes"),
            admitted: admitted.len(),
            refused,
        }
    }

    /// The record, as bytes to store.
    pub fn record(&self) -> &[u8] {
        &self.record
    }

    /// The record, taken out.
    pub fn into_record(self) -> Vec<u8> {
        self.record
    }

    /// How many notifications were admitted.
    pub fn admitted(&self) -> usize {
        self.admitted
    }

    /// The notifications refused, in body order.
    pub fn refused(&self) -> &[ItemError] {
        &self.refused
    }

    /// Whether nothing was admitted (an empty `value`, or every notification refused).
    pub fn is_empty(&self) -> bool {
        self.admitted == 0
    }
}

#[derive(Serialize)]
struct RecordOut<'n> {
    #[serde(rename = "admissionRecord")]
    version: u32,
    items: Vec<ItemOut<'n>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemOut<'n> {
    index: usize,
    notification: Known<'n>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud_event: Option<&'n CloudEvent<'n>>,
}

/// A notification's known members, without `clientState`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Known<'n> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'n str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_id: Option<&'n str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_expiration_date_time: Option<&'n str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    change_type: Option<&'n str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'n str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_data: Option<&'n RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<&'n str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifecycle_event: Option<&'n str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encrypted_content: Option<Sealed<'n>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Sealed<'n> {
    data: &'n str,
    data_key: &'n str,
    data_signature: &'n str,
    encryption_certificate_id: &'n str,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_certificate_thumbprint: Option<&'n str>,
}

impl<'n> ItemOut<'n> {
    fn of(n: &'n ChangeNotification<'n>) -> Self {
        Self {
            index: n.index,
            notification: Known {
                id: n.id.as_deref(),
                subscription_id: n.subscription_id.as_deref(),
                subscription_expiration_date_time: n.subscription_expiration_date_time.as_deref(),
                change_type: n.change_type.as_deref(),
                resource: n.resource.as_deref(),
                resource_data: n.resource_data,
                tenant_id: n.tenant_id.as_deref(),
                lifecycle_event: n.lifecycle_event.as_deref(),
                encrypted_content: n.encrypted_content.as_ref().map(|c| Sealed {
                    data: &c.data,
                    data_key: &c.data_key,
                    data_signature: &c.data_signature,
                    encryption_certificate_id: &c.encryption_certificate_id,
                    encryption_certificate_thumbprint: c
                        .encryption_certificate_thumbprint
                        .as_deref(),
                }),
            },
            cloud_event: n.cloud_event.as_ref(),
        }
    }
}

#[derive(Deserialize)]
struct RecordIn<'a> {
    #[serde(rename = "admissionRecord")]
    version: u32,
    #[serde(borrow)]
    items: Vec<ItemIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemIn<'a> {
    index: usize,
    #[serde(borrow)]
    notification: &'a RawValue,
    #[serde(default)]
    cloud_event: Option<CloudEvent<'static>>,
}

/// The envelope of an admission record: its notifications at their original indexes.
pub(super) fn read_record(record: &[u8]) -> Result<Envelope<'_>, BodyError> {
    let parsed: RecordIn<'_> =
        serde_json::from_slice(record).map_err(|_| BodyError::NotARecord {
            reason: "not the JSON of an admission record",
        })?;
    if parsed.version != RECORD_VERSION {
        return Err(BodyError::NotARecord {
            reason: "a record version this crate does not read",
        });
    }
    let items = parsed
        .items
        .into_iter()
        .map(|item| {
            ChangeNotification::parse(item.index, item.notification).map(|mut n| {
                n.cloud_event = item.cloud_event;
                n
            })
        })
        .collect();
    Ok(Envelope::from_items(items))
}

#[cfg(test)]
mod tests {
    use crate::inbound::Receiver;
    use std::time::SystemTime;

    fn receiver() -> Receiver {
        Receiver::builder()
            .client_state("right")
            .allowed_tenants(["t1"])
            .dangerous_skip_token_validation()
            .build()
            .unwrap()
    }

    #[test]
    fn only_what_passed_is_recorded_without_client_state_or_padding() {
        let body = br#"{"pad":"PADDING-PADDING","value":[
            {"subscriptionId":"s","changeType":"updated","resource":"chats('a')","clientState":"right","tenantId":"t1","resourceData":{"id":"a"},"extra":"UNKNOWN-MEMBER"},
            {"subscriptionId":"s","changeType":"updated","clientState":"wrong","tenantId":"t1"},
            {"subscriptionId":"s","changeType":"updated","clientState":"right","tenantId":"t2"},
            {"subscriptionId":7}
        ]}"#;
        let receiver = receiver();
        let admission = receiver.receive(body, SystemTime::now()).unwrap().admit();
        assert_eq!(admission.admitted(), 1);
        let refused: Vec<(usize, &str, &str)> = admission
            .refused()
            .iter()
            .map(|e| (e.index(), e.field(), e.kind().code()))
            .collect();
        assert_eq!(
            refused,
            [
                (1, "clientState", "clientStateMismatch"),
                (2, "tenantId", "tenantNotAllowed"),
                (3, "subscriptionId", "wrongType"),
            ]
        );
        let text = std::str::from_utf8(admission.record()).unwrap();
        for absent in ["PADDING", "UNKNOWN-MEMBER", "right", "clientState"] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
        let batch = receiver
            .dangerous_open_admitted(admission.record())
            .unwrap();
        let mut buf = crate::crypto::DecryptBuffer::new();
        let mut seen = Vec::new();
        batch.open_each(&mut buf, |opened| {
            let opened = opened.unwrap();
            seen.push((opened.notification.index, format!("{:?}", opened.payload)));
        });
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, 0, "the original index is kept");
    }

    #[test]
    fn a_body_with_nothing_admitted_is_empty() {
        let receiver = receiver();
        for body in [
            &br#"{"value":[],"pad":"xxxxxxxxxxxxxxxx"}"#[..],
            br#"{"value":[{"subscriptionId":"s","clientState":"wrong","tenantId":"t1"}]}"#,
        ] {
            let admission = receiver.receive(body, SystemTime::now()).unwrap().admit();
            assert!(admission.is_empty(), "{admission:?}");
        }
    }

    #[test]
    fn bytes_that_are_not_a_record_are_refused() {
        let receiver = receiver();
        for bytes in [
            &b""[..],
            b"{\"value\":[]}",
            b"{\"admissionRecord\":2,\"items\":[]}",
            b"[1,2]",
        ] {
            assert_eq!(
                receiver.dangerous_open_admitted(bytes).unwrap_err().code(),
                "notARecord"
            );
        }
    }

    #[test]
    fn cloud_event_sources_must_name_the_tenant() {
        let receiver = Receiver::builder()
            .client_state("right")
            .allowed_tenants(["t1"])
            .delivery(crate::inbound::Delivery::EventGrid)
            .build()
            .unwrap();
        let event = |source: &str| {
            format!(
                r#"{{"specversion":"1.0","type":"Microsoft.Graph.ChatMessageUpdated","source":"{source}","id":"e","data":{{"subscriptionId":"s","changeType":"updated","clientState":"right","tenantId":"t1"}}}}"#
            )
        };
        let body = format!(
            "[{},{}]",
            event("/tenants/T1/applications/a"),
            event("/tenants/t9/applications/a")
        );
        let admission = receiver
            .receive(body.as_bytes(), SystemTime::now())
            .unwrap()
            .admit();
        assert_eq!(admission.admitted(), 1);
        assert_eq!(admission.refused()[0].field(), "source");
        // The CloudEvent's attributes survive the record.
        let batch = receiver
            .dangerous_open_admitted(admission.record())
            .unwrap();
        let first = batch.notifications()[0].as_ref().unwrap();
        assert_eq!(
            first.cloud_event.as_ref().unwrap().event_type,
            "Microsoft.Graph.ChatMessageUpdated"
        );
    }
}

//! Event Grid delivery: CloudEvents 1.0 from a Microsoft Graph partner topic, one event or a
//! JSON array of them (structured and batch modes), each event's `data` one change notification.

use serde_json::value::RawValue;

use super::envelope::{checked_text, syntax_error, Fields};
use super::BodyError;
use super::{ChangeNotification, CloudEvent, Envelope, Limits};
use crate::error::{ItemError, ItemErrorKind};
use crate::json::{self, Kind};

const EVENT_FIELDS: [&str; 7] = [
    "specversion",
    "type",
    "source",
    "id",
    "subject",
    "time",
    "data",
];
const DATA: usize = 6;

impl<'a> Envelope<'a> {
    /// Parses what Event Grid POSTs: one CloudEvent (`application/cloudevents+json`) or a JSON
    /// array of them (`application/cloudevents-batch+json`). Each event becomes one notification
    /// at the event's position, with its attributes in
    /// [`ChangeNotification::cloud_event`]; an event that is malformed fails alone. The body
    /// limits apply as for a webhook POST (the event count against `max_items`).
    ///
    /// ```
    /// use graph_chat_notifications::inbound::{Envelope, Limits};
    /// let body = br#"[{"specversion":"1.0","type":"Microsoft.Graph.ChatMessageCreated",
    ///   "source":"/tenants/t/applications/a","id":"e1","subject":"chats('19:a@thread.v2')/messages('1')",
    ///   "data":{"subscriptionId":"s","changeType":"created","resource":"chats('19:a@thread.v2')/messages('1')"}},
    ///  {"specversion":"1.0","type":"x","source":"y","id":"e2"}]"#;
    /// let envelope = Envelope::parse_cloud_events(body, &Limits::default())?;
    /// let first = envelope.items()[0].as_ref().unwrap();
    /// assert_eq!(first.cloud_event.as_ref().unwrap().event_type, "Microsoft.Graph.ChatMessageCreated");
    /// assert_eq!(first.change_type.as_deref(), Some("created"));
    /// assert_eq!(envelope.items()[1].as_ref().unwrap_err().to_string(), "notification 1: data: missing");
    /// # Ok::<(), graph_chat_notifications::BodyError>(())
    /// ```
    pub fn parse_cloud_events(body: &'a [u8], limits: &Limits) -> Result<Self, BodyError> {
        let text = checked_text(body, limits)?;
        let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r']);
        let mut items = Vec::new();
        match trimmed.as_bytes().first() {
            Some(b'[') => {
                json::for_each_element(text, |raw| {
                    if items.len() == limits.max_items() {
                        return Err(BodyError::TooManyItems {
                            limit: limits.max_items(),
                        });
                    }
                    items.push(parse_event(items.len(), raw));
                    Ok(())
                })
                .map_err(|e| match e {
                    json::Walk::Stopped(e) => e,
                    json::Walk::Shape(e) => syntax_error(&e),
                })?;
            }
            Some(b'{') => {
                let raw: &'a RawValue = serde_json::from_str(text).map_err(|e| syntax_error(&e))?;
                if is_collection(raw) {
                    return Err(BodyError::NotCloudEvents {
                        reason: "it is a notification collection (is the receiver set to the \
                                 right delivery channel?)",
                    });
                }
                items.push(parse_event(0, raw));
            }
            _ => {
                serde_json::from_str::<&RawValue>(text).map_err(|e| syntax_error(&e))?;
                return Err(BodyError::NotCloudEvents {
                    reason: "neither an object nor an array",
                });
            }
        }
        Ok(Self::from_items(items))
    }
}

/// Whether an object is a webhook's notification collection (a `value` member, no
/// `specversion`).
fn is_collection(raw: &RawValue) -> bool {
    let (mut value, mut specversion) = (false, false);
    let _ = json::for_each_member(raw.get(), |k, _| {
        value |= k.eq_ignore_ascii_case("value");
        specversion |= k.eq_ignore_ascii_case("specversion");
        Ok::<(), ()>(())
    });
    value && !specversion
}

fn parse_event<'a>(index: usize, raw: &'a RawValue) -> Result<ChangeNotification<'a>, ItemError> {
    let err = |field, kind| ItemError::new(index, field, kind);
    let mut fields = Fields::new(&EVENT_FIELDS);
    fields
        .collect(raw, "", "a CloudEvent object")
        .map_err(|(f, k)| err(f, k))?;
    let s = |i: usize| fields.string(i).map_err(|(f, k)| err(f, k));
    let required = |i: usize| s(i)?.ok_or_else(|| err(EVENT_FIELDS[i], ItemErrorKind::Missing));
    if required(0)? != "1.0" {
        return Err(err(
            "specversion",
            ItemErrorKind::WrongType {
                expected: "\"1.0\"",
            },
        ));
    }
    let event = CloudEvent {
        event_type: required(1)?,
        source: required(2)?,
        id: required(3)?,
        subject: s(4)?,
        time: s(5)?,
    };
    let data = fields
        .get(DATA)
        .ok_or_else(|| err("data", ItemErrorKind::Missing))?;
    if json::kind(data) != Kind::Object {
        return Err(err(
            "data",
            ItemErrorKind::WrongType {
                expected: "a change notification object",
            },
        ));
    }
    let mut notification = ChangeNotification::parse(index, data)?;
    notification.cloud_event = Some(event);
    Ok(notification)
}

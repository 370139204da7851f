//! Prints every documented subscription request for Teams chats and chat messages, plus renewal,
//! reauthorization, deletion, the Teams-embedding guide's resync reads (step 4 and step 9) and
//! the subscription list, as a JSON array of `{"name", "method", "url", "body"}` (`body` is
//! `null` for a GET or a request without one).
//!
//! ```text
//! cargo run --example subscriptions
//! ```
//!
//! The values are the Graph docs' own placeholders (`{id}`, `{customId}`, `{secretClientState}`)
//! and their time, 2019-09-19T10:00:00Z plus one hour; the certificate is a test fixture.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use graph_chat_notifications::outbound::ChangeType::{self, Created, Deleted, Updated};
use graph_chat_notifications::outbound::{
    self, HttpRequest, MessagesRequest, Model, OrderBy, Resource, SubscriptionError,
    SubscriptionRequest,
};
use serde_json::{json, Value};

const URL: &str = "https://webhook.azurewebsites.net/api/resourceNotifications";
const USER: &str = "9a6eb4d1-826b-48b1-9627-b50836c8fee9";

struct Scenario {
    name: &'static str,
    resource: Resource,
    changes: &'static [ChangeType],
    resource_data: bool,
    options: fn(SubscriptionRequest) -> SubscriptionRequest,
}

fn plain(r: SubscriptionRequest) -> SubscriptionRequest {
    r
}

fn scenarios() -> Vec<Scenario> {
    const U: &[ChangeType] = &[Updated];
    const CU: &[ChangeType] = &[Created, Updated];
    const CUD: &[ChangeType] = &[Created, Updated, Deleted];
    let s = |name, resource, changes, resource_data, options| Scenario {
        name,
        resource,
        changes,
        resource_data,
        options,
    };
    vec![
        s(
            "chats in the tenant",
            Resource::all_chats(),
            CU,
            true,
            plain,
        ),
        s("a particular chat", Resource::chat("{id}"), U, true, plain),
        s(
            "a particular chat, user-specific properties",
            Resource::chat("{id}"),
            CU,
            true,
            |r| r.user_specific_properties(),
        ),
        s(
            "chats a user is part of",
            Resource::user_chats("{id}"),
            CU,
            true,
            plain,
        ),
        s(
            "chats a user is part of, user-specific properties",
            Resource::user_chats("{id}"),
            CU,
            true,
            |r| r.user_specific_properties(),
        ),
        s(
            "chats a user is part of, model B",
            Resource::user_chats("{id}"),
            CU,
            true,
            |r| r.model(Model::B),
        ),
        s(
            "chats of the signed-in user",
            Resource::my_chats(),
            CU,
            true,
            plain,
        ),
        s(
            "chats an app is installed in",
            Resource::app_installed_chats("{id}"),
            CU,
            true,
            plain,
        ),
        s(
            "messages across channels",
            Resource::all_channel_messages(),
            CU,
            true,
            plain,
        ),
        s(
            "messages across channels, model A",
            Resource::all_channel_messages(),
            CU,
            true,
            |r| r.model(Model::A),
        ),
        s(
            "messages across chats",
            Resource::all_chat_messages(),
            CUD,
            true,
            plain,
        ),
        s(
            "messages across chats, model B",
            Resource::all_chat_messages(),
            CUD,
            true,
            |r| r.model(Model::B),
        ),
        s(
            "messages in a channel",
            Resource::channel_messages("{id}", "{id}"),
            CU,
            true,
            plain,
        ),
        s(
            "messages in a channel containing Hello",
            Resource::channel_messages("{id}", "{id}"),
            CU,
            true,
            |r| r.search("Hello"),
        ),
        s(
            "messages in a channel, without resource data",
            Resource::channel_messages("{id}", "{id}"),
            CU,
            false,
            plain,
        ),
        s(
            "messages in a channel mentioning a user",
            Resource::channel_messages("{id}", "{id}"),
            CU,
            false,
            |r| r.mentions(USER),
        ),
        s(
            "messages in a chat",
            Resource::chat_messages("{id}"),
            CU,
            true,
            plain,
        ),
        s(
            "messages in a chat containing Hello",
            Resource::chat_messages("{id}"),
            CU,
            true,
            |r| r.search("Hello"),
        ),
        s(
            "messages in a chat, without resource data",
            Resource::chat_messages("{id}"),
            CU,
            false,
            plain,
        ),
        s(
            "messages in a chat mentioning a user",
            Resource::chat_messages("{id}"),
            CU,
            false,
            |r| r.mentions(USER),
        ),
        s(
            "messages in chats a user is part of",
            Resource::user_chat_messages("{id}"),
            CUD,
            true,
            plain,
        ),
        s(
            "messages in chats a user is part of, model B",
            Resource::user_chat_messages("{id}"),
            CUD,
            true,
            |r| r.model(Model::B),
        ),
        s(
            "messages in chats an app is installed in",
            Resource::app_installed_chat_messages("{id}"),
            CU,
            true,
            plain,
        ),
    ]
}

fn entry(name: &str, request: &HttpRequest) -> Value {
    let body = request
        .body
        .as_deref()
        .map(|b| serde_json::from_slice::<Value>(b).expect("request bodies are JSON"))
        .unwrap_or(Value::Null);
    json!({"name": name, "method": request.method.as_str(), "url": request.url, "body": body})
}

fn main() -> Result<(), SubscriptionError> {
    // The docs' time: requests expire an hour later, at 2019-09-19T11:00:00Z.
    let now: SystemTime = UNIX_EPOCH + Duration::from_secs(1_568_887_200);
    let hour = Duration::from_secs(3600);
    let certificate = include_bytes!("../tests/fixtures/keys/rsa2048/cert.der");

    let mut out = Vec::new();
    for s in scenarios() {
        let mut builder = SubscriptionRequest::builder(s.resource, URL)
            .change_types(s.changes.iter().cloned())
            .expires_in(now, hour)
            .client_state("{secretClientState}");
        if s.resource_data {
            builder = builder.include_resource_data(certificate.as_slice(), "{customId}");
        }
        out.push(entry(s.name, &(s.options)(builder).build()?));
    }
    // Three days, the maximum: past one hour Graph needs a lifecycle URL.
    let long = SubscriptionRequest::builder(Resource::all_chat_messages(), URL)
        .change_types([Created, Updated, Deleted])
        .lifecycle_url("https://webhook.azurewebsites.net/api/lifecycleNotifications")
        .include_resource_data(certificate.as_slice(), "{customId}")
        .expires_in(now, Duration::from_secs(4_320 * 60))
        .client_state("{secretClientState}")
        .build()?;
    out.push(entry(
        "messages across chats for 4320 minutes, with lifecycle notifications",
        &long,
    ));

    let id = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07";
    out.push(entry("renew", &outbound::renew(id, now, hour)?));
    out.push(entry(
        "renew with a new certificate",
        &outbound::renew_with_certificate(id, now, hour, certificate, "{newCustomId}")?,
    ));
    out.push(entry("reauthorize", &outbound::reauthorize(id)?));
    out.push(entry("delete", &outbound::delete(id)?));
    // The Teams-embedding guide's resync reads: step 4 (messages of a user's chat, changed since
    // a time, newest first) and step 9 (the chat with the user's viewpoint).
    let user = "87d349ed-44d7-43e1-9a83-5f2406dee5bd";
    let chat = "19:b1234aaa12345a123aa12aa12aaaa1a9@thread.v2";
    out.push(entry(
        "resync: messages in a user's chat (Teams-embedding guide, step 4)",
        &MessagesRequest::user_chat(user, chat)
            .top(2)
            .modified_after("2021-03-17T07:13:28.000z")
            .order_by(OrderBy::CreatedDesc)
            .build()?,
    ));
    out.push(entry(
        "resync: a user's chat and its viewpoint (Teams-embedding guide, step 9)",
        &outbound::get_user_chat(user, chat)?,
    ));
    out.push(entry(
        "the subscriptions the app holds",
        &outbound::list_subscriptions(),
    ));

    println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
    Ok(())
}

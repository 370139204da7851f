//! Prints every documented request the crate builds, as a JSON array of `{"name", "method",
//! "url", "body"}` (`body` is `null` for a GET or a request without one): each subscription
//! request for Teams chats and chat messages, renewal, reauthorization, deletion, the
//! Teams-embedding guide's calls (create a chat, send a message: steps 2 and 3; the resync reads:
//! steps 4 and 9), the subscription list, and the chat and message calls of Graph's API pages
//! (create, get and list chats, list members, send, edit, soft-delete and restore a message,
//! reactions, read/unread, hide/unhide, an inline image's bytes).
//!
//! ```text
//! cargo run --example requests
//! ```
//!
//! The values are the Graph docs' own placeholders and ids (`{id}`, `{customId}`,
//! `{secretClientState}`) and their time, 2019-09-19T10:00:00Z plus one hour; the certificate is
//! a test fixture.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use graph_chat_notifications::model::ChangeType::{self, Created, Deleted, Updated};
use graph_chat_notifications::outbound::{
    self, ChatMember, ChatsRequest, CreateChat, HttpRequest, MarkChatUnread, MessageRequest,
    MessagesRequest, Model, OrderBy, RequestError, Resource, SubscriptionRequest,
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

fn main() -> Result<(), RequestError> {
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

    chats_and_messages(&mut out)?;

    println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
    Ok(())
}

/// The chat and message calls: the Teams-embedding guide's steps 2 and 3, then each API page's
/// example, with the page's own ids.
fn chats_and_messages(out: &mut Vec<Value>) -> Result<(), RequestError> {
    let owner = ChatMember::owner;
    out.push(entry(
        "create a chat (Teams-embedding guide, step 2)",
        &CreateChat::group([
            owner("adams@contoso.com"),
            owner("gradyA@contoso.com"),
            owner("4562bcc8-c436-4f95-b7c0-4f8ce89dca5e"),
        ])
        .build()?,
    ));
    out.push(entry(
        "send a message (Teams-embedding guide, step 3)",
        &MessageRequest::send(
            "19:b1234aaa12345a123aa12aa12aaaa1a9@thread.v2",
            "Hello World",
        )
        .build()?,
    ));
    out.push(entry(
        "create a one-on-one chat",
        &CreateChat::one_on_one(
            owner("8b081ef6-4792-4def-b2c9-c363a1bf41d5"),
            owner("82af01c5-f7cc-4a2e-a728-3a5df21afd9d"),
        )
        .build()?,
    ));
    out.push(entry(
        "create a group chat",
        &CreateChat::group([
            owner("8c0a1a67-50ce-4114-bb6c-da9c5dbcf6ca"),
            owner("82fe7758-5bb3-4f0d-a43f-e555fd399c6f"),
            owner("3626a173-f2bc-4883-bcf7-01514c3bfb82"),
        ])
        .topic("Group chat title")
        .build()?,
    ));
    out.push(entry(
        "create a one-on-one chat by user principal name",
        &CreateChat::one_on_one(
            owner("john.doe@microsoft.com"),
            owner("alex.weber@microsoft.com"),
        )
        .build()?,
    ));
    out.push(entry(
        "get a chat",
        &outbound::get_chat("19:b8577894a63548969c5c92bb9c80c5e1@thread.v2")?,
    ));
    let user = "8b081ef6-4792-4def-b2c9-c363a1bf41d5";
    out.push(entry(
        "list a user's chats",
        &ChatsRequest::user(user).build()?,
    ));
    out.push(entry(
        "list a user's chats with their members",
        &ChatsRequest::user(user).expand_members().build()?,
    ));
    out.push(entry(
        "list the signed-in user's chats, newest message first",
        &ChatsRequest::mine()
            .expand_last_message_preview()
            .order_by_last_message()
            .top(50)
            .build()?,
    ));
    out.push(entry(
        "list the members of a chat",
        &ChatsRequest::my_chat_members(
            "19:8b081ef6-4792-4def-b2c9-c363a1bf41d5_5031bb31-22c0-4f6f-9f73-91d34ab2b32d@unq.gbl.spaces",
        )
        .build()?,
    ));
    let chat = "19:2da4c29f6d7041eca70b638b43d45437@thread.v2";
    out.push(entry(
        "send a message in a chat",
        &MessageRequest::send(chat, "Hello world").build()?,
    ));
    out.push(entry(
        "send a message mentioning a user, in a chat",
        &MessageRequest::send(chat, "Hello World <at id=\"0\">Jane Smith</at>")
            .html()
            .mention(
                0,
                "Jane Smith",
                "ef1c916a-3135-4417-ba27-8eb7bd084193",
                "Jane Smith",
            )
            .build()?,
    ));
    // The page's example 5, with its own image (referenced by its temporary id).
    let png: &[u8] = include_bytes!("../tests/fixtures/documented/inline-image.png");
    out.push(entry(
        "send a message with an inline image, in a chat",
        &MessageRequest::send(
            chat,
            "<div><div>\n<div><span><img height=\"297\" src=\"../hostedContents/1/$value\" width=\"297\" \
             style=\"vertical-align:bottom; width:297px; height:297px\"></span>\n\n</div>\n\n\n</div>\n</div>",
        )
        .html()
        .hosted_content("1", png, "image/png")
        .build()?,
    ));
    out.push(entry(
        "edit a message in a chat",
        &MessageRequest::edit(chat, "1616991463150", "Hello World, edited").build()?,
    ));
    let chat = "19:22273db3497f4b32bue61f6e82be21c5@thread.tacv2";
    out.push(entry(
        "soft-delete a message in a chat",
        &outbound::soft_delete(
            "8f98f01d-1a73-401a-b9e9-9fd1e6f5e5ar",
            chat,
            "1649864053377",
        )?,
    ));
    out.push(entry(
        "undo the soft deletion of a message in a chat",
        &outbound::undo_soft_delete(
            "8f98f01d-1a73-401a-b9e9-9fd1e6f5e5ap",
            chat,
            "1649864053377",
        )?,
    ));
    out.push(entry(
        "set a reaction to a chat message",
        &outbound::set_reaction("chatId", "messageId", "\u{1F498}")?,
    ));
    out.push(entry(
        "unset a reaction to a chat message",
        &outbound::unset_reaction("chatId", "messageId", "\u{1F498}")?,
    ));
    let chat =
        "19:7d898072-792c-4006-bb10-5ca9f2590649_8ea0e38b-efb3-4757-924a-5f94061cf8c2@unq.gbl.spaces";
    let (user, tenant) = (
        "d864e79f-a516-4d0f-9fee-0eeb4d61fdc2",
        "2a690434-97d9-4eed-83a6-f5f13600199a",
    );
    out.push(entry(
        "mark a chat read for a user",
        &outbound::mark_chat_read_for_user(chat, user, tenant)?,
    ));
    out.push(entry(
        "mark a chat unread for a user",
        &MarkChatUnread::new(chat, user, tenant)
            .last_message_read("2021-05-27T22:13:01.577Z")
            .build()?,
    ));
    out.push(entry(
        "hide a chat for a user",
        &outbound::hide_for_user(chat, user, tenant)?,
    ));
    out.push(entry(
        "unhide a chat for a user",
        &outbound::unhide_for_user(chat, user, tenant)?,
    ));
    out.push(entry(
        "the bytes of an inline image",
        &outbound::hosted_content_bytes(
            "19:2da4c29f6d7041eca70b638b43d45437@thread.v2",
            "1615971548136",
            "aWQ9eF8wLXd1cy1kOS1lNTRmNjM1NWYxYmJkNGQ3ZTNmNGJhZmU4NTI5MTBmNix0eXBlPTEsdXJsPWh0dHBzOi8vdXMtYXBpLmFzbS5za3lwZS5jb20vdjEvb2JqZWN0cy8wLXd1cy1kOS1lNTRmNjM1NWYxYmJkNGQ3ZTNmNGJhZmU4NTI5MTBmNi92aWV3cy9pbWdv",
        )?,
    ));
    Ok(())
}

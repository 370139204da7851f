//! The chat and message calls: each refusal at `build()` with its reason, the bodies and URLs the
//! documents show (the example's output is compared with them in tests/suite/subscriptions.rs), and
//! Graph's documented answers typed.

use crate::common;

use graph_chat_notifications::model::ChatType;
use graph_chat_notifications::outbound::{
    self, add_chat_member, created_chat, get_my_chat, hide_for_user, hosted_content_bytes,
    mark_chat_read_for_user, sent_message, set_reaction, soft_delete, undo_soft_delete,
    unhide_for_user, unset_reaction, ChatMember, ChatsRequest, CreateChat, MarkChatUnread,
    MemberRole, MessageRequest, Page, RequestError as E,
};
use serde_json::{json, Value};

const USER: &str = "d864e79f-a516-4d0f-9fee-0eeb4d61fdc2";
const TENANT: &str = "2a690434-97d9-4eed-83a6-f5f13600199a";
const CHAT: &str = "19:2da4c29f6d7041eca70b638b43d45437@thread.v2";

fn body(request: &outbound::HttpRequest) -> Value {
    assert_eq!(request.headers, [("Content-Type", "application/json")]);
    serde_json::from_slice(request.body.as_deref().unwrap()).unwrap()
}

fn two() -> CreateChat {
    CreateChat::one_on_one(
        ChatMember::owner("john.doe@microsoft.com"),
        ChatMember::owner("82af01c5-f7cc-4a2e-a728-3a5df21afd9d"),
    )
}

#[test]
fn a_chat_is_created_with_its_members_bound_by_id_or_upn() {
    let request = CreateChat::group([
        ChatMember::owner("adams@contoso.com"),
        ChatMember::new("4562bcc8-c436-4f95-b7c0-4f8ce89dca5e", MemberRole::Guest),
    ])
    .topic("Invoice 987654")
    .build()
    .unwrap();
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url, "https://graph.microsoft.com/v1.0/chats");
    assert_eq!(
        body(&request),
        json!({"chatType": "group", "topic": "Invoice 987654", "members": [
            {"@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": ["owner"],
             "user@odata.bind": "https://graph.microsoft.com/v1.0/users('adams@contoso.com')"},
            {"@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": ["guest"],
             "user@odata.bind": "https://graph.microsoft.com/v1.0/users('4562bcc8-c436-4f95-b7c0-4f8ce89dca5e')"},
        ]})
    );
    assert!(two().build().is_ok());
}

#[test]
fn chats_graph_would_refuse_are_refused() {
    let third = two()
        .member(ChatMember::owner("3626a173-f2bc-4883-bcf7-01514c3bfb82"))
        .build()
        .unwrap_err();
    assert_eq!(
        third,
        E::MemberCount {
            chat_type: "oneOnOne",
            needed: "exactly 2",
            got: 3
        }
    );
    assert!(third
        .to_string()
        .contains("oneOnOne chat needs exactly 2 members, got 3"));
    assert_eq!(
        two().topic("Hello").build().unwrap_err(),
        E::TopicNotAllowed
    );
    assert!(matches!(
        CreateChat::group([]).build(),
        Err(E::MemberCount { got: 0, .. })
    ));
    let group = || CreateChat::group([ChatMember::owner("a@contoso.com")]);
    for topic in ["", "  ", "Re: invoice", &"x".repeat(251)] {
        assert!(
            matches!(group().topic(topic).build(), Err(E::BadTopic { .. })),
            "{topic:?}"
        );
    }
    assert!(group().topic("x".repeat(250)).build().is_ok());
    for user in [
        "",
        "john.doe",
        "x') or ('1",
        "a b@contoso.com",
        "a/b@contoso.com",
    ] {
        assert_eq!(
            group().member(ChatMember::owner(user)).build().unwrap_err(),
            E::BadMember {
                index: 1,
                user: user.into()
            }
        );
    }
    assert_eq!(
        group()
            .member(ChatMember::owner("A@Contoso.com"))
            .build()
            .unwrap_err(),
        E::DuplicateMember {
            index: 1,
            user: "A@Contoso.com".into()
        }
    );
}

#[test]
fn chat_listings_take_the_options_each_path_documents() {
    let url = |r: ChatsRequest| r.build().unwrap().url;
    assert_eq!(
        url(ChatsRequest::mine()
            .expand_members()
            .expand_last_message_preview()
            .top(50)
            .filter("topic eq 'Fun & games'")
            .order_by_last_message()),
        "https://graph.microsoft.com/v1.0/me/chats?$expand=members,lastMessagePreview&$top=50\
         &$filter=topic%20eq%20'Fun%20%26%20games'&$orderby=lastMessagePreview/createdDateTime%20desc"
    );
    assert_eq!(
        url(ChatsRequest::user_chat_members("87d349ed-44d7-43e1-9a83-5f2406dee5bd", CHAT)),
        format!("https://graph.microsoft.com/v1.0/users/87d349ed-44d7-43e1-9a83-5f2406dee5bd/chats/{CHAT}/members")
    );
    assert_eq!(
        url(ChatsRequest::members(CHAT)),
        format!("https://graph.microsoft.com/v1.0/chats/{CHAT}/members")
    );
    // Members take no options at all.
    for (request, option) in [
        (ChatsRequest::members(CHAT).expand_members(), "$expand"),
        (ChatsRequest::my_chat_members(CHAT).top(5), "$top"),
        (ChatsRequest::members(CHAT).filter("x eq 1"), "$filter"),
        (
            ChatsRequest::user_chat_members(USER, CHAT).order_by_last_message(),
            "$orderby",
        ),
    ] {
        match request.build() {
            Err(E::UnsupportedOption {
                option: o,
                resource,
            }) => {
                assert_eq!(o, option);
                assert!(resource.ends_with("/members"), "{resource}");
            }
            other => panic!("{option}: {other:?}"),
        }
    }
    for n in [0, 51] {
        assert_eq!(
            ChatsRequest::mine().top(n).build().unwrap_err(),
            E::TopOutOfRange(n)
        );
    }
    assert_eq!(
        ChatsRequest::mine().filter(" ").build().unwrap_err(),
        E::EmptyFilter
    );
    for bad in ["", "a/b", "a?b", "a b", "a#b", ".", "..", "a%2Fb", "%2e%2e"] {
        assert!(matches!(
            ChatsRequest::members(bad).build(),
            Err(E::BadId {
                what: "chat id",
                ..
            })
        ));
        assert!(matches!(
            ChatsRequest::user(bad).build(),
            Err(E::BadId {
                what: "user id",
                ..
            })
        ));
    }
}

#[test]
fn messages_carry_their_mentions_and_images() {
    let edit = MessageRequest::edit(CHAT, "1616991463150", "<p>Edited</p>")
        .html()
        .build()
        .unwrap();
    assert_eq!(edit.method.as_str(), "PATCH");
    assert_eq!(
        edit.url,
        format!("https://graph.microsoft.com/v1.0/chats/{CHAT}/messages/1616991463150")
    );
    assert_eq!(
        body(&edit),
        json!({"body": {"contentType": "html", "content": "<p>Edited</p>"}})
    );
    let text = MessageRequest::send(CHAT, "plain").text().build().unwrap();
    assert_eq!(
        body(&text),
        json!({"body": {"contentType": "text", "content": "plain"}})
    );

    let image = MessageRequest::send(
        CHAT,
        r#"<p>Look</p><img src="../hostedContents/1/$value"><img src="../hostedContents/2/$value">"#,
    )
    .html()
    .hosted_content("1", *b"\x89PNG-one", "image/png")
    .hosted_content("2", *b"\xff\xd8jpeg", "image/jpeg")
    .build()
    .unwrap();
    let b = body(&image);
    assert_eq!(
        b["hostedContents"],
        json!([
            {"@microsoft.graph.temporaryId": "1", "contentBytes": "iVBORy1vbmU=", "contentType": "image/png"},
            {"@microsoft.graph.temporaryId": "2", "contentBytes": "/9hqcGVn", "contentType": "image/jpeg"},
        ])
    );
}

#[test]
fn messages_graph_would_refuse_are_refused() {
    let mention = |content: &str| {
        MessageRequest::send(CHAT, content).html().mention(
            0,
            "Jane Smith",
            "ef1c916a-3135-4417-ba27-8eb7bd084193",
            "Jane Smith",
        )
    };
    assert!(mention(r#"Hi <at id="0">Jane Smith</at>"#).build().is_ok());
    assert_eq!(
        MessageRequest::send(CHAT, "  ").build().unwrap_err(),
        E::EmptyContent
    );
    assert_eq!(
        MessageRequest::send(CHAT, r#"Hi <at id="0">Jane</at>"#)
            .mention(0, "Jane", "ef1c916a-3135-4417-ba27-8eb7bd084193", "Jane")
            .build()
            .unwrap_err(),
        E::NeedsHtml { what: "mentions" }
    );
    assert!(matches!(
        mention("Hi Jane").build(),
        Err(E::BadMention {
            index: 0,
            id: 0,
            ..
        })
    ));
    assert!(matches!(
        mention(r#"Hi <at id="0">Jane Smith</at>"#)
            .mention(0, "Jane", "ef1c916a-3135-4417-ba27-8eb7bd084193", "Jane")
            .build(),
        Err(E::BadMention {
            index: 1,
            id: 0,
            ..
        })
    ));
    assert!(matches!(
        MessageRequest::send(CHAT, r#"<at id="0">Jane</at>"#)
            .html()
            .mention(0, "Jane", "jane@contoso.com", "Jane")
            .build(),
        Err(E::BadMention { index: 0, .. })
    ));
    let img = r#"<img src="../hostedContents/1/$value">"#;
    assert_eq!(
        MessageRequest::send(CHAT, img)
            .hosted_content("1", *b"png", "image/png")
            .build()
            .unwrap_err(),
        E::NeedsHtml {
            what: "hostedContents"
        }
    );
    for (id, bytes, kind) in [
        ("2", &b"png"[..], "image/png"),
        ("1", &b""[..], "image/png"),
        ("1", &b"png"[..], "text/html"),
        ("", &b"png"[..], "image/png"),
    ] {
        assert!(
            matches!(
                MessageRequest::send(CHAT, img)
                    .html()
                    .hosted_content(id, bytes, kind)
                    .build(),
                Err(E::BadHostedContent { index: 0, .. })
            ),
            "{id:?} {kind}"
        );
    }
    assert!(matches!(
        MessageRequest::send("19:a/b", "hi").build(),
        Err(E::BadId {
            what: "chat id",
            ..
        })
    ));
    assert!(matches!(
        MessageRequest::edit(CHAT, "", "hi").build(),
        Err(E::BadId {
            what: "message id",
            ..
        })
    ));
}

#[test]
fn deletions_reactions_and_images_address_the_message() {
    let deleted = soft_delete(USER, CHAT, "1649864053377").unwrap();
    assert_eq!(deleted.method.as_str(), "POST");
    assert!(deleted.body.is_none() && deleted.headers.is_empty());
    assert_eq!(
        deleted.url,
        format!("https://graph.microsoft.com/v1.0/users/{USER}/chats/{CHAT}/messages/1649864053377/softDelete")
    );
    assert!(undo_soft_delete(USER, CHAT, "1649864053377")
        .unwrap()
        .url
        .ends_with("/1649864053377/undoSoftDelete"));
    assert!(matches!(
        soft_delete("", CHAT, "1"),
        Err(E::BadId {
            what: "user id",
            ..
        })
    ));
    assert!(matches!(
        undo_soft_delete(USER, CHAT, "1 2"),
        Err(E::BadId {
            what: "message id",
            ..
        })
    ));

    let set = set_reaction(CHAT, "1", "👍").unwrap();
    assert_eq!(body(&set), json!({"reactionType": "👍"}));
    assert!(unset_reaction(CHAT, "1", "like")
        .unwrap()
        .url
        .ends_with("/messages/1/unsetReaction"));
    for empty in ["", " ", "\t\n"] {
        assert_eq!(set_reaction(CHAT, "1", empty), Err(E::EmptyReaction));
        assert_eq!(unset_reaction(CHAT, "1", empty), Err(E::EmptyReaction));
    }
    assert!(matches!(
        set_reaction(CHAT, "1/2", "👍"),
        Err(E::BadId { .. })
    ));

    let bytes = hosted_content_bytes(CHAT, "1", "aWQ9eF8w").unwrap();
    assert_eq!(bytes.method.as_str(), "GET");
    assert!(bytes.body.is_none());
    assert!(matches!(
        hosted_content_bytes(CHAT, "1", "a?b"),
        Err(E::BadId {
            what: "hosted content id",
            ..
        })
    ));
}

#[test]
fn the_viewpoint_calls_name_the_user_and_tenant() {
    let expected = json!({"user": {"id": USER, "tenantId": TENANT}});
    for (request, action) in [
        (
            mark_chat_read_for_user(CHAT, USER, TENANT),
            "markChatReadForUser",
        ),
        (hide_for_user(CHAT, USER, TENANT), "hideForUser"),
        (unhide_for_user(CHAT, USER, TENANT), "unhideForUser"),
        (
            MarkChatUnread::new(CHAT, USER, TENANT).build(),
            "markChatUnreadForUser",
        ),
    ] {
        let request = request.unwrap();
        assert_eq!(
            request.url,
            format!("https://graph.microsoft.com/v1.0/chats/{CHAT}/{action}")
        );
        assert_eq!(body(&request), expected, "{action}");
    }
    assert!(matches!(
        hide_for_user(CHAT, "me", TENANT),
        Err(E::NotAGuid {
            field: "user.id",
            ..
        })
    ));
    assert!(matches!(
        unhide_for_user(CHAT, USER, "contoso.com"),
        Err(E::NotAGuid {
            field: "user.tenantId",
            ..
        })
    ));
    assert!(matches!(
        mark_chat_read_for_user("", USER, TENANT),
        Err(E::BadId { .. })
    ));
    assert_eq!(
        MarkChatUnread::new(CHAT, USER, TENANT)
            .last_message_read("yesterday")
            .build()
            .unwrap_err(),
        E::BadTime("yesterday".into())
    );
}

#[cfg(feature = "http")]
#[test]
fn the_new_requests_convert_to_http() {
    let request: http::Request<Vec<u8>> = two().build().unwrap().try_into().unwrap();
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(request.headers()["content-type"], "application/json");
    assert!(!request.body().is_empty());
    let request: http::Request<Vec<u8>> = soft_delete(USER, CHAT, "1").unwrap().try_into().unwrap();
    assert!(request.body().is_empty());
}

#[test]
fn the_documented_created_chat_is_typed() {
    let bytes = common::read("documented/create-chat-response.json");
    let chat = created_chat(&bytes).unwrap();
    assert_eq!(
        chat.id.as_deref(),
        Some("19:b1234aaa12345a123aa12aa12aaaa1a9@thread.v2")
    );
    assert!(chat.chat_type.get().unwrap().is(ChatType::Group));
    assert!(chat.topic.is_null());
    assert!(chat.viewpoint.is_null());
    assert_eq!(
        chat.tenant_id.as_deref(),
        Some("4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1")
    );
    assert_eq!(
        chat.created_date_time.get().unwrap().as_str(),
        "2023-01-11T01:34:18.929Z"
    );
    assert!(created_chat(b"{\"id\": 19}").is_err());
}

#[test]
fn the_documented_sent_message_is_typed() {
    let bytes = common::read("documented/send-message-response.json");
    let message = sent_message(&bytes).unwrap();
    assert_eq!(message.id.as_deref(), Some("1616991463150"));
    assert_eq!(message.etag.as_deref(), Some("1616991463150"));
    assert_eq!(message.chat_id.as_deref(), Some(CHAT));
    assert_eq!(
        message.body.get().unwrap().content.as_deref(),
        Some("Hello World")
    );
    let from = message.from.get().unwrap().user.get().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("Robin Kline"));
    assert!(!message.is_deleted());
    assert!(message.other.is_empty(), "{:?}", message.other.keys());
}

#[test]
fn the_documented_chat_list_is_a_page_of_chats_with_members() {
    let bytes = common::read("documented/list-chats-response.json");
    let page = Page::chats(&bytes).unwrap();
    assert_eq!(page.count, Some(3));
    assert!(page.next_link.is_none());
    let chats: Vec<_> = page.items.iter().map(|c| c.as_ref().unwrap()).collect();
    let types: Vec<&str> = chats
        .iter()
        .map(|c| c.chat_type.get().unwrap().as_str())
        .collect();
    assert_eq!(types, ["meeting", "group", "oneOnOne"]);
    let members = |i: usize| -> Vec<&str> {
        chats[i]
            .members
            .get()
            .unwrap()
            .iter()
            .map(|m| m.display_name.as_deref().unwrap())
            .collect()
    };
    assert_eq!(members(2), ["Nick Fury", "Peter Parker"]);
    assert_eq!(members(1).len(), 5);
    assert_eq!(
        chats[0].members.get().unwrap()[0].email.as_deref(),
        Some("starkt@teamsgraph.onmicrosoft.com")
    );
    // A user's chats carry the user's viewpoint.
    let with_viewpoint = br#"{"value": [{"id": "19:a@thread.v2", "chatType": "group",
        "viewpoint": {"isHidden": true, "lastMessageReadDateTime": "2021-04-06T18:47:42.117Z"}}, {"id": 7}]}"#;
    let page = Page::chats(with_viewpoint).unwrap();
    let vp = page.items[0].as_ref().unwrap().viewpoint.get().unwrap();
    assert_eq!(vp.is_hidden.get(), Some(&true));
    assert_eq!(page.items[1].as_ref().unwrap_err().path(), "id");
}

#[test]
fn the_documented_member_list_is_a_page_of_members() {
    let bytes = common::read("documented/list-members-response.json");
    let page = Page::members(&bytes).unwrap();
    assert_eq!(page.count, Some(3));
    let members: Vec<_> = page.items.iter().map(|m| m.as_ref().unwrap()).collect();
    assert_eq!(
        members
            .iter()
            .map(|m| m.display_name.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["John Doe", "Bart Hogan", "Minna Pham"]
    );
    assert!(members
        .iter()
        .all(|m| m.roles.get().unwrap()[0].as_str() == "owner"));
    assert!(members[0].email.is_null());
    assert_eq!(
        members[1]
            .visible_history_start_date_time
            .get()
            .unwrap()
            .as_str(),
        "0001-01-01T00:00:00Z"
    );
    let bad = br#"{"value": [{"roles": "owner"}]}"#;
    let page = Page::members(bad).unwrap();
    assert_eq!(page.items[0].as_ref().unwrap_err().path(), "roles");
}

#[test]
fn the_new_requests_move_to_a_national_cloud_and_hide_what_users_wrote() {
    use graph_chat_notifications::Cloud;
    let secret = "the quarterly numbers are bad";
    let message = MessageRequest::send(CHAT, secret);
    assert!(!format!("{message:?}").contains("quarterly"));
    let requests = [
        two().build().unwrap(),
        message.build().unwrap(),
        ChatsRequest::mine().top(5).build().unwrap(),
        get_my_chat(CHAT).unwrap(),
        set_reaction(CHAT, "1", "👍").unwrap(),
        hide_for_user(CHAT, USER, TENANT).unwrap(),
        hosted_content_bytes(CHAT, "1", "aWQ9").unwrap(),
    ];
    for request in requests {
        assert!(!format!("{request:?}").contains("quarterly"));
        let moved = request.clone().in_cloud(Cloud::China);
        let path = request
            .url
            .strip_prefix("https://graph.microsoft.com")
            .unwrap();
        assert_eq!(
            moved.url,
            format!("https://microsoftgraph.chinacloudapi.cn{path}")
        );
        assert_eq!(moved.body, request.body);
    }
    assert!(matches!(get_my_chat("a b"), Err(E::BadId { .. })));
}

#[test]
fn a_dot_segment_id_is_refused_everywhere() {
    // `subscriptions/../reauthorize` would be `v1.0/reauthorize` once the URL is parsed.
    for id in [".", "..", "%2e%2e"] {
        assert_eq!(
            outbound::reauthorize(id).unwrap_err(),
            E::BadSubscriptionId(id.into())
        );
        assert!(matches!(
            outbound::get_chat(id),
            Err(E::BadId {
                what: "chat id",
                ..
            })
        ));
        assert!(matches!(
            undo_soft_delete(USER, CHAT, id),
            Err(E::BadId {
                what: "message id",
                ..
            })
        ));
    }
}

mod ids {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, .. ProptestConfig::default() })]

        /// Whatever the ids, a request either is refused or addresses exactly them: no id adds a
        /// path segment, a query or a fragment.
        #[test]
        fn an_id_never_changes_the_path(chat in "\\PC{0,12}", message in "[ -~]{0,8}", user in "[ -~]{0,8}") {
            let requests = [
                (MessageRequest::edit(chat.as_str(), message.as_str(), "hi").build(), vec!["chats", chat.as_str(), "messages", message.as_str()]),
                (soft_delete(&user, &chat, &message), vec!["users", user.as_str(), "chats", chat.as_str(), "messages", message.as_str(), "softDelete"]),
                (set_reaction(&chat, &message, "👍"), vec!["chats", chat.as_str(), "messages", message.as_str(), "setReaction"]),
                (ChatsRequest::user_chat_members(user.as_str(), chat.as_str()).build(), vec!["users", user.as_str(), "chats", chat.as_str(), "members"]),
            ];
            for (request, segments) in requests {
                let Ok(request) = request else { continue };
                let url = url::Url::parse(&request.url).unwrap();
                prop_assert!(url.query().is_none() && url.fragment().is_none(), "{}", request.url);
                let path: Vec<String> = url
                    .path_segments()
                    .unwrap()
                    .skip(1)
                    .map(|s| percent_encoding::percent_decode_str(s).decode_utf8().unwrap().into_owned())
                    .collect();
                prop_assert_eq!(path, segments.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            }
        }
    }
}

#[test]
fn a_member_is_added_to_a_chat_as_graph_documents() {
    let member = ChatMember::owner("8b081ef6-4792-4def-b2c9-c363a1bf41d5");
    let from = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_555_631_503_255);
    let request = add_chat_member(CHAT, &member, Some(from)).unwrap();
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(
        request.url,
        format!("https://graph.microsoft.com/v1.0/chats/{CHAT}/members")
    );
    let sent = body(&request);
    assert_eq!(
        sent["@odata.type"],
        "#microsoft.graph.aadUserConversationMember"
    );
    assert_eq!(
        sent["user@odata.bind"],
        "https://graph.microsoft.com/v1.0/users('8b081ef6-4792-4def-b2c9-c363a1bf41d5')"
    );
    assert_eq!(sent["roles"], json!(["owner"]));
    assert_eq!(
        sent["visibleHistoryStartDateTime"],
        "2019-04-18T23:51:43.2550000Z"
    );
    // Without a time: none sent (Graph's default, no history before the member was added).
    let plain = add_chat_member(CHAT, &ChatMember::guest("alex@contoso.com"), None).unwrap();
    let sent = body(&plain);
    assert!(sent.get("visibleHistoryStartDateTime").is_none(), "{sent}");
    assert_eq!(sent["roles"], json!(["guest"]));
    // Graph would refuse these.
    assert!(matches!(
        add_chat_member(CHAT, &ChatMember::owner("not a user"), None),
        Err(E::BadMember { .. })
    ));
    assert!(add_chat_member("../x", &member, None).is_err());
}

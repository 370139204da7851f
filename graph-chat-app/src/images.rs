//! Images a person pastes or drops on the page, sent inline through Graph
//! (`docs/contracts.md#the-chat-app`): the image travels as a `hostedContents` entry of the new
//! message, which Graph stores and serves; the page shows it back through the app, as every
//! inline image is shown.
//!
//! The API reads at most 64 KiB of any body; the image route alone reads more, bounded by
//! [`MAX_IMAGE_BODY`] ([`body_limit`] tells the API's body reader so).

use std::sync::Arc;

use axum::extract::{Path, Request};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Extension;
use base64::Engine as _;
use graph_chat_webhook::notifications::outbound::MessageRequest;
use serde::Deserialize;

use crate::actions::send_and_keep;
use crate::api::{known_chat, ApiError, Person};

/// The largest image sent, in bytes (2 MiB): base64 makes it a third larger in Graph's request,
/// which must stay under Graph's 4 MB request limit with the message around it.
pub(crate) const MAX_IMAGE_BYTES: usize = 2 << 20;

/// The largest body the image route reads: the image in base64 (4/3 of [`MAX_IMAGE_BYTES`])
/// and a caption, with room to spare (3 MiB). Every other route keeps the API's 64 KiB.
pub(crate) const MAX_IMAGE_BODY: usize = 3 << 20;

/// The longest caption sent with an image, in bytes: Graph takes about 28 KiB of content.
const MAX_CAPTION_BYTES: usize = 16 << 10;

/// The image types the page sends, and how each one's bytes begin.
const IMAGE_TYPES: [(&str, &[u8]); 4] = [
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", b"\xff\xd8\xff"),
    ("image/gif", b"GIF8"),
    ("image/webp", b"RIFF"),
];

/// The body limit of a request to the API, when it is not the API's default: the image route's
/// ([`MAX_IMAGE_BODY`]), with what to tell a person whose body is over it.
pub(crate) fn body_limit(method: &Method, path: &str) -> Option<(usize, &'static str)> {
    let rest = path.strip_prefix("/api/chats/")?;
    let mut segments = rest.split('/');
    let (chat, tail, end) = (segments.next()?, segments.next()?, segments.next());
    (*method == Method::POST && !chat.is_empty() && tail == "images" && end.is_none())
        .then_some((MAX_IMAGE_BODY, "the image is over 2 MiB"))
}

/// `{"content", "contentType", "contentBytes"}`: an optional caption (text), the image's type
/// and its bytes in base64, as Graph's `hostedContents` entries carry them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageMessage {
    #[serde(default)]
    content: String,
    content_type: String,
    content_bytes: String,
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Whether `bytes` begin as an image of `content_type` does.
fn is_image(content_type: &str, bytes: &[u8]) -> bool {
    IMAGE_TYPES.iter().any(|(t, magic)| {
        *t == content_type
            && bytes.starts_with(magic)
            && (*t != "image/webp" || bytes.get(8..12) == Some(b"WEBP"))
    })
}

/// `POST /api/chats/{chatId}/images` `{"content", "contentType", "contentBytes"}`: sends the
/// image inline through Graph as the signed-in person (`hostedContents`, referenced by an
/// `<img>` of the message's HTML), with the caption above it; 201 with the message's item,
/// kept under the same rules as its notification. 415 for anything but a PNG, JPEG, GIF or
/// WebP image (its bytes must be one), 413 past 2 MiB.
pub(crate) async fn send(
    Extension(person): Extension<Person>,
    Path(chat_id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    // Read whole already, within the image route's limit and deadline.
    let body = axum::body::to_bytes(request.into_body(), MAX_IMAGE_BODY)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "the image is over 2 MiB"))?;
    let Ok(image) = serde_json::from_slice::<ImageMessage>(&body) else {
        return Err(ApiError::bad_request(
            "an image is {\"content\", \"contentType\", \"contentBytes\"}",
        ));
    };
    if !IMAGE_TYPES.iter().any(|(t, _)| *t == image.content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "only PNG, JPEG, GIF and WebP images can be sent",
        ));
    }
    // Base64 of more than the largest image is refused before it is decoded.
    if image.content_bytes.len() > MAX_IMAGE_BYTES.div_ceil(3) * 4 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the image is over 2 MiB",
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(image.content_bytes.as_bytes())
        .map_err(|_| ApiError::bad_request("contentBytes is not base64"))?;
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the image is over 2 MiB",
        ));
    }
    if !is_image(&image.content_type, &bytes) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the file is not the image it says it is",
        ));
    }
    if image.content.len() > MAX_CAPTION_BYTES {
        return Err(ApiError::bad_request(
            "the text with an image is at most 16 KiB",
        ));
    }
    known_chat(&person, &chat_id).await?;
    let caption = image.content.trim();
    let mut html = String::new();
    if !caption.is_empty() {
        html.push_str(&format!(
            "<p>{}</p>",
            escape_html(caption).replace('\n', "<br>")
        ));
    }
    html.push_str(r#"<p><img src="../hostedContents/1/$value" alt="image"></p>"#);
    let request = MessageRequest::send(chat_id.clone(), html)
        .html()
        .hosted_content("1", bytes, image.content_type)
        .build()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let sync = Arc::clone(&person.sync);
    send_and_keep(&sync, &chat_id, request, "the image").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_image_route_reads_more_than_the_default() {
        let image = body_limit(&Method::POST, "/api/chats/19:a@thread.v2/images");
        assert_eq!(image.map(|(n, _)| n), Some(MAX_IMAGE_BODY));
        for (method, path) in [
            (Method::GET, "/api/chats/19:a@thread.v2/images"),
            (Method::POST, "/api/chats/19:a@thread.v2/messages"),
            (Method::POST, "/api/chats//images"),
            (Method::POST, "/api/chats/19:a@thread.v2/images/more"),
            (Method::POST, "/api/chats/images"),
            (Method::POST, "/auth/chats/x/images"),
        ] {
            assert_eq!(body_limit(&method, path), None, "{method} {path}");
        }
    }

    #[test]
    fn an_image_is_what_its_bytes_say() {
        assert!(is_image("image/png", b"\x89PNG\r\n\x1a\n...."));
        assert!(!is_image("image/png", b"\xff\xd8\xff...."));
        assert!(!is_image("image/svg+xml", b"<svg"));
        assert!(is_image("image/webp", b"RIFF\0\0\0\0WEBPVP8 "));
        assert!(!is_image("image/webp", b"RIFF\0\0\0\0WAVE"));
    }
}

// The chat page: a snapshot from the app's API, then live events over Server-Sent Events.
// Message HTML arrives sanitized by the server; the page's Content-Security-Policy runs only
// this script, so a sender's script could not run even if a sanitizer missed it.
"use strict";

const state = {
  me: null,
  chats: new Map(),      // id -> chat item
  chatsSnapshot: 0,      // the last event the chat list reflects
  open: null,            // the open chat's id
  openSnapshot: null,    // the last event its messages reflect (null while loading)
  pending: [],           // its events that came while its snapshot was loading
  source: null,
  started: null,         // settles once the page has loaded and opened its first chat
  sending: false,        // a message is on its way
};

const $ = (id) => document.getElementById(id);

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  // Signed out (the session ended, or the person's access was revoked): the sign-in page.
  if (response.status === 401) { location.assign("/"); throw new Error("signed out"); }
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return { data: await response.json(), last: Number(response.headers.get("x-last-event-id") || 0) };
}

function status(text) { $("status").textContent = text; }

// createdDateTime order, ties broken by id compared as a number (Graph's ids are epoch ms).
function before(a, b) {
  const ta = Date.parse(a.createdDateTime) || 0;
  const tb = Date.parse(b.createdDateTime) || 0;
  if (ta !== tb) return ta < tb;
  try { return BigInt(a.id) < BigInt(b.id); } catch (_) { return String(a.id) < String(b.id); }
}

function chatLabel(chat) {
  return chat.topic || (chat.chatType === "oneOnOne" ? "Direct chat" : "Group chat");
}

function renderChats() {
  const list = $("chats");
  list.replaceChildren();
  const visible = [...state.chats.values()].filter((c) => !c.hidden);
  visible.sort((a, b) => chatLabel(a).localeCompare(chatLabel(b)) || a.id.localeCompare(b.id));
  for (const chat of visible) {
    const li = document.createElement("li");
    li.dataset.chatId = chat.id;
    li.dataset.unread = String(chat.unreadCount);
    if (chat.id === state.open) li.classList.add("open");
    const name = document.createElement("span");
    name.textContent = chatLabel(chat);
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = String(chat.unreadCount);
    li.append(name, badge);
    li.addEventListener("click", () => {
      openChat(chat.id).catch((e) => status(`cannot open: ${e.message}`));
    });
    list.append(li);
  }
}

function messageElement(item) {
  const li = document.createElement("li");
  li.className = "message";
  if (state.me && item.from && item.from.id === state.me.id) li.classList.add("mine");
  li.dataset.messageId = item.id;
  li.dataset.state = item.state;
  const meta = document.createElement("div");
  meta.className = "meta";
  const who = item.from && item.from.displayName ? item.from.displayName : "Unknown sender";
  const when = item.createdDateTime ? new Date(item.createdDateTime).toLocaleString() : "";
  meta.textContent = `${who} · ${when}${item.state === "edited" ? " · edited" : ""}`;
  const body = document.createElement("div");
  body.className = "body";
  if (item.state === "deleted") {
    body.className += " marker";
    body.textContent = "This message was deleted.";
  } else if (item.state === "blocked") {
    body.className += " marker";
    body.textContent = "This message was blocked by a policy.";
  } else if (item.contentType === "html") {
    // Sanitized by the server (ammonia): formatting only, no scripts, handlers or frames.
    body.innerHTML = item.content || "";
  } else {
    body.textContent = item.content || "";
  }
  li.append(meta, body);
  if (item.notice) {
    const notice = document.createElement("div");
    notice.className = "notice";
    notice.textContent = item.notice;
    li.append(notice);
  }
  li._item = item;
  return li;
}

function upsertMessage(item) {
  const list = $("messages");
  const element = messageElement(item);
  const existing = [...list.children].find((li) => li.dataset.messageId === item.id);
  if (existing) { existing.replaceWith(element); return; }
  const next = [...list.children].find((li) => before(item, li._item));
  list.insertBefore(element, next || null);
}

async function openChat(id) {
  state.open = id;
  state.openSnapshot = null;
  state.pending = [];
  location.hash = encodeURIComponent(id);
  const chat = state.chats.get(id);
  $("chat-title").textContent = chat ? chatLabel(chat) : "";
  renderChats();
  $("messages").replaceChildren();
  delete $("messages").dataset.loadedChat;
  // Clicking a chat marks it read, through Graph (the app calls markChatReadForUser).
  fetch(`/api/chats/${encodeURIComponent(id)}/read`, { method: "POST" }).catch(() => {});
  const { data, last } = await getJson(`/api/chats/${encodeURIComponent(id)}/messages`);
  if (state.open !== id) return;
  for (const item of data) upsertMessage(item);
  state.openSnapshot = last;
  for (const { eventId, item } of state.pending) if (eventId > last) upsertMessage(item);
  state.pending = [];
  // The open chat's snapshot is on the page (for tests and tools that wait for it).
  $("messages").dataset.loadedChat = id;
}

function onEvent(event) {
  const eventId = Number(event.lastEventId);
  const item = JSON.parse(event.data);
  if (item.kind === "chat") {
    if (eventId <= state.chatsSnapshot) return;
    delete item.kind;
    if (item.removed) {
      // Graph no longer has it for the user (deleted, or the user left).
      state.chats.delete(item.id);
      if (state.open === item.id) {
        state.open = null;
        $("messages").replaceChildren();
        $("chat-title").textContent = "Select a chat";
      }
    } else {
      state.chats.set(item.id, item);
    }
    renderChats();
  } else if (item.kind === "message" && item.chatId === state.open) {
    if (state.openSnapshot === null) state.pending.push({ eventId, item });
    else if (eventId > state.openSnapshot) upsertMessage(item);
  }
}

function listen(after) {
  const source = new EventSource(`/api/events?after=${after}`);
  source.onopen = () => status("live");
  source.onerror = () => {
    status("reconnecting...");
    // The browser gives up on a stream answered with an error (401 once signed out).
    if (source.readyState === EventSource.CLOSED) getJson("/api/me").catch(() => {});
  };
  source.onmessage = onEvent;
  // The app's log no longer holds what this page missed: start again from a snapshot.
  source.addEventListener("reset", () => location.reload());
  state.source = source;
}

async function send(form) {
  // A second press (or Enter) while a message is on its way would send it twice.
  if (state.sending) return;
  const content = form.elements.content.value;
  const contentType = form.elements.contentType.value;
  if (!content) return;
  state.sending = true;
  try {
    // Submitted before the page had opened a chat: send once it has.
    await state.started;
    if (!state.open) return;
    const chatId = state.open;
    const response = await fetch(`/api/chats/${encodeURIComponent(chatId)}/messages`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ content, contentType }),
    });
    if (response.status === 401) { location.assign("/"); return; }
    if (!response.ok) { status(`not sent (${response.status})`); return; }
    // 202: Graph is throttling; the app sends it as soon as Graph takes it (then an event).
    if (response.status === 202) { form.elements.content.value = ""; status("sending..."); return; }
    // Keep anything typed meanwhile.
    if (form.elements.content.value === content) form.elements.content.value = "";
    const item = await response.json();
    // The same message as its notification will be: shown once, whichever comes first.
    if (state.open === chatId) upsertMessage(item);
  } catch (e) {
    status(`not sent (${e.message})`);
  } finally {
    state.sending = false;
  }
}

function start() {
  // The form is the page's before anything loads: a submit must never fall through to the
  // browser's own, which would navigate away with the message in the URL. The button is
  // disabled in the HTML until now, so nothing submits before this script runs either.
  const compose = $("compose");
  compose.addEventListener("submit", (e) => { e.preventDefault(); send(e.target); });
  compose.querySelector("button[type=submit]").disabled = false;
  state.started = load();
}

async function load() {
  try {
    state.me = (await getJson("/api/me")).data;
    $("me").textContent = state.me.displayName || "";
    const { data, last } = await getJson("/api/chats");
    for (const chat of data) state.chats.set(chat.id, chat);
    state.chatsSnapshot = last;
    renderChats();
    listen(last);
    const wanted = decodeURIComponent(location.hash.slice(1));
    const first = state.chats.has(wanted) && !state.chats.get(wanted).hidden
      ? wanted
      : [...$("chats").children].map((li) => li.dataset.chatId)[0];
    if (first) await openChat(first);
  } catch (e) {
    status(`cannot load: ${e.message}`);
  }
}

start();

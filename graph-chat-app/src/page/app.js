// The chat page: a snapshot from the app's API, then live events over Server-Sent Events.
// Message HTML arrives sanitized by the server; the page's Content-Security-Policy runs only
// this script, so a sender's script could not run even if a sanitizer missed it.
// Hand-written, no build step: what the server sends is what runs.
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
  failed: null,          // the send that failed: { chatId, content }, offered for a retry
};

const $ = (id) => document.getElementById(id);
const narrow = () => window.matchMedia("(max-width: 700px)").matches;

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return { data: await response.json(), last: Number(response.headers.get("x-last-event-id") || 0) };
}

// Why a request failed, from the API's `{"error": ...}` answer.
async function failure(response) {
  try {
    const body = await response.json();
    if (body && body.error) return `${body.error} (${response.status})`;
  } catch (_) { /* not JSON */ }
  return `the app answered ${response.status}`;
}

function status(text) { $("status").textContent = text; }

// Said to screen readers (a polite live region): new messages, sends, failures.
function announce(text) {
  const region = $("announce");
  region.textContent = "";
  // A change after a clear is announced even when the text repeats.
  setTimeout(() => { region.textContent = text; }, 50);
}

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
  const focused = document.activeElement && document.activeElement.dataset
    ? document.activeElement.dataset.chatId : undefined;
  list.replaceChildren();
  const visible = [...state.chats.values()].filter((c) => !c.hidden);
  visible.sort((a, b) => chatLabel(a).localeCompare(chatLabel(b)) || a.id.localeCompare(b.id));
  for (const chat of visible) {
    const li = document.createElement("li");
    const entry = document.createElement("button");
    entry.type = "button";
    entry.dataset.chatId = chat.id;
    entry.dataset.unread = String(chat.unreadCount);
    entry.dataset.hidden = String(Boolean(chat.hidden));
    if (chat.id === state.open) entry.setAttribute("aria-current", "true");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = chatLabel(chat);
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = String(chat.unreadCount);
    const unread = document.createElement("span");
    unread.className = "visually-hidden";
    unread.textContent = chat.unreadCount ? ` unread` : "";
    badge.append(unread);
    entry.append(name, badge);
    entry.addEventListener("click", () => {
      openChat(chat.id, true).catch((e) => status(`cannot open: ${e.message}`));
    });
    li.append(entry);
    list.append(li);
  }
  $("no-chats").hidden = visible.length > 0;
  if (focused) {
    const again = list.querySelector(`[data-chat-id="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

function messageElement(item) {
  const li = document.createElement("li");
  li.className = "message";
  const mine = Boolean(state.me && item.from && item.from.id === state.me.id);
  if (mine) li.classList.add("mine");
  li.dataset.messageId = item.id;
  li.dataset.state = item.state;
  if (item.from && item.from.id) li.dataset.fromId = item.from.id;
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
    body.className += " html";
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

// Whether the person is looking at the newest messages (so new ones scroll into view).
function atBottom() {
  const s = $("scroller");
  return s.scrollHeight - s.scrollTop - s.clientHeight < 40;
}

function scrollToBottom() {
  const s = $("scroller");
  s.scrollTop = s.scrollHeight;
}

// Puts a message in its place (or replaces its older version); `true` when it is new.
function upsertMessage(item) {
  const list = $("messages");
  const element = messageElement(item);
  const existing = [...list.children].find((li) => li.dataset.messageId === item.id);
  if (existing) { existing.replaceWith(element); return false; }
  const next = [...list.children].find((li) => li._item && before(item, li._item));
  list.insertBefore(element, next || null);
  return true;
}

function showView(view) {
  $("app").dataset.view = view;
}

async function openChat(id, byPerson) {
  state.open = id;
  state.openSnapshot = null;
  state.pending = [];
  history.replaceState(null, "", `#${encodeURIComponent(id)}`);
  const chat = state.chats.get(id);
  $("chat-title").textContent = chat ? chatLabel(chat) : "";
  renderChats();
  if (byPerson) showView("chat");
  $("messages").replaceChildren();
  delete $("messages").dataset.loadedChat;
  // Opening a chat marks it read, through Graph (the app calls markChatReadForUser).
  fetch(`/api/chats/${encodeURIComponent(id)}/read`, { method: "POST" }).catch(() => {});
  const { data, last } = await getJson(`/api/chats/${encodeURIComponent(id)}/messages`);
  if (state.open !== id) return;
  for (const item of data) upsertMessage(item);
  state.openSnapshot = last;
  for (const { eventId, item } of state.pending) if (eventId > last) upsertMessage(item);
  state.pending = [];
  scrollToBottom();
  // The open chat's snapshot is on the page (for tests and tools that wait for it).
  $("messages").dataset.loadedChat = id;
  if (byPerson && narrow()) $("content").focus();
}

function closeChat() {
  state.open = null;
  $("messages").replaceChildren();
  delete $("messages").dataset.loadedChat;
  $("chat-title").textContent = "Select a chat";
  history.replaceState(null, "", location.pathname);
  showView("list");
}

// A message shown live in the open chat: in view when the person was at the newest ones.
function showLive(item) {
  const follow = atBottom();
  const added = upsertMessage(item);
  if (follow) scrollToBottom();
  const mine = state.me && item.from && item.from.id === state.me.id;
  if (added && !mine && item.state === "visible") {
    const who = item.from && item.from.displayName ? item.from.displayName : "Someone";
    const text = item.contentType === "html" ? textOf(item.content) : (item.content || "");
    announce(`${who}: ${text.slice(0, 200)}`);
  }
}

// The text of sanitized HTML (parsed inert: nothing in it loads or runs).
function textOf(html) {
  const doc = new DOMParser().parseFromString(html || "", "text/html");
  return (doc.body.textContent || "").trim();
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
      if (state.open === item.id) closeChat();
    } else {
      state.chats.set(item.id, item);
    }
    renderChats();
  } else if (item.kind === "message" && item.chatId === state.open) {
    if (state.openSnapshot === null) state.pending.push({ eventId, item });
    else if (eventId > state.openSnapshot) showLive(item);
  }
}

function listen(after) {
  const source = new EventSource(`/api/events?after=${after}`);
  source.onopen = () => status("live");
  source.onerror = () => status("reconnecting...");
  source.onmessage = onEvent;
  // The app's log no longer holds what this page missed: start again from a snapshot.
  source.addEventListener("reset", () => location.reload());
  state.source = source;
}

function showSendError(text) {
  $("send-error-text").textContent = text;
  $("send-error").hidden = false;
}

function clearSendError() {
  state.failed = null;
  $("send-error").hidden = true;
  $("send-error-text").textContent = "";
}

// Sends `content` to `chatId`; true once Graph has it. A failure stays on the page, with a
// retry, until a send succeeds.
async function deliver(chatId, content) {
  let response;
  try {
    response = await fetch(`/api/chats/${encodeURIComponent(chatId)}/messages`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ content, contentType: "text" }),
    });
  } catch (e) {
    state.failed = { chatId, content };
    showSendError(`Not sent: the app could not be reached. Your message is kept below.`);
    return false;
  }
  if (!response.ok) {
    state.failed = { chatId, content };
    showSendError(`Not sent: ${await failure(response)}.`);
    return false;
  }
  clearSendError();
  const item = await response.json();
  // The same message as its notification will be: shown once, whichever comes first.
  if (state.open === chatId) { upsertMessage(item); scrollToBottom(); }
  return true;
}

async function send(form) {
  // A second press (or Enter) while a message is on its way would send it twice.
  if (state.sending) return;
  const content = form.elements.content.value;
  if (!content.trim()) return;
  state.sending = true;
  try {
    // Submitted before the page had opened a chat: send once it has.
    await state.started;
    if (!state.open) {
      showSendError("Not sent: open a chat first.");
      return;
    }
    const ok = await deliver(state.open, content);
    // Keep anything typed meanwhile.
    if (ok && form.elements.content.value === content) form.elements.content.value = "";
  } finally {
    state.sending = false;
  }
}

async function retry() {
  if (state.sending || !state.failed) return;
  const { chatId, content } = state.failed;
  state.sending = true;
  try {
    const ok = await deliver(chatId, content);
    const field = $("content");
    if (ok && field.value === content) field.value = "";
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
  // Enter sends; Shift+Enter (and Enter while composing text in an input method) is a new line.
  $("content").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      compose.requestSubmit();
    }
  });
  compose.querySelector("button[type=submit]").disabled = false;
  $("retry").addEventListener("click", retry);
  $("discard").addEventListener("click", clearSendError);
  $("back").addEventListener("click", () => {
    showView("list");
    const entry = document.querySelector(`[data-chat-id="${CSS.escape(state.open || "")}"]`);
    if (entry) entry.focus();
  });
  state.started = load();
}

async function load() {
  try {
    state.me = (await getJson("/api/me")).data;
    const { data, last } = await getJson("/api/chats");
    for (const chat of data) state.chats.set(chat.id, chat);
    state.chatsSnapshot = last;
    renderChats();
    listen(last);
    const wanted = decodeURIComponent(location.hash.slice(1));
    const named = state.chats.has(wanted) && !state.chats.get(wanted).hidden;
    const first = named ? wanted : [...$("chats").querySelectorAll("[data-chat-id]")]
      .map((e) => e.dataset.chatId)[0];
    // A narrow screen shows the list first, unless the address names a chat.
    showView(named || !narrow() ? "chat" : "list");
    if (first) await openChat(first, false);
    else status("live");
  } catch (e) {
    status(`cannot load: ${e.message}`);
  }
}

start();

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
  more: false,           // whether the open chat has older messages than the page shows
  loadingOlder: false,   // an older page is on its way
  readTimer: null,       // a mark-read about to be sent for the open chat
  showHidden: false,     // the list shows hidden chats too
  replyTo: null,         // the message the next send replies to: { chatId, item }
  mentions: [],          // people picked with `@` for the next send: { userId, displayName }
  image: null,           // an image pasted or dropped, sent with the next send (a File)
  writes: new Map(),     // writes Graph is throttling (kept by the app, retried): id -> what
};

// Messages per page of a chat's history.
const PAGE = 50;

const $ = (id) => document.getElementById(id);
const narrow = () => window.matchMedia("(max-width: 700px)").matches;

// Every call of the app's API. An answer of 401 means signed out (the session ended, or the
// person's access was revoked): the page goes to the sign-in.
async function api(url, options) {
  const response = await fetch(url, options);
  if (response.status === 401) { location.assign("/"); throw new Error("signed out"); }
  return response;
}

async function getJson(url) {
  const response = await api(url, { cache: "no-store" });
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

// A chat's name as Teams gives it: its topic, else the other people's names.
function chatLabel(chat) {
  if (chat.topic) return chat.topic;
  const names = (chat.members || []).map((m) => m.displayName).filter(Boolean);
  if (names.length) return names.join(", ");
  return chat.chatType === "oneOnOne" ? "Direct chat" : "Group chat";
}

// When the chat last saw activity: its newest message (0 without one).
function activity(chat) {
  const last = chat.lastMessage;
  return (last && Date.parse(last.createdDateTime)) || 0;
}

// A time as the list shows it: the time of day today, else the date.
function shortTime(iso) {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return "";
  const now = new Date();
  return t.toDateString() === now.toDateString()
    ? t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : t.toLocaleDateString([], { month: "short", day: "numeric" });
}

// The person is reading the open chat (the page is in front and shows it).
function reading(chatId) {
  return chatId === state.open && document.visibilityState === "visible"
    && (!narrow() || $("app").dataset.view === "chat");
}

// The unread count shown: none for the chat being read (the page marks it read).
function shownUnread(chat) {
  return reading(chat.id) ? 0 : chat.unreadCount;
}

function renderChats() {
  const list = $("chats");
  const focused = document.activeElement && document.activeElement.dataset
    ? document.activeElement.dataset.chatId : undefined;
  // Entries are kept and updated in place (a person tabbing through them keeps their place).
  const kept = new Map([...list.children].map((li) => [li.firstChild.dataset.chatId, li]));
  const visible = [...state.chats.values()].filter((c) => state.showHidden || !c.hidden || c.id === state.open);
  // Latest activity first, as Teams lists them.
  visible.sort((a, b) => activity(b) - activity(a)
    || chatLabel(a).localeCompare(chatLabel(b)) || a.id.localeCompare(b.id));
  let index = 0;
  for (const chat of visible) {
    let li = kept.get(chat.id);
    kept.delete(chat.id);
    if (!li) {
      li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.chatId = chat.id;
      button.addEventListener("click", () => {
        openChat(chat.id, true).catch((e) => status(`cannot open: ${e.message}`));
      });
      li.append(button);
    }
    const entry = li.firstChild;
    const unreadCount = shownUnread(chat);
    entry.dataset.unread = String(unreadCount);
    entry.dataset.hidden = String(Boolean(chat.hidden));
    if (chat.id === state.open) entry.setAttribute("aria-current", "true");
    else entry.removeAttribute("aria-current");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = chatLabel(chat);
    const time = document.createElement("time");
    time.className = "time";
    const last = chat.lastMessage;
    if (last && last.createdDateTime) {
      time.dateTime = last.createdDateTime;
      time.textContent = shortTime(last.createdDateTime);
    }
    const preview = document.createElement("span");
    preview.className = "preview";
    if (last) {
      const mine = last.from && state.me && last.from.id === state.me.id;
      const who = mine ? "You" : ((last.from && last.from.displayName) || "");
      preview.textContent = who ? `${who}: ${last.text}` : last.text;
    } else {
      preview.textContent = "No messages yet";
    }
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = String(unreadCount);
    const unread = document.createElement("span");
    unread.className = "visually-hidden";
    unread.textContent = unreadCount ? " unread" : "";
    badge.append(unread);
    entry.replaceChildren(name, time, preview, badge);
    // In order; an entry already in its place is not moved (moving one takes its focus).
    const at = list.children[index];
    if (at !== li) list.insertBefore(li, at || null);
    index += 1;
  }
  for (const gone of kept.values()) gone.remove();
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
  if (waitingOn(item.id)) li.dataset.pending = "true";
  if (item.from && item.from.id) li.dataset.fromId = item.from.id;
  const meta = document.createElement("div");
  meta.className = "meta";
  const who = item.from && item.from.displayName ? item.from.displayName : "Unknown sender";
  const when = item.createdDateTime ? new Date(item.createdDateTime).toLocaleString() : "";
  meta.textContent = `${who} · ${when}${item.state === "edited" ? " · edited" : ""}`;
  if (item.event && item.state !== "deleted") {
    // A system event, as Teams shows it: one line, no sender, nothing to act on.
    li.className = "message system";
    const line = document.createElement("div");
    line.className = "body";
    const when = item.createdDateTime ? new Date(item.createdDateTime).toLocaleString() : "";
    line.textContent = when ? `${item.event} · ${when}` : item.event;
    li.append(line);
    li._item = item;
    return li;
  }
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
    // Mentions highlighted; the signed-in person's own marked.
    const mentions = item.mentions || [];
    body.querySelectorAll("at").forEach((at, n) => {
      at.classList.add("mention");
      const m = mentions[n];
      if (m && m.userId) at.dataset.userId = m.userId;
      if (m && m.me) at.classList.add("me");
    });
  } else {
    body.textContent = item.content || "";
  }
  if (item.replyTo) {
    // A reply quotes the message it answers, as Teams shows it.
    li.dataset.replyTo = item.replyTo.id;
    const quote = document.createElement("blockquote");
    quote.className = "quote";
    const from = document.createElement("div");
    from.className = "quote-from";
    from.textContent = item.replyTo.from || "";
    const said = document.createElement("div");
    said.textContent = item.replyTo.preview || "";
    quote.append(from, said);
    li.append(meta, quote, body);
  } else {
    li.append(meta, body);
  }
  if (item.notice) {
    const notice = document.createElement("div");
    notice.className = "notice";
    notice.textContent = item.notice;
    li.append(notice);
  }
  // Files as links with their names; cards as a placeholder (the app never sends their JSON).
  const attached = document.createElement("ul");
  attached.className = "attachments";
  for (const a of item.attachments || []) {
    const entry = document.createElement("li");
    entry.dataset.attachment = a.kind;
    if (a.kind === "card") {
      entry.className = "card";
      entry.textContent = "A card (open Teams to see it)";
    } else if (a.url) {
      const link = document.createElement("a");
      link.href = a.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.textContent = a.name || "A file";
      entry.append("File: ", link);
    } else {
      entry.textContent = `File: ${a.name || "a file"}`;
    }
    attached.append(entry);
  }
  if (attached.childElementCount) li.append(attached);
  const reactions = document.createElement("div");
  reactions.className = "reactions";
  for (const r of item.reactions || []) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "reaction";
    chip.dataset.reaction = r.reactionType;
    chip.dataset.count = String(r.count);
    chip.setAttribute("aria-pressed", String(Boolean(r.mine)));
    const names = (r.users || []).map((u) => personName(u)).join(", ");
    chip.title = names;
    chip.setAttribute("aria-label", `${r.reactionType} ${r.count}: ${names}`);
    chip.textContent = `${r.reactionType} ${r.count}`;
    chip.addEventListener("click", () => react(item, r.reactionType, !r.mine));
    reactions.append(chip);
  }
  if (reactions.childElementCount) li.append(reactions);
  const actions = document.createElement("div");
  actions.className = "actions";
  const author = item.from && item.from.displayName ? item.from.displayName : "this person";
  const button = (action, label, name, run) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.action = action;
    b.textContent = label;
    b.setAttribute("aria-label", name);
    b.addEventListener("click", run);
    actions.append(b);
  };
  if (item.state === "deleted") {
    if (mine) button("undo-delete", "Undo", "Undo the delete", () => messageAction(item, "undoSoftDelete"));
  } else if (item.state !== "blocked") {
    const liked = (item.reactions || []).some((r) => r.reactionType === LIKE && r.mine);
    button("react", LIKE, liked ? `Remove your ${LIKE} from ${author}'s message` : `React ${LIKE} to ${author}'s message`,
      () => react(item, LIKE, !liked));
    button("reply", "Reply", `Reply to ${author}'s message`, () => startReply(item));
    if (mine) {
      button("edit", "Edit", "Edit your message", () => startEdit(li, item));
      button("delete", "Delete", "Delete your message", () => messageAction(item, "softDelete"));
    }
  }
  if (actions.childElementCount) li.append(actions);
  li._item = item;
  return li;
}

// The reaction the react button gives (Teams' first).
const LIKE = "👍";

// A person's name: theirs, "You", or the name the chat's members give them.
function personName(user) {
  if (state.me && user.id === state.me.id) return "You";
  if (user.displayName) return user.displayName;
  const chat = state.chats.get(state.open);
  const member = chat && (chat.members || []).find((m) => m.id === user.id);
  return (member && member.displayName) || "Someone";
}

// Something a person did that did not work: said on the page, and to screen readers.
function problem(text) {
  const shown = $("read-error");
  shown.textContent = text;
  shown.hidden = false;
}

// A POST or PATCH of the app's API; the message's new item on success.
async function change(url, method, body) {
  let response;
  try {
    response = await api(url, {
      method,
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (_) {
    return { error: "the app could not be reached" };
  }
  if (!response.ok) return { error: await failure(response) };
  if (response.status === 204) return {};
  // 202: Graph is throttling; the app keeps it and retries (its events say what became of it).
  if (response.status === 202) return { waiting: await response.json().catch(() => ({})) };
  return { item: await response.json() };
}

// A write Graph is throttling: shown as waiting (on its message, when it changes one) until its
// event says it is done or failed.
function waitFor(waiting, write) {
  if (typeof waiting.write !== "number") return;
  state.writes.set(waiting.write, write);
  if (write.messageId) {
    const li = [...$("messages").children].find((m) => m.dataset.messageId === write.messageId);
    if (li) li.dataset.pending = "true";
  }
  status("waiting for Teams...");
  announce("Teams is busy: it will be done as soon as Teams takes it.");
}

// Whether a write waits on message `id`.
function waitingOn(id) {
  for (const write of state.writes.values()) if (write.messageId === id) return true;
  return false;
}

// What became of a write the app kept: done (its message's own event shows it), or failed,
// with Graph's reason.
function onWrite(item) {
  if (item.state === "waiting") return;
  const write = state.writes.get(item.id) || { chatId: item.chatId, messageId: item.messageId };
  state.writes.delete(item.id);
  if (write.messageId && !waitingOn(write.messageId)) {
    const li = [...$("messages").children].find((m) => m.dataset.messageId === write.messageId);
    if (li) delete li.dataset.pending;
  }
  if (!state.writes.size) status("live");
  if (item.state !== "failed") return;
  const reason = item.reason || "Teams did not take it";
  if (item.what === "send" && write.content !== undefined) {
    state.failed = { chatId: write.chatId, content: write.content, replyTo: write.replyTo, mentions: write.mentions };
    showSendError(`Not sent: ${reason}.`);
  } else {
    problem(`That did not work: ${reason}.`);
  }
}

function messageUrl(item, tail) {
  const chat = encodeURIComponent(state.open);
  return `/api/chats/${chat}/messages/${encodeURIComponent(item.id)}${tail}`;
}

async function messageAction(item, action, body) {
  const chatId = state.open;
  const { item: changed, error, waiting } = await change(messageUrl(item, `/${action}`), "POST", body);
  if (error) { problem(`That did not work: ${error}.`); return; }
  $("read-error").hidden = true;
  if (waiting) { waitFor(waiting, { chatId, messageId: item.id, what: action }); return; }
  if (changed && state.open === chatId) upsertMessage(changed);
}

function react(item, reactionType, on) {
  return messageAction(item, on ? "setReaction" : "unsetReaction", { reactionType });
}

// Edit in place: the text in a box under the message; Enter (or Save) saves, Escape cancels.
function startEdit(li, item) {
  if (li.querySelector("form.edit")) return;
  const form = document.createElement("form");
  form.className = "edit";
  const field = document.createElement("textarea");
  field.name = "content";
  field.setAttribute("aria-label", "Edit your message");
  field.value = item.contentType === "html" ? textOf(item.content) : (item.content || "");
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = "Save";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.textContent = "Cancel";
  form.append(field, save, cancel);
  const done = () => { form.remove(); li.querySelector(".body").hidden = false; };
  cancel.addEventListener("click", done);
  field.addEventListener("keydown", (e) => {
    if (e.key === "Escape") done();
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const content = field.value;
    if (!content.trim()) return;
    const chatId = state.open;
    const { item: changed, error, waiting } = await change(messageUrl(item, ""), "PATCH", { content });
    if (error) { problem(`Not edited: ${error}.`); return; }
    $("read-error").hidden = true;
    if (waiting) { done(); waitFor(waiting, { chatId, messageId: item.id, what: "edit" }); return; }
    if (changed && state.open === chatId) upsertMessage(changed);
  });
  li.querySelector(".body").hidden = true;
  li.querySelector(".body").after(form);
  field.focus();
}

// `@` in the message box: a picker of the chat's other members; the picked person is mentioned
// for real (`<at>` and `mentions`) when the message is sent.
function mentionQuery() {
  const field = $("content");
  const before = field.value.slice(0, field.selectionStart);
  const match = /(^|\s)@([^@\n]{0,40})$/.exec(before);
  return match ? { start: before.length - match[2].length - 1, text: match[2] } : null;
}

function updateMentionPicker() {
  const picker = $("mention-picker");
  const query = mentionQuery();
  const chat = state.chats.get(state.open);
  const people = query && chat ? (chat.members || []).filter((m) => m.displayName
    && m.displayName.toLowerCase().startsWith(query.text.toLowerCase())) : [];
  if (!people.length) { closeMentionPicker(); return; }
  picker.replaceChildren();
  people.forEach((person, n) => {
    const option = document.createElement("li");
    option.id = `mention-option-${n}`;
    option.setAttribute("role", "option");
    option.dataset.userId = person.id;
    option.textContent = person.displayName;
    option.setAttribute("aria-selected", String(n === 0));
    option.addEventListener("mousedown", (e) => { e.preventDefault(); pickMention(person); });
    picker.append(option);
  });
  picker.hidden = false;
  $("content").setAttribute("aria-activedescendant", "mention-option-0");
}

function closeMentionPicker() {
  $("mention-picker").hidden = true;
  $("content").removeAttribute("aria-activedescendant");
}

function moveMention(step) {
  const options = [...$("mention-picker").children];
  const at = options.findIndex((o) => o.getAttribute("aria-selected") === "true");
  const next = (at + step + options.length) % options.length;
  options.forEach((o, n) => o.setAttribute("aria-selected", String(n === next)));
  $("content").setAttribute("aria-activedescendant", options[next].id);
}

function pickMention(person) {
  const field = $("content");
  const query = mentionQuery();
  if (!query) return;
  const end = field.selectionStart;
  const text = `@${person.displayName} `;
  field.value = field.value.slice(0, query.start) + text + field.value.slice(end);
  const caret = query.start + text.length;
  field.setSelectionRange(caret, caret);
  if (!state.mentions.some((m) => m.userId === person.id)) {
    state.mentions.push({ userId: person.id, displayName: person.displayName });
  }
  closeMentionPicker();
  field.focus();
}

// Reply: the message quoted above the message box until sent or cancelled.
function startReply(item) {
  state.replyTo = { chatId: state.open, item };
  const who = item.from && item.from.displayName ? item.from.displayName : "Someone";
  const text = item.contentType === "html" ? textOf(item.content) : (item.content || "");
  $("replying-text").textContent = `Replying to ${who}: ${text.slice(0, 120)}`;
  $("replying").hidden = false;
  $("content").focus();
}

function cancelReply() {
  state.replyTo = null;
  $("replying").hidden = true;
}

// A chat action through Graph (unread, hide, unhide).
async function chatAction(action) {
  const chatId = state.open;
  if (!chatId) return;
  // Left unread: the person stops reading it first (or the page would mark it read again).
  if (action === "unread") closeChat();
  const { error } = await change(`/api/chats/${encodeURIComponent(chatId)}/${action}`, "POST");
  if (error) { problem(`That did not work: ${error}.`); return; }
  if (action === "unread") status("Marked unread");
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
  renderChatActions();
  if (byPerson) showView("chat");
  renderChats();
  $("messages").replaceChildren();
  delete $("messages").dataset.loadedChat;
  $("older").hidden = true;
  $("history-start").hidden = true;
  $("read-error").hidden = true;
  const unreadBefore = chat ? chat.unreadCount : 0;
  // Opening a chat marks it read, through Graph (the app calls markChatReadForUser).
  markRead(id);
  const { data, last } = await getJson(`/api/chats/${encodeURIComponent(id)}/history?limit=${PAGE}`);
  if (state.open !== id) return;
  for (const item of data.messages) upsertMessage(item);
  setMore(data.more);
  state.openSnapshot = last;
  for (const { eventId, item } of state.pending) if (eventId > last) upsertMessage(item);
  state.pending = [];
  placeDivider(unreadBefore);
  scrollToBottom();
  // The open chat's snapshot is on the page (for tests and tools that wait for it).
  $("messages").dataset.loadedChat = id;
  if (byPerson && narrow()) $("content").focus();
}

// Marks `chatId` read through the app (markChatReadForUser); a failure is shown.
async function markRead(chatId) {
  clearTimeout(state.readTimer);
  state.readTimer = null;
  let problem = null;
  try {
    const response = await api(`/api/chats/${encodeURIComponent(chatId)}/read`, { method: "POST" });
    if (!response.ok) problem = await failure(response);
  } catch (_) {
    problem = "the app could not be reached";
  }
  if (state.open !== chatId) return;
  const shown = $("read-error");
  if (problem) {
    shown.textContent = `Could not mark this chat read: ${problem}. Others may still see it unread.`;
    shown.hidden = false;
  } else {
    shown.hidden = true;
  }
}

// A new message in the chat being read: it is read too (once, shortly, for a burst).
function readSoon(chatId) {
  if (state.readTimer) return;
  state.readTimer = setTimeout(() => markRead(chatId), 300);
}

function setMore(more) {
  state.more = Boolean(more);
  $("older").hidden = !state.more;
  $("history-start").hidden = state.more || !$("messages").querySelector("[data-message-id]");
}

// The next older page of the open chat: from the cache, then from Graph past it.
async function loadOlder() {
  if (state.loadingOlder || !state.more || !state.open || state.openSnapshot === null) return;
  const chatId = state.open;
  const first = $("messages").querySelector("[data-message-id]");
  const before = first ? `&before=${encodeURIComponent(first.dataset.messageId)}` : "";
  state.loadingOlder = true;
  $("older").disabled = true;
  $("older").textContent = "Loading older messages...";
  try {
    const { data } = await getJson(`/api/chats/${encodeURIComponent(chatId)}/history?limit=${PAGE}${before}`);
    if (state.open !== chatId) return;
    const scroller = $("scroller");
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    for (const item of data.messages) upsertMessage(item);
    setMore(data.more);
    // The messages the person was reading stay where they were.
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
  } catch (e) {
    status(`cannot load older messages: ${e.message}`);
  } finally {
    state.loadingOlder = false;
    $("older").disabled = false;
    $("older").textContent = "Show older messages";
  }
}

// A line before the first of the `unread` newest messages from others: where the person left off.
function placeDivider(unread) {
  const old = $("messages").querySelector(".divider");
  if (old) old.remove();
  if (!unread) return;
  const others = [...$("messages").querySelectorAll("[data-message-id]")].filter((li) =>
    !li.classList.contains("mine") && li.dataset.state !== "deleted");
  const first = others[Math.max(0, others.length - unread)];
  if (!first) return;
  const divider = document.createElement("li");
  divider.className = "divider";
  divider.setAttribute("role", "separator");
  divider.textContent = "New messages";
  first.before(divider);
}

// The open chat's own buttons: mark unread, hide or unhide.
function renderChatActions() {
  const chat = state.chats.get(state.open);
  $("chat-actions").hidden = !chat;
  $("rename").hidden = !chat || chat.chatType !== "group";
  $("add-people").hidden = !chat || chat.chatType !== "group";
  if (picker.adding && picker.adding !== state.open) closeNewChat();
  if (!chat || chat.chatType !== "group") closeRename();
  $("hide").hidden = !chat || chat.hidden;
  $("unhide").hidden = !chat || !chat.hidden;
}

function closeChat() {
  state.open = null;
  $("messages").replaceChildren();
  delete $("messages").dataset.loadedChat;
  $("chat-title").textContent = "Select a chat";
  renderChatActions();
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
      // Counted unread while the person reads it: it is read.
      if (item.unreadCount > 0 && reading(item.id)) readSoon(item.id);
    }
    renderChats();
    if (item.id === state.open && !item.removed) {
      renderChatActions();
      // Renamed (here or in Teams): the open chat's title follows.
      $("chat-title").textContent = chatLabel(item);
    }
  } else if (item.kind === "write") {
    onWrite(item);
  } else if (item.kind === "message" && item.chatId === state.open) {
    if (state.openSnapshot === null) state.pending.push({ eventId, item });
    else if (eventId > state.openSnapshot) showLive(item);
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
async function deliver(chatId, content, replyTo, mentions) {
  const chat = encodeURIComponent(chatId);
  const mentioned = (mentions || []).filter((m) => content.includes(`@${m.displayName}`));
  const url = replyTo
    ? `/api/chats/${chat}/messages/${encodeURIComponent(replyTo)}/reply`
    : mentioned.length ? `/api/chats/${chat}/mention` : `/api/chats/${chat}/messages`;
  let response;
  try {
    response = await api(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(mentioned.length && !replyTo
        ? { content, mentions: mentioned } : { content, contentType: "text" }),
    });
  } catch (e) {
    state.failed = { chatId, content, replyTo, mentions };
    showSendError(`Not sent: the app could not be reached. Your message is kept below.`);
    return false;
  }
  if (!response.ok) {
    state.failed = { chatId, content, replyTo, mentions };
    showSendError(`Not sent: ${await failure(response)}.`);
    return false;
  }
  clearSendError();
  // 202: Graph is throttling; the app keeps it and sends it as soon as Graph takes it (then
  // events: the message's, or the write's failure with Graph's reason).
  if (response.status === 202) {
    const waiting = await response.json().catch(() => ({}));
    waitFor(waiting, { chatId, content, replyTo, mentions, what: "send" });
    status("sending...");
    return true;
  }
  const item = await response.json();
  // The same message as its notification will be: shown once, whichever comes first.
  if (state.open === chatId) { upsertMessage(item); scrollToBottom(); }
  return true;
}

async function send(form) {
  // A second press (or Enter) while a message is on its way would send it twice.
  if (state.sending) return;
  const content = form.elements.content.value;
  if (!content.trim() && !state.image) return;
  state.sending = true;
  try {
    // Submitted before the page had opened a chat: send once it has.
    await state.started;
    if (!state.open) {
      showSendError("Not sent: open a chat first.");
      return;
    }
    if (state.image) {
      const ok = await sendImage(state.open, content, state.image);
      if (ok && form.elements.content.value === content) form.elements.content.value = "";
      return;
    }
    const reply = state.replyTo && state.replyTo.chatId === state.open ? state.replyTo.item.id : null;
    const ok = await deliver(state.open, content, reply, state.mentions);
    if (ok && reply) cancelReply();
    if (ok) state.mentions = [];
    // Keep anything typed meanwhile.
    if (ok && form.elements.content.value === content) form.elements.content.value = "";
  } finally {
    state.sending = false;
  }
}

async function retry() {
  if (state.sending || !state.failed) return;
  const { chatId, content, replyTo, mentions } = state.failed;
  state.sending = true;
  try {
    const ok = await deliver(chatId, content, replyTo, mentions);
    const field = $("content");
    if (ok && field.value === content) field.value = "";
  } finally {
    state.sending = false;
  }
}

// A new chat: a people picker over the organisation's directory (searched through the app, as
// the person), a name for a group, then the chat is created through Graph and opened.
const picker = {
  picked: [],        // { id, displayName }, in the order picked
  timer: null,       // the debounce of the next search
  inFlight: false,   // a search is on its way (at most one at a time)
  again: false,      // the words changed while it was: search once more after it
  creating: false,   // the chat is being created
  adding: null,      // the group chat the picked people are added to (null: a new chat)
};

// How long the picker waits after the last key before it searches.
const SEARCH_DEBOUNCE_MS = 250;

function openNewChat() {
  const form = $("new-chat-form");
  form.hidden = false;
  $("new-chat").setAttribute("aria-expanded", "true");
  $("new-chat-error").hidden = true;
  $("people").focus();
}

// The same picker adds people to the open group chat: Graph adds each as the person, and the
// chat shows Teams' "X added Y".
function openAddPeople() {
  const chat = state.chats.get(state.open);
  if (!chat || chat.chatType !== "group") return;
  closeNewChat();
  picker.adding = chat.id;
  $("new-chat-heading").textContent = `Add people to ${chatLabel(chat)}`;
  $("start-chat").textContent = "Add";
  $("picked").setAttribute("aria-label", "People to add");
  $("topic-field").hidden = true;
  $("add-people").setAttribute("aria-expanded", "true");
  if (narrow()) showView("list");
  openNewChat();
  $("new-chat").setAttribute("aria-expanded", "false");
}

function closeNewChat() {
  const form = $("new-chat-form");
  const adding = picker.adding;
  picker.adding = null;
  $("new-chat-heading").textContent = "New chat";
  $("start-chat").textContent = "Start chat";
  $("picked").setAttribute("aria-label", "People in the new chat");
  $("topic-field").hidden = false;
  $("add-people").setAttribute("aria-expanded", "false");
  if (adding && narrow() && state.open === adding) showView("chat");
  form.hidden = true;
  form.reset();
  picker.picked = [];
  renderPicked();
  showResults([]);
  $("people-status").textContent = "";
  $("new-chat-error").hidden = true;
  $("new-chat").setAttribute("aria-expanded", "false");
}

function peopleInput() {
  clearTimeout(picker.timer);
  picker.timer = setTimeout(searchPeople, SEARCH_DEBOUNCE_MS);
}

async function searchPeople() {
  if (picker.inFlight) { picker.again = true; return; }
  const words = $("people").value.trim();
  if (!words) { showResults([]); $("people-status").textContent = ""; return; }
  picker.inFlight = true;
  try {
    const response = await api(`/api/people?search=${encodeURIComponent(words)}`, { cache: "no-store" });
    if (!response.ok) {
      $("people-status").textContent = `Cannot search: ${await failure(response)}.`;
      return;
    }
    const people = await response.json();
    // An answer for words no longer typed is not shown (the next search follows).
    if ($("people").value.trim() !== words) return;
    const fresh = people.filter((p) => !picker.picked.some((q) => q.id === p.id));
    showResults(fresh);
    $("people-status").textContent = fresh.length
      ? `${fresh.length} ${fresh.length === 1 ? "person" : "people"} found`
      : "Nobody found by that name";
  } catch (_) {
    $("people-status").textContent = "Cannot search: the app could not be reached.";
  } finally {
    picker.inFlight = false;
    if (picker.again) { picker.again = false; searchPeople(); }
  }
}

function showResults(people) {
  const list = $("people-results");
  list.replaceChildren();
  people.forEach((person, n) => {
    const option = document.createElement("li");
    option.id = `person-option-${n}`;
    option.setAttribute("role", "option");
    option.dataset.userId = person.id;
    option.setAttribute("aria-selected", String(n === 0));
    const name = document.createElement("span");
    name.textContent = person.displayName || person.userPrincipalName || person.id;
    option.append(name);
    if (person.userPrincipalName) {
      const upn = document.createElement("span");
      upn.className = "upn";
      upn.textContent = person.userPrincipalName;
      option.append(upn);
    }
    option._person = person;
    option.addEventListener("mousedown", (e) => { e.preventDefault(); pickPerson(person); });
    list.append(option);
  });
  list.hidden = people.length === 0;
  const input = $("people");
  input.setAttribute("aria-expanded", String(people.length > 0));
  if (people.length) input.setAttribute("aria-activedescendant", "person-option-0");
  else input.removeAttribute("aria-activedescendant");
}

function movePerson(step) {
  const options = [...$("people-results").children];
  if (!options.length) return;
  const at = options.findIndex((o) => o.getAttribute("aria-selected") === "true");
  const next = (at + step + options.length) % options.length;
  options.forEach((o, n) => o.setAttribute("aria-selected", String(n === next)));
  $("people").setAttribute("aria-activedescendant", options[next].id);
}

function pickPerson(person) {
  if (!picker.picked.some((p) => p.id === person.id)) {
    picker.picked.push({ id: person.id, displayName: person.displayName || person.userPrincipalName || person.id });
  }
  $("people").value = "";
  showResults([]);
  $("people-status").textContent = `${person.displayName || "Someone"} added`;
  renderPicked();
  $("people").focus();
}

function renderPicked() {
  const list = $("picked");
  list.replaceChildren();
  for (const person of picker.picked) {
    const li = document.createElement("li");
    li.dataset.pickedUserId = person.id;
    const name = document.createElement("span");
    name.textContent = person.displayName;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.setAttribute("aria-label", `Remove ${person.displayName}`);
    remove.addEventListener("click", () => {
      picker.picked = picker.picked.filter((p) => p.id !== person.id);
      renderPicked();
      $("people").focus();
    });
    li.append(name, remove);
    list.append(li);
  }
  // A name is for a group: two or more others.
  const group = picker.picked.length >= 2;
  $("topic").disabled = !group;
  $("topic-hint").textContent = group ? "Optional." : "For a group: pick two or more people.";
}

async function addPeople() {
  if (picker.creating) return;
  const error = $("new-chat-error");
  const chatId = picker.adding;
  if (!picker.picked.length) {
    error.textContent = "Pick at least one person to add.";
    error.hidden = false;
    $("people").focus();
    return;
  }
  const names = picker.picked.map((p) => p.displayName).join(", ");
  picker.creating = true;
  $("start-chat").disabled = true;
  try {
    const { item, error: failed } = await change(
      `/api/chats/${encodeURIComponent(chatId)}/members`, "POST",
      { members: picker.picked.map((p) => p.id) });
    if (failed) {
      error.textContent = `Nobody was added: ${failed}.`;
      error.hidden = false;
      return;
    }
    if (item) state.chats.set(item.id, item);
    closeNewChat();
    renderChats();
    if (state.open === chatId) renderChatActions();
    $("add-people").focus();
    announce(`Added ${names}`);
  } finally {
    picker.creating = false;
    $("start-chat").disabled = false;
  }
}

async function createChat(form) {
  if (picker.adding) return addPeople();
  if (picker.creating) return;
  const error = $("new-chat-error");
  if (!picker.picked.length) {
    error.textContent = "Pick at least one person to chat with.";
    error.hidden = false;
    $("people").focus();
    return;
  }
  const body = { members: picker.picked.map((p) => p.id) };
  const topic = form.elements.topic.value.trim();
  if (picker.picked.length >= 2 && topic) body.topic = topic;
  picker.creating = true;
  $("start-chat").disabled = true;
  try {
    const { item, error: failed } = await change("/api/chats", "POST", body);
    if (failed) {
      error.textContent = `The chat was not started: ${failed}.`;
      error.hidden = false;
      return;
    }
    // Shown from Graph's answer now; its notification later updates the same entry.
    state.chats.set(item.id, item);
    closeNewChat();
    renderChats();
    await openChat(item.id, true);
    announce(`Chat started: ${chatLabel(item)}`);
  } finally {
    picker.creating = false;
    $("start-chat").disabled = false;
  }
}

function startNewChat() {
  $("new-chat").addEventListener("click", () => {
    if ($("new-chat-form").hidden || picker.adding) { closeNewChat(); openNewChat(); } else closeNewChat();
  });
  $("add-people").addEventListener("click", () => {
    if (picker.adding) { closeNewChat(); $("add-people").focus(); } else openAddPeople();
  });
  $("new-chat-cancel").addEventListener("click", () => {
    const back = picker.adding ? "add-people" : "new-chat";
    closeNewChat();
    $(back).focus();
  });
  $("new-chat-form").addEventListener("submit", (e) => { e.preventDefault(); createChat(e.target); });
  $("people").addEventListener("input", peopleInput);
  $("people").addEventListener("blur", () => setTimeout(() => showResults([]), 150));
  $("people").addEventListener("keydown", (e) => {
    const open = !$("people-results").hidden;
    if (open && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      e.preventDefault();
      movePerson(e.key === "ArrowDown" ? 1 : -1);
    } else if (open && e.key === "Enter") {
      // Enter picks the highlighted person (it does not submit the form).
      e.preventDefault();
      const option = $("people-results").querySelector("[aria-selected=true]");
      if (option) pickPerson(option._person);
    } else if (e.key === "Escape") {
      if (open) showResults([]);
      else { const back = picker.adding ? "add-people" : "new-chat"; closeNewChat(); $(back).focus(); }
    }
  });
}

// Images: one pasted or dropped is attached to the next send, and sent inline through Graph
// (its hostedContents); the page shows it back through the app like every inline image.
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
// The largest image the app sends (2 MiB), as the app checks it too.
const MAX_IMAGE_BYTES = 2 * 1024 * 1024;

function attachError(text) {
  const shown = $("attach-error");
  shown.textContent = text;
  shown.hidden = !text;
}

function sizeText(bytes) {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

// A pasted or dropped file: attached if it is an image the app sends, else refused, saying why.
function attachFile(file) {
  const name = file.name || "The file";
  if (!IMAGE_TYPES.includes(file.type)) {
    attachError(`${name} was not attached: only images (PNG, JPEG, GIF or WebP) can be pasted or dropped here.`);
    return;
  }
  if (file.size > MAX_IMAGE_BYTES) {
    attachError(`${name} was not attached: it is ${sizeText(file.size)}, and images up to 2 MB can be sent.`);
    return;
  }
  attachError("");
  state.image = file;
  $("attachment-text").textContent = `Image attached: ${file.name || "pasted image"} (${sizeText(file.size)}). Enter sends it.`;
  $("attachment").hidden = false;
  // With an image, the text is optional.
  $("content").required = false;
  $("content").focus();
}

function removeAttachment() {
  state.image = null;
  $("attachment").hidden = true;
  $("attachment-text").textContent = "";
  $("content").required = true;
}

function filesOf(transfer) {
  return transfer ? [...(transfer.files || [])] : [];
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",")[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// Sends the attached image (with `content` as its caption) to `chatId`; true once Graph has it.
async function sendImage(chatId, content, file) {
  let contentBytes;
  try {
    contentBytes = await readBase64(file);
  } catch (_) {
    attachError("The image could not be read. Try pasting it again.");
    return false;
  }
  const { item, error } = await change(`/api/chats/${encodeURIComponent(chatId)}/images`, "POST",
    { content, contentType: file.type, contentBytes });
  if (error) {
    attachError(`The image was not sent: ${error}.`);
    return false;
  }
  attachError("");
  removeAttachment();
  if (state.open === chatId) { upsertMessage(item); scrollToBottom(); }
  announce("Image sent");
  return true;
}

function startImages() {
  $("content").addEventListener("paste", (e) => {
    const files = filesOf(e.clipboardData);
    if (!files.length) return;
    e.preventDefault();
    attachFile(files[0]);
  });
  const chat = $("chat");
  chat.addEventListener("dragover", (e) => {
    if (e.dataTransfer && [...e.dataTransfer.types].includes("Files")) e.preventDefault();
  });
  chat.addEventListener("drop", (e) => {
    const files = filesOf(e.dataTransfer);
    if (!files.length) return;
    e.preventDefault();
    attachFile(files[0]);
  });
  $("remove-attachment").addEventListener("click", () => { removeAttachment(); $("content").focus(); });
}

// Renaming a group chat (its topic, through Graph).
function openRename() {
  const chat = state.chats.get(state.open);
  if (!chat) return;
  $("chat-topic").value = chat.topic || "";
  $("rename-form").hidden = false;
  $("rename").setAttribute("aria-expanded", "true");
  $("chat-topic").focus();
  $("chat-topic").select();
}

function closeRename() {
  $("rename-form").hidden = true;
  $("rename").setAttribute("aria-expanded", "false");
}

async function rename(form) {
  const chatId = state.open;
  const topic = form.elements["chat-topic"].value.trim();
  if (!chatId || !topic) return;
  const { item, error } = await change(`/api/chats/${encodeURIComponent(chatId)}`, "PATCH", { topic });
  if (error) { problem(`Not renamed: ${error}.`); return; }
  $("read-error").hidden = true;
  closeRename();
  state.chats.set(item.id, item);
  renderChats();
  if (state.open === item.id) $("chat-title").textContent = chatLabel(item);
  $("rename").focus();
}

function startRename() {
  $("rename").addEventListener("click", () => {
    if ($("rename-form").hidden) openRename(); else closeRename();
  });
  $("rename-cancel").addEventListener("click", () => { closeRename(); $("rename").focus(); });
  $("rename-form").addEventListener("submit", (e) => { e.preventDefault(); rename(e.target); });
  $("chat-topic").addEventListener("keydown", (e) => {
    if (e.key === "Escape") { closeRename(); $("rename").focus(); }
  });
}

function start() {
  // The form is the page's before anything loads: a submit must never fall through to the
  // browser's own, which would navigate away with the message in the URL. The button is
  // disabled in the HTML until now, so nothing submits before this script runs either.
  const compose = $("compose");
  compose.addEventListener("submit", (e) => { e.preventDefault(); send(e.target); });
  // Enter sends; Shift+Enter (and Enter while composing text in an input method) is a new line.
  $("content").addEventListener("input", updateMentionPicker);
  $("content").addEventListener("blur", () => setTimeout(closeMentionPicker, 150));
  $("content").addEventListener("keydown", (e) => {
    if (!$("mention-picker").hidden) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        moveMention(e.key === "ArrowDown" ? 1 : -1);
        return;
      }
      if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        const option = $("mention-picker").querySelector("[aria-selected=true]");
        if (option) pickMention({ id: option.dataset.userId, displayName: option.textContent });
        return;
      }
      if (e.key === "Escape") { closeMentionPicker(); return; }
    }
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      compose.requestSubmit();
    }
  });
  compose.querySelector("button[type=submit]").disabled = false;
  startNewChat();
  startImages();
  startRename();
  $("retry").addEventListener("click", retry);
  $("discard").addEventListener("click", clearSendError);
  $("older").addEventListener("click", loadOlder);
  $("mark-unread").addEventListener("click", () => chatAction("unread"));
  $("cancel-reply").addEventListener("click", cancelReply);
  $("hide").addEventListener("click", () => chatAction("hide"));
  $("unhide").addEventListener("click", () => chatAction("unhide"));
  $("show-hidden").addEventListener("click", () => {
    state.showHidden = !state.showHidden;
    $("show-hidden").setAttribute("aria-pressed", String(state.showHidden));
    renderChats();
  });
  $("scroller").addEventListener("scroll", () => {
    if ($("scroller").scrollTop < 40) loadOlder();
  });
  // Back to the page: the open chat is read again, and its count shown so.
  document.addEventListener("visibilitychange", () => {
    if (state.open && reading(state.open) && (state.chats.get(state.open) || {}).unreadCount) {
      markRead(state.open);
    }
    renderChats();
  });
  $("back").addEventListener("click", () => {
    showView("list");
    renderChats();
    const entry = document.querySelector(`[data-chat-id="${CSS.escape(state.open || "")}"]`);
    if (entry) entry.focus();
  });
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

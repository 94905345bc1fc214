// The volley web client: UI over the VolleyChat module (chat.js).
import { VolleyChat, api } from "/chat.js";

const $ = (id) => document.getElementById(id);
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;

let chat = null;
let current = null; // selected room id
let oldest = null; // lowest seq shown in the current room
let more = false; // older history exists
let loadingOlder = false;
const shown = new Set(); // seqs rendered for the current room
const online = new Map(); // room id -> Set of user ids (rooms small enough for the list)
const onlineCount = new Map(); // room id -> how many are online (every room)
const typingTimers = new Map(); // user id -> {name, timer}
let lastTypingSent = 0;

function showLogin(message = "") {
  $("chat").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
}

async function credentials(path) {
  const username = $("username").value.trim();
  const password = $("password").value;
  try {
    const body = path === "/api/guest" ? { name: username || undefined } : { username, password };
    const res = await api(path, { method: "POST", body });
    localStorage.setItem("volley.token", res.token);
    start(res.token);
  } catch (err) {
    $("login-error").textContent = err.message;
  }
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  credentials("/api/login");
});
$("register-button").addEventListener("click", () => credentials("/api/register"));
$("guest-button").addEventListener("click", () => credentials("/api/guest"));
$("logout").addEventListener("click", () => {
  localStorage.removeItem("volley.token");
  localStorage.removeItem("volley.room");
  if (chat) chat.close();
  chat = null;
  showLogin();
});

function start(token) {
  $("login").hidden = true;
  $("chat").hidden = false;
  chat = new VolleyChat(wsUrl, { token });
  chat.addEventListener("state", (e) => {
    const { state, code, delay } = e.detail;
    const conn = $("conn");
    conn.dataset.state = state;
    conn.textContent = state === "reconnecting" && delay ? `reconnecting in ${(delay / 1000).toFixed(1)}s` : state;
    const usable = state === "open" && current !== null;
    $("text").disabled = !usable;
    $("send").disabled = !usable;
    if (state === "closed" && code === 1008) {
      localStorage.removeItem("volley.token");
      showLogin("Your session ended; please log in again.");
    }
  });
  chat.addEventListener("ready", (e) => {
    $("me").textContent = e.detail.user.name;
    for (const r of e.detail.rooms) noteOnline(r);
    renderRooms();
    const saved = Number(localStorage.getItem("volley.room"));
    if (current === null && saved && chat.rooms.has(saved)) selectRoom(saved);
    else if (current !== null && !chat.rooms.has(current)) clearRoom();
  });
  chat.addEventListener("message", (e) => {
    const m = e.detail;
    if (m.room === current) {
      appendMessage(m);
      if (document.hasFocus()) chat.read(m.room, m.seq);
    } else {
      const room = chat.rooms.get(m.room);
      if (room) room.unread = (room.unread || 0) + 1;
      renderRooms();
    }
    clearTyping(m.user);
  });
  chat.addEventListener("room_joined", (e) => {
    noteOnline(e.detail);
    renderRooms();
  });
  chat.addEventListener("room_left", (e) => {
    if (e.detail.room === current) clearRoom();
    renderRooms();
  });
  chat.addEventListener("presence", (e) => {
    // Big rooms (over the server's presence_list_max) send the count alone.
    const { room, changes, online: count } = e.detail;
    const set = online.get(room) || new Set();
    for (const c of changes) {
      if (c.online) set.add(c.user);
      else set.delete(c.user);
    }
    online.set(room, set);
    onlineCount.set(room, count ?? set.size);
    renderOnline();
  });
  chat.addEventListener("typing", (e) => {
    const { room, user, name, ttl_ms } = e.detail;
    if (room !== current || user === chat.user?.id) return;
    clearTyping(user);
    typingTimers.set(user, { name, timer: setTimeout(() => clearTyping(user), ttl_ms) });
    renderTyping();
  });
  chat.addEventListener("error", (e) => console.warn("server error", e.detail));
  chat.connect();
}

function clearTyping(user) {
  const t = typingTimers.get(user);
  if (!t) return;
  clearTimeout(t.timer);
  typingTimers.delete(user);
  renderTyping();
}

function renderTyping() {
  const names = [...typingTimers.values()].map((t) => t.name);
  $("typing").textContent = names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…` : "";
}

function noteOnline(room) {
  online.set(room.id, new Set(room.online || []));
  onlineCount.set(room.id, room.online_count ?? (room.online || []).length);
}

function renderOnline() {
  const n = current === null ? 0 : onlineCount.get(current) ?? 0;
  $("online").textContent = current === null ? "" : `${n} online`;
}

function renderRooms() {
  const list = $("rooms");
  list.replaceChildren();
  for (const room of chat.rooms.values()) {
    const li = document.createElement("li");
    li.dataset.room = room.id;
    li.className = room.id === current ? "active" : "";
    const name = document.createElement("span");
    name.textContent = (room.kind === "private" ? "🔒 " : room.kind === "direct" ? "@ " : "# ") + room.name;
    li.append(name);
    if (room.unread && room.id !== current) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = room.unread;
      li.append(badge);
    }
    li.addEventListener("click", () => selectRoom(room.id));
    list.append(li);
  }
}

function clearRoom() {
  current = null;
  shown.clear();
  $("messages").replaceChildren();
  $("room-name").textContent = "Pick or create a room";
  $("text").disabled = true;
  $("send").disabled = true;
  renderOnline();
}

function messageItem(m) {
  const li = document.createElement("li");
  li.dataset.seq = m.seq;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = m.name;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.text;
  const when = document.createElement("time");
  when.className = "when";
  when.textContent = new Date(m.ts).toLocaleTimeString();
  li.append(who, text, when);
  return li;
}

function appendMessage(m) {
  if (shown.has(m.seq)) return;
  shown.add(m.seq);
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  // Keep sequence order even if a late message arrives out of order.
  const item = messageItem(m);
  const after = [...list.children].find((li) => Number(li.dataset.seq) > m.seq);
  list.insertBefore(item, after || null);
  if (oldest === null) oldest = m.seq;
  if (atBottom) list.scrollTop = list.scrollHeight;
}

async function selectRoom(id) {
  current = id;
  localStorage.setItem("volley.room", id);
  shown.clear();
  oldest = null;
  more = false;
  typingTimers.clear();
  renderTyping();
  const room = chat.rooms.get(id);
  $("room-name").textContent = room ? room.name : `room ${id}`;
  $("messages").replaceChildren();
  if (room) room.unread = 0;
  renderRooms();
  renderOnline();
  $("text").disabled = chat.state !== "open";
  $("send").disabled = chat.state !== "open";
  try {
    const page = await chat.history(id);
    if (current !== id) return;
    for (const m of page.messages) appendMessage(m);
    oldest = page.messages.length ? page.messages[0].seq : null;
    more = page.more;
    const list = $("messages");
    list.scrollTop = list.scrollHeight;
    const last = page.messages.at(-1);
    if (last) chat.read(id, last.seq);
  } catch (err) {
    console.warn("history", err);
  }
}

$("messages").addEventListener("scroll", async () => {
  const list = $("messages");
  if (list.scrollTop > 40 || !more || loadingOlder || current === null || oldest === null) return;
  loadingOlder = true;
  const room = current;
  try {
    const page = await chat.history(room, oldest);
    if (room !== current) return;
    const before = list.scrollHeight;
    const first = list.firstChild;
    for (const m of page.messages) {
      if (shown.has(m.seq)) continue;
      shown.add(m.seq);
      list.insertBefore(messageItem(m), first);
    }
    if (page.messages.length) oldest = page.messages[0].seq;
    more = page.more;
    list.scrollTop += list.scrollHeight - before;
  } finally {
    loadingOlder = false;
  }
});

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text || current === null) return;
  input.value = "";
  chat.send(current, text).catch((err) => alert(err.message));
});

$("text").addEventListener("input", () => {
  const now = Date.now();
  if (current !== null && now - lastTypingSent > 1500) {
    lastTypingSent = now;
    chat.typing(current);
  }
});

$("new-room").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = $("new-room-name").value.trim();
  if (!name) return;
  $("new-room-name").value = "";
  try {
    const ok = await chat.createRoom(name);
    await roomArrived(ok.room);
    selectRoom(ok.room);
  } catch (err) {
    alert(err.message);
  }
});

// Resolves once the room is in our list (room_joined follows the request's ok).
function roomArrived(id) {
  if (chat.rooms.has(id)) return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (!chat.rooms.has(id)) return;
      chat.removeEventListener("room_joined", check);
      resolve();
    };
    chat.addEventListener("room_joined", check);
  });
}

$("find-room").addEventListener("submit", async (e) => {
  e.preventDefault();
  const q = $("find-room-query").value.trim();
  const token = chat.login.token || localStorage.getItem("volley.token");
  const res = await api(`/api/rooms?q=${encodeURIComponent(q)}`, { token });
  const list = $("found");
  list.replaceChildren();
  for (const room of res.rooms) {
    const li = document.createElement("li");
    li.textContent = `# ${room.name} (${room.members})`;
    li.dataset.room = room.id;
    li.addEventListener("click", async () => {
      if (!chat.rooms.has(room.id)) {
        await chat.join(room.id);
        await roomArrived(room.id);
      }
      list.replaceChildren();
      selectRoom(room.id);
    });
    list.append(li);
  }
});

const saved = localStorage.getItem("volley.token");
if (saved) start(saved);
else showLogin();

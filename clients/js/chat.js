// volley chat client: a small, dependency-free ES module for browsers and
// Node.js (give it a WebSocket class where there is no global one). It authenticates, keeps the last sequence
// number seen per room, reconnects with jittered exponential backoff and
// resumes from those numbers, and re-sends unacknowledged messages with their
// original ids (the server de-duplicates them). Events are dispatched on the
// client (an EventTarget): state, ready, message, ack, error, presence,
// typing, receipt, members, room_joined, room_left, caught_up, history.

const OPEN = 1; // WebSocket.OPEN, the same in every implementation

export class VolleyChat extends EventTarget {
  /**
   * @param {string} url  ws:// or wss:// URL of the /ws endpoint
   * @param {{token?: string, guest?: string}} login
   * @param {{WebSocket?: typeof WebSocket}} [options]  the WebSocket class (default: the global one)
   */
  constructor(url, login, { WebSocket: socketClass = globalThis.WebSocket } = {}) {
    super();
    this.url = url;
    this.socketClass = socketClass;
    this.login = { ...login };
    this.state = "idle"; // idle | connecting | open | reconnecting | closed
    this.user = null;
    this.rooms = new Map(); // id -> room view (with last_seq, unread, online)
    this.lastSeq = new Map(); // id -> highest seq seen
    this.outbox = new Map(); // client id -> pending send
    this.pending = new Map(); // ref -> {resolve, reject}
    this.attempt = 0;
    this.nextRef = 1;
    this.ws = null;
    this.timer = null;
    this.stopped = false;
  }

  connect() {
    this.stopped = false;
    this.#open();
    return this;
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "bye");
    this.#setState("closed");
  }

  #setState(state, detail = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...detail } }));
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #open() {
    this.#setState(this.attempt === 0 ? "connecting" : "reconnecting", { attempt: this.attempt });
    const ws = new this.socketClass(this.url);
    this.ws = ws;
    ws.onopen = () => {
      const resume = {};
      for (const [room, seq] of this.lastSeq) resume[room] = seq;
      const auth = { type: "auth", resume };
      if (this.login.token) auth.token = this.login.token;
      else auth.guest = this.login.guest;
      ws.send(JSON.stringify(auth));
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.#handle(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      for (const { reject } of this.pending.values()) reject(new Error("connection closed"));
      this.pending.clear();
      // 1008: authentication refused; retrying the same credentials is pointless.
      if (this.stopped || ev.code === 1008) {
        this.#setState("closed", { code: ev.code, reason: ev.reason });
        return;
      }
      this.attempt += 1;
      const base = Math.min(30000, 500 * 2 ** Math.min(this.attempt - 1, 6));
      // 1012 from `volley proxy` draining a node names when to come back
      // ("... reconnect in 2731 ms"): the proxy has spread its clients out.
      // 1013 (try again later) may name its wait the same way.
      const hint = ev.code === 1012 || ev.code === 1013 ? /reconnect in (\d+) ms/.exec(ev.reason || "") : null;
      const delay = hint ? Number(hint[1]) : base / 2 + Math.random() * (base / 2);
      this.#setState("reconnecting", { code: ev.code, reason: ev.reason, delay, attempt: this.attempt });
      this.timer = setTimeout(() => this.#open(), delay);
    };
  }

  #handle(msg) {
    switch (msg.type) {
      case "ready": {
        this.user = msg.user;
        if (msg.token) this.login = { token: msg.token };
        this.rooms = new Map(msg.rooms.map((r) => [r.id, r]));
        for (const r of msg.rooms) if (!this.lastSeq.has(r.id)) this.lastSeq.set(r.id, r.last_seq);
        this.attempt = 0;
        this.#setState("open");
        this.#emit("ready", msg);
        // Anything not acknowledged before the drop goes again, same id.
        for (const p of this.outbox.values()) this.#transmit(p);
        return;
      }
      case "message": {
        const last = this.lastSeq.get(msg.room) ?? 0;
        if (msg.seq <= last) return; // already shown
        if (msg.seq > last) this.lastSeq.set(msg.room, msg.seq);
        const room = this.rooms.get(msg.room);
        if (room) room.last_seq = Math.max(room.last_seq, msg.seq);
        this.#emit("message", msg);
        return;
      }
      case "room_joined":
        this.rooms.set(msg.room.id, msg.room);
        if (!this.lastSeq.has(msg.room.id)) this.lastSeq.set(msg.room.id, msg.room.last_seq);
        this.#emit("room_joined", msg.room);
        return;
      case "room_left":
        this.rooms.delete(msg.room);
        this.lastSeq.delete(msg.room);
        this.#emit("room_left", msg);
        return;
      case "ack": {
        this.outbox.delete(msg.id);
        break;
      }
      case "error":
        if (msg.ref === undefined) this.#emit("error", msg);
        break;
      default:
        this.#emit(msg.type, msg);
    }
    if (msg.ref !== undefined && this.pending.has(msg.ref)) {
      const { resolve, reject } = this.pending.get(msg.ref);
      this.pending.delete(msg.ref);
      if (msg.type === "error") reject(Object.assign(new Error(msg.message), msg));
      else resolve(msg);
    }
    if (msg.type === "ack") this.#emit("ack", msg);
  }

  #request(body) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== OPEN || this.state !== "open") {
        reject(new Error("not connected"));
        return;
      }
      const ref = this.nextRef++;
      this.pending.set(ref, { resolve, reject });
      this.ws.send(JSON.stringify({ ...body, ref }));
    });
  }

  #transmit(p) {
    if (!this.ws || this.state !== "open") return;
    this.#request({ type: "send", room: p.room, id: p.id, text: p.text }).then(p.resolve, (err) => {
      // Transport failures keep the message queued; so does an unavailable
      // store (sent again, same id, after its hint); other refusals end it.
      if (err.code === "unavailable") {
        setTimeout(() => this.outbox.has(p.id) && this.#transmit(p), err.retry_after_ms || 1000);
      } else if (err.code) {
        this.outbox.delete(p.id);
        p.reject(err);
      }
    });
  }

  /** Send a message; resolves with the ack once it is durable. Survives reconnects. */
  send(room, text) {
    const id = (crypto.randomUUID && crypto.randomUUID()) || `${Date.now()}-${Math.random()}`;
    return new Promise((resolve, reject) => {
      const p = { room, id, text, resolve, reject };
      this.outbox.set(id, p);
      this.#transmit(p);
    });
  }

  /** A page of history before `before` (oldest first). */
  history(room, before, limit = 50) {
    const body = { type: "history", room, limit };
    if (before) body.before = before;
    return this.#request(body);
  }

  join(room) {
    return this.#request({ type: "join", room });
  }

  leave(room) {
    return this.#request({ type: "leave", room });
  }

  createRoom(name, isPrivate = false) {
    return this.#request({ type: "create_room", name, private: isPrivate });
  }

  typing(room) {
    if (this.ws && this.state === "open") this.ws.send(JSON.stringify({ type: "typing", room }));
  }

  read(room, seq) {
    if (this.ws && this.state === "open") this.ws.send(JSON.stringify({ type: "read", room, seq }));
  }

  ping() {
    const started = performance.now();
    return this.#request({ type: "ping" }).then(() => performance.now() - started);
  }
}

/**
 * Small helpers for the JSON API (register, login, guest, rooms). `base`
 * (`http://host:port`) is needed where pages have no origin (Node.js).
 */
export async function api(path, { method = "GET", token, body, base } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(base ? new URL(path, base) : path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw Object.assign(new Error(data?.error?.message || res.statusText), data?.error || {});
  return data;
}

// volley game client: the binary protocol (docs/game-protocol.md), delta
// snapshots, prediction of the own cells and interpolation of the rest.
// Reusable: no DOM access; the page (play.js) draws what `frame()` returns.

export const POSITION_SCALE = 4;
const T = { JOIN: 1, INPUT: 2, PING: 3, RESPAWN: 4, WELCOME: 0x81, SNAPSHOT: 0x82, PONG: 0x83, ROSTER: 0x84, LEADERBOARD: 0x85, ERROR: 0x86, MOVED: 0x87, SEAT: 0x88 };
export const KIND = { PELLET: 0, CELL: 1, BLOB: 2 };
export const BUTTON = { SPLIT: 1, EJECT: 2 };
const FULL_SPEED_DISTANCE = 200;
const BASE_SPEED = 500;

class Reader {
  constructor(buf) { this.v = new DataView(buf); this.p = 0; }
  u8() { return this.v.getUint8(this.p++); }
  u16() { const x = this.v.getUint16(this.p, true); this.p += 2; return x; }
  u32() { const x = this.v.getUint32(this.p, true); this.p += 4; return x; }
  varint() {
    let v = 0, shift = 0;
    for (;;) {
      const b = this.u8();
      v += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return v;
      shift += 7;
      if (shift > 28) throw new Error('bad varint');
    }
  }
  zigzag() { const v = this.varint(); return (v % 2) ? -(v + 1) / 2 : v / 2; }
  str() { const n = this.u8(); const s = new TextDecoder().decode(new Uint8Array(this.v.buffer, this.p, n)); this.p += n; return s; }
  bytes(n) { const b = new Uint8Array(this.v.buffer.slice(this.p, this.p + n)); this.p += n; return b; }
}

/** Decode a snapshot frame into {header, removed, created, updated}. */
export function decodeSnapshot(buf) {
  const r = new Reader(buf);
  if (r.u8() !== T.SNAPSHOT) throw new Error('not a snapshot');
  const header = { tick: r.varint(), baseline: r.varint(), inputSeq: r.varint() };
  const flags = r.u8();
  header.alive = !!(flags & 1); header.spectator = !!(flags & 2);
  header.mass = r.varint(); header.killer = r.varint();
  header.viewX = r.u16() / POSITION_SCALE; header.viewY = r.u16() / POSITION_SCALE; header.viewScale = r.u16() / 100;
  const removed = [], created = [], updated = [];
  let n = r.varint(), last = 0;
  for (let i = 0; i < n; i++) { last += r.varint(); removed.push(last); }
  n = r.varint(); last = 0;
  for (let i = 0; i < n; i++) {
    last += r.varint();
    const e = { id: last, kind: r.u8(), x: r.u16(), y: r.u16(), r: r.varint(), owner: 0 };
    if (e.kind === KIND.CELL) e.owner = r.varint();
    created.push(e);
  }
  n = r.varint(); last = 0;
  for (let i = 0; i < n; i++) {
    last += r.varint();
    const mask = r.u8();
    updated.push({ id: last, dx: mask & 1 ? r.zigzag() : 0, dy: mask & 2 ? r.zigzag() : 0, dr: mask & 4 ? r.zigzag() : 0 });
  }
  if (r.p !== buf.byteLength) throw new Error('trailing bytes in snapshot');
  return { header, removed, created, updated };
}

/** Entities (Map id -> quantized state) of a snapshot given its baseline's. */
export function applySnapshot(base, snap) {
  const out = new Map(base);
  for (const id of snap.removed) if (!out.delete(id)) throw new Error(`unknown entity ${id}`);
  for (const u of snap.updated) {
    const e = out.get(u.id);
    if (!e) throw new Error(`unknown entity ${u.id}`);
    out.set(u.id, { ...e, x: e.x + u.dx, y: e.y + u.dy, r: e.r + u.dr });
  }
  for (const e of snap.created) out.set(e.id, e);
  return out;
}

function speed(mass) { return BASE_SPEED * Math.pow(Math.max(mass, 1), -0.22); }

/**
 * A game connection. Events: `welcome`, `snapshot`, `roster`, `leaderboard`,
 * `death`, `gameerror`, `state` (connecting/playing/reconnecting/closed).
 */
const OPEN = 1; // WebSocket.OPEN, the same in every implementation

export class GameClient extends EventTarget {
  /**
   * `token` (16 bytes from an earlier welcome, e.g. kept across a page
   * reload) takes back a cell left behind within the server's grace period.
   * `account` (the chat's access token) plays as that account: its name,
   * its seat on any node, its best score on the server's leaderboard.
   */
  constructor(url, { name = 'player', spectate = false, match = null, interpolationTicks = 3, token = null, account = null, WebSocket: socketClass = globalThis.WebSocket } = {}) {
    super();
    this.account = account;
    this.socketClass = socketClass;
    this.url = url; this.name = name; this.spectate = spectate; this.interpolationTicks = interpolationTicks;
    this.token = spectate ? null : token; this.match = spectate ? match : null; this.node = null; this.seatToken = null; this.welcome = null; this.roster = new Map(); this.leaderboard = [];
    this.baselines = []; // [{tick, entities, header, at}]
    this.pending = []; // unacknowledged inputs
    this.seq = 0; this.header = null; this.alive = false;
    this.stats = { ping: 0, snapshotsPerSec: 0, bytesPerSec: 0 };
    this._window = []; this._closed = false; this._backoff = 250; this._pings = new Map(); this._pingId = 0;
    this.state = 'connecting';
    this._connect();
  }

  _setState(s) { this.state = s; this.dispatchEvent(new CustomEvent('state', { detail: s })); }

  /** The URL to connect to: the match's node named (`?node=`) once the server said where it went. */
  _target() {
    if (!this.node && !this.match) return this.url;
    const u = new URL(this.url);
    if (this.node) u.searchParams.set('node', this.node);
    // A spectator watching one match, on whatever node runs it.
    if (this.match) u.searchParams.set('match', String(this.match));
    return u.toString();
  }

  _connect() {
    const ws = new this.socketClass(this._target());
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      const name = new TextEncoder().encode(this.name).slice(0, 24);
      // The seat token (signed, any node of a cluster takes it) wins over
      // the welcome's resume token; a new player sends neither.
      const seat = this.seatToken ? new TextEncoder().encode(this.seatToken) : null;
      const raw = !seat && this.token;
      const account = this.account ? new TextEncoder().encode(this.account) : null;
      const flags = (this.spectate ? 1 : 0) | (raw ? 2 : 0) | (seat ? 4 : 0) | (account ? 8 : 0);
      const buf = new Uint8Array(3 + name.length + (raw ? 16 : 0) + (seat ? 2 + seat.length : 0) + (account ? 2 + account.length : 0));
      buf[0] = T.JOIN; buf[1] = flags; buf[2] = name.length; buf.set(name, 3);
      let at = 3 + name.length;
      if (raw) { buf.set(this.token, at); at += 16; }
      // Lengths are little-endian u16, as every integer of the protocol.
      for (const bytes of [seat, account]) {
        if (!bytes) continue;
        buf[at] = bytes.length & 0xff; buf[at + 1] = bytes.length >> 8; buf.set(bytes, at + 2); at += 2 + bytes.length;
      }
      ws.send(buf);
    };
    ws.onmessage = (ev) => this._frame(ev.data);
    ws.onclose = (ev) => {
      if (this._closed) { this._setState('closed'); return; }
      // 4001-4003: the seat token was refused (invalid, expired, already
      // used): come back as a new player rather than knock forever.
      if (ev.code >= 4001 && ev.code <= 4003) { this.seatToken = null; this.token = null; }
      // 4005: the account token was refused (expired, or signed out):
      // knocking again would not help; the page decides (sign in again).
      // 4006: another connection took this seat over (the same account
      // in another tab): taking it back would start a tug of war.
      if (ev.code === 4005 || ev.code === 4006) { this._closed = true; clearInterval(this._pinger); this._setState('closed'); this.dispatchEvent(new CustomEvent('disconnect', { detail: { code: ev.code, reason: ev.reason } })); return; }
      this._setState('reconnecting');
      // 1012 from `volley proxy` draining a node names when to come back.
      // 1013 from a node recovering a dead node's match, likewise.
      const hint = ev.code === 1012 || ev.code === 1013 ? /reconnect in (\d+) ms/.exec(ev.reason || '') : null;
      const wait = hint ? Number(hint[1]) : this._backoff * (0.5 + Math.random());
      this._backoff = Math.min(this._backoff * 2, 5000);
      setTimeout(() => this._connect(), wait);
      this.dispatchEvent(new CustomEvent('disconnect', { detail: { code: ev.code, reason: ev.reason } }));
    };
    clearInterval(this._pinger);
    this._pinger = setInterval(() => this.ping(), 1000);
  }

  close() { this._closed = true; clearInterval(this._pinger); this.ws.close(1000, 'bye'); }

  _count(bytes) {
    const now = performance.now();
    this._window.push([now, bytes]);
    while (this._window.length && now - this._window[0][0] > 1000) this._window.shift();
  }

  _frame(buf) {
    const type = new Uint8Array(buf)[0];
    this._count(buf.byteLength);
    const r = new Reader(buf); r.u8();
    switch (type) {
      case T.SNAPSHOT: return this._snapshot(buf);
      case T.WELCOME: {
        const w = { player: r.u32(), room: r.u32(), token: r.bytes(16), tickHz: r.u8(), worldSize: r.u16() };
        const flags = r.u8(); w.spectator = !!(flags & 1); w.resumed = !!(flags & 2);
        this.welcome = w; this.token = w.spectator ? null : w.token; this._backoff = 250;
        this.baselines = []; this.pending = []; this.seq = 0;
        this._setState('playing');
        return this.dispatchEvent(new CustomEvent('welcome', { detail: w }));
      }
      case T.PONG: {
        const sent = this._pings.get(r.u32());
        if (sent !== undefined) this.stats.ping = performance.now() - sent;
        return;
      }
      case T.ROSTER: {
        const n = r.varint(); const roster = new Map();
        for (let i = 0; i < n; i++) { const id = r.varint(); const flags = r.u8(); roster.set(id, { id, bot: !!(flags & 1), account: !!(flags & 2), name: r.str() }); }
        this.roster = roster;
        return this.dispatchEvent(new CustomEvent('roster', { detail: roster }));
      }
      case T.LEADERBOARD: {
        const n = r.varint(); const list = [];
        for (let i = 0; i < n; i++) list.push({ id: r.varint(), mass: r.varint() });
        this.leaderboard = list;
        return this.dispatchEvent(new CustomEvent('leaderboard', { detail: list }));
      }
      case T.SEAT: {
        const node = r.str();
        const n = r.u16();
        this.seatToken = new TextDecoder().decode(r.bytes(n));
        if (node) this.node = node;
        return;
      }
      case T.MOVED: {
        // The match runs on another node now (a drain, or placement): the
        // close that follows says reconnect at once; the proxy routes ?node=.
        this.node = r.str();
        return this.dispatchEvent(new CustomEvent('moved', { detail: { node: this.node } }));
      }
      case T.ERROR: {
        const code = r.u16();
        return this.dispatchEvent(new CustomEvent('gameerror', { detail: { code, message: r.str() } }));
      }
    }
  }

  _snapshot(buf) {
    const snap = decodeSnapshot(buf);
    const h = snap.header;
    let base = new Map();
    if (h.baseline) {
      const b = this.baselines.find((s) => s.tick === h.baseline);
      if (!b) return; // cannot apply; the server sends a full one once our ack moves on
      base = b.entities;
    }
    const entities = applySnapshot(base, snap);
    this.baselines.push({ tick: h.tick, entities, header: h, at: performance.now() });
    if (this.baselines.length > 64) this.baselines.shift();
    const wasAlive = this.alive;
    this.header = h; this.alive = h.alive;
    this.pending = this.pending.filter((i) => i.seq > h.inputSeq);
    if (wasAlive && !h.alive && !h.spectator) this.dispatchEvent(new CustomEvent('death', { detail: { killer: h.killer, name: this.roster.get(h.killer)?.name } }));
    this.stats.snapshotsPerSec = this.baselines.filter((s) => performance.now() - s.at <= 1000).length;
    this.stats.bytesPerSec = this._window.reduce((a, [, b]) => a + b, 0);
    this.dispatchEvent(new CustomEvent('snapshot', { detail: h }));
  }

  /** Steer toward `target` (world units, relative to the own centre). */
  input(tx, ty, buttons = 0) {
    if (!this.ws || this.ws.readyState !== OPEN || !this.welcome) return;
    const len = Math.hypot(tx, ty);
    if (len > 3000) { tx *= 3000 / len; ty *= 3000 / len; }
    this.seq += 1;
    const buf = new DataView(new ArrayBuffer(14));
    buf.setUint8(0, T.INPUT); buf.setUint32(1, this.seq, true);
    buf.setUint32(5, this.header ? this.header.tick : 0, true);
    buf.setInt16(9, Math.round(tx), true); buf.setInt16(11, Math.round(ty), true); buf.setUint8(13, buttons);
    this.ws.send(buf.buffer);
    if (this.alive) this.pending.push({ seq: this.seq, tx, ty });
  }

  respawn() { if (this.ws?.readyState === OPEN) this.ws.send(new Uint8Array([T.RESPAWN])); }

  ping() {
    if (this.ws?.readyState !== OPEN) return;
    const id = ++this._pingId; this._pings.set(id, performance.now());
    if (this._pings.size > 16) this._pings.delete(this._pings.keys().next().value);
    const buf = new DataView(new ArrayBuffer(5)); buf.setUint8(0, T.PING); buf.setUint32(1, id, true);
    this.ws.send(buf.buffer);
  }

  /**
   * What to draw now: other entities interpolated between the two snapshots
   * around (newest tick - interpolationTicks), the own cells at the newest
   * server position plus the predicted effect of inputs not yet applied.
   * Returns {entities: [{id, kind, x, y, r, owner, own}], camera: {x, y, scale}} in world units.
   */
  frame(now = performance.now()) {
    const snaps = this.baselines;
    if (!snaps.length || !this.welcome) return null;
    const latest = snaps[snaps.length - 1];
    const period = 1000 / this.welcome.tickHz;
    const renderTick = latest.tick + (now - latest.at) / period - this.interpolationTicks;
    let a = snaps[0], b = latest;
    for (let i = snaps.length - 1; i >= 0; i--) {
      if (snaps[i].tick <= renderTick) { a = snaps[i]; b = snaps[Math.min(i + 1, snaps.length - 1)]; break; }
    }
    const t = b.tick > a.tick ? Math.min(1, Math.max(0, (renderTick - a.tick) / (b.tick - a.tick))) : 1;
    const me = this.welcome.player;
    const out = [];
    for (const e of b.entities.values()) {
      if (e.kind === KIND.CELL && e.owner === me && me) continue;
      const p = a.entities.get(e.id) || e;
      out.push({ id: e.id, kind: e.kind, owner: e.owner, own: false,
        x: (p.x + (e.x - p.x) * t) / POSITION_SCALE, y: (p.y + (e.y - p.y) * t) / POSITION_SCALE, r: (p.r + (e.r - p.r) * t) / POSITION_SCALE });
    }
    // Prediction: replay unacknowledged inputs on the newest own cells.
    let dx = 0, dy = 0;
    const mass = latest.header.mass || 10;
    const dt = 1 / this.welcome.tickHz;
    for (const i of this.pending) {
      const len = Math.hypot(i.tx, i.ty);
      if (len < 1e-3) continue;
      const step = speed(mass) * dt * Math.min(1, len / FULL_SPEED_DISTANCE);
      dx += (i.tx / len) * step; dy += (i.ty / len) * step;
    }
    let cx = 0, cy = 0, m = 0;
    for (const e of latest.entities.values()) {
      if (e.kind !== KIND.CELL || e.owner !== me || !me) continue;
      const x = e.x / POSITION_SCALE + dx, y = e.y / POSITION_SCALE + dy, r = e.r / POSITION_SCALE;
      out.push({ id: e.id, kind: e.kind, owner: e.owner, own: true, x, y, r });
      cx += x * r * r; cy += y * r * r; m += r * r;
    }
    const h = latest.header;
    const camera = m > 0 ? { x: cx / m, y: cy / m, scale: h.viewScale } : { x: h.viewX, y: h.viewY, scale: h.viewScale };
    out.sort((p, q) => p.r - q.r);
    return { entities: out, camera, tick: latest.tick };
  }
}

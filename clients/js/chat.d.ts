/** How the client authenticates: a token (from /api/login, /api/guest or your own JWT) or a guest name. */
export interface Login {
  token?: string;
  guest?: string;
}

export interface ChatOptions {
  /** The WebSocket class; default the global one (Node 20: pass `ws` or run with --experimental-websocket). */
  WebSocket?: { new (url: string): WebSocket };
}

export type ChatState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface RoomView {
  id: number;
  name: string;
  kind: "public" | "private" | "direct";
  owner: number;
  last_seq: number;
  members: number;
  last_read?: number;
  unread?: number;
  online?: number[];
  online_count?: number;
}

export interface MessageView {
  room: number;
  seq: number;
  /** The sender's idempotency id. */
  id: string;
  user: number;
  name: string;
  text: string;
  ts: number;
}

export interface Ack {
  type: "ack";
  room: number;
  seq: number;
  id: string;
  ts: number;
  duplicate: boolean;
}

/**
 * A chat connection: authenticates, resumes from the last sequence seen per
 * room after a reconnect (jittered backoff; 1012 from `volley proxy` says
 * when), re-sends unacknowledged messages with their ids. Events (as
 * CustomEvent detail): state, ready, message, ack, error, presence, typing,
 * receipt, members, room_joined, room_left, caught_up, history.
 */
export class VolleyChat extends EventTarget {
  constructor(url: string, login: Login, options?: ChatOptions);
  readonly url: string;
  state: ChatState;
  user: { id: number; name: string; guest: boolean } | null;
  rooms: Map<number, RoomView>;
  lastSeq: Map<number, number>;
  connect(): this;
  close(): void;
  /** Resolves with the ack once the message is durable; survives reconnects. */
  send(room: number, text: string): Promise<Ack>;
  history(room: number, before?: number, limit?: number): Promise<{ type: "history"; room: number; messages: MessageView[]; more: boolean }>;
  /** Resolves when the server took the request; the room arrives as a room_joined event. */
  join(room: number): Promise<{ type: "ok"; room: number }>;
  leave(room: number): Promise<{ type: "ok"; room: number }>;
  /** Resolves with the new room's id; the room arrives as a room_joined event. */
  createRoom(name: string, isPrivate?: boolean): Promise<{ type: "ok"; room: number }>;
  typing(room: number): void;
  read(room: number, seq: number): void;
  /** Round trip in milliseconds. */
  ping(): Promise<number>;
}

/** The JSON API (register, login, guest, rooms); `base` where there is no page origin (Node.js). */
export function api<T = any>(
  path: string,
  options?: { method?: string; token?: string; body?: unknown; base?: string },
): Promise<T>;

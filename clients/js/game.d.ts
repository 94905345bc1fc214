export declare const POSITION_SCALE: number;
export declare const KIND: { readonly PELLET: 0; readonly CELL: 1; readonly BLOB: 2 };
export declare const BUTTON: { readonly SPLIT: 1; readonly EJECT: 2 };

export interface GameOptions {
  name?: string;
  spectate?: boolean;
  /** With `spectate`: watch this match (an id from `GET /api/game/matches`), on whatever node runs it. */
  match?: number | null;
  /** Snapshots the others are drawn behind the newest (smoothness against latency). */
  interpolationTicks?: number;
  /** 16 bytes from an earlier welcome: take back the cell left behind. */
  token?: Uint8Array | null;
  /** The chat's access token: play as that account (its name, its seat on any node, its best score on the leaderboard). A refused one closes with 4005 and the client stops. */
  account?: string | null;
  /** The WebSocket class; default the global one. */
  WebSocket?: { new (url: string): WebSocket };
}

export interface Welcome {
  player: number;
  room: number;
  token: Uint8Array;
  tickHz: number;
  worldSize: number;
  spectator: boolean;
  resumed: boolean;
}

export interface SnapshotHeader {
  tick: number;
  baseline: number;
  inputSeq: number;
  alive: boolean;
  spectator: boolean;
  mass: number;
  killer: number;
  viewX: number;
  viewY: number;
  viewScale: number;
}

/** Quantized entity state (positions in 1/POSITION_SCALE world units). */
export interface Entity {
  id: number;
  kind: number;
  x: number;
  y: number;
  r: number;
  owner: number;
}

export interface Snapshot {
  header: SnapshotHeader;
  removed: number[];
  created: Entity[];
  updated: { id: number; dx: number; dy: number; dr: number }[];
}

export interface DrawnEntity extends Entity {
  own: boolean;
}

export interface Frame {
  entities: DrawnEntity[];
  camera: { x: number; y: number; scale: number };
  tick: number;
}

export function decodeSnapshot(buf: ArrayBuffer): Snapshot;
export function applySnapshot(base: Map<number, Entity>, snap: Snapshot): Map<number, Entity>;

/**
 * A game connection. Events: welcome, snapshot, roster, leaderboard, death,
 * gameerror, moved ({node}: the match runs on that node now; the client
 * reconnects there through the proxy with `?node=`), disconnect, state
 * (connecting/playing/reconnecting/closed).
 */
export class GameClient extends EventTarget {
  constructor(url: string, options?: GameOptions);
  state: "connecting" | "playing" | "reconnecting" | "closed";
  welcome: Welcome | null;
  /** The node running the match, once the server said (SEAT, MOVED); sent as `?node=` on reconnects. */
  node: string | null;
  /** The signed seat token from the server's SEAT frame: what a reconnect presents (any node of a cluster takes it). */
  seatToken: string | null;
  header: SnapshotHeader | null;
  alive: boolean;
  /** The account token the joins carry, if any. */
  account: string | null;
  /** `account`: signed in (the name is the account's). */
  roster: Map<number, { id: number; bot: boolean; account: boolean; name: string }>;
  leaderboard: { id: number; mass: number }[];
  stats: { ping: number; snapshotsPerSec: number; bytesPerSec: number };
  /** Steer toward (tx, ty), world units relative to the own centre. */
  input(tx: number, ty: number, buttons?: number): void;
  respawn(): void;
  ping(): void;
  close(): void;
  /** What to draw now: others interpolated, own cells predicted; null before the first snapshot. */
  frame(now?: number): Frame | null;
}

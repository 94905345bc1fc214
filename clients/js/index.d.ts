export { VolleyChat, api } from "./chat.js";
export type { Login, ChatOptions, ChatState, RoomView, MessageView, Ack } from "./chat.js";
export { GameClient, decodeSnapshot, applySnapshot, KIND, BUTTON, POSITION_SCALE } from "./game.js";
export type { GameOptions, Welcome, SnapshotHeader, Snapshot, Entity, DrawnEntity, Frame } from "./game.js";

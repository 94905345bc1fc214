// @volley/client: the chat and game clients of volley, one ES module each;
// this file re-exports both. No bundler, no dependencies: browsers load the
// files as they are (volley serves them at /chat.js and /game/game.js), and
// Node.js imports the package (give it a WebSocket class on Node 20).
export { VolleyChat, api } from "./chat.js";
export { GameClient, decodeSnapshot, applySnapshot, KIND, BUTTON, POSITION_SCALE } from "./game.js";

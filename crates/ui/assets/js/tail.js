// The live tail's connection: a single-use ticket from POST /v1/tail/ticket
// (so no credential goes into a URL or a log), then a WebSocket that yields
// events and the server's notices of events it dropped for us.

import { api, withQuery } from "./api.js";

/**
 * Opens a tail of `stream` ("logs" or "audit") for query `q`. Handlers:
 * onEvent(text), onDropped(n), onMissed(), onClose(reason). Returns {close}.
 */
export async function openTail(stream, q, handlers) {
  const { ticket } = await api("POST", "/v1/tail/ticket");
  const path = stream === "audit" ? "/v1/audit/tail" : "/v1/tail";
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}${withQuery(path, { q, ticket })}`, ["logbook"]);
  let closedByUs = false;
  socket.addEventListener("open", () => handlers.onOpen && handlers.onOpen());
  socket.addEventListener("message", (message) => {
    const text = String(message.data);
    // Notices are small objects with one key; events always have an id.
    if (text.startsWith('{"dropped":')) handlers.onDropped(JSON.parse(text).dropped);
    else if (text.startsWith('{"missed":')) handlers.onMissed();
    else handlers.onEvent(text);
  });
  socket.addEventListener("close", (event) => {
    if (!closedByUs) handlers.onClose(event.reason || `connection closed (${event.code})`);
  });
  return {
    close() {
      closedByUs = true;
      socket.close(1000);
    },
  };
}

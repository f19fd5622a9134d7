// The dashboard's live-error client (spec/dashboard-contract.md, "WebSocket: live error feed"),
// driven by the alert tests: connects with exactly the dashboard's options, plus whatever the
// test adds, and prints one JSON line per thing that happens. Exits when stdin closes.
//
// usage: node listen.js <url> [extra options as JSON]
//   e.g. node listen.js ws://127.0.0.1:3010 '{"query":{"service":"checkout"},"auth":{"token":"t"}}'
"use strict";
const { io } = require("socket.io-client");

const url = process.argv[2];
const extra = process.argv[3] ? JSON.parse(process.argv[3]) : {};
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

// AlarmProvider's call, verbatim apart from the URL.
const socket = io(url, {
  path: process.env.NEXT_PUBLIC_WS_ERROR_LOGS_PATH || "/ws/error-logs",
  transports: ["websocket"],
  reconnection: true,
  reconnectionAttempts: 5,
  reconnectionDelay: 3000,
  ...extra,
});

socket.on("connect", () => print({ type: "connect", id: socket.id }));
socket.on("connect_error", (err) => print({ type: "connect_error", message: err.message }));
socket.on("disconnect", (reason) => print({ type: "disconnect", reason }));
socket.on("error-log", (payload) => print({ type: "error-log", payload }));
socket.on("error-log-missed", (payload) => print({ type: "missed", payload }));

process.stdin.on("end", () => {
  socket.close();
  process.exit(0);
});
process.stdin.resume();

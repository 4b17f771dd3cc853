// A publisher in ten lines: node publish.mjs CLIENT_ID "a message"
// HERALD: Herald's URL (default http://127.0.0.1:3000); HERALD_PUBLISH_KEY if it needs one.
const [clientId, message] = process.argv.slice(2);
const headers = { "Content-Type": "application/json" };
if (process.env.HERALD_PUBLISH_KEY) headers.Authorization = `Bearer ${process.env.HERALD_PUBLISH_KEY}`;
const url = `${process.env.HERALD ?? "http://127.0.0.1:3000"}/push`;
const response = await fetch(url, { method: "POST", headers, body: JSON.stringify({ client_id: clientId, message }) });
console.log(response.status, await response.json()); // 200 { id: '…', delivered: 1 }
process.exitCode = response.ok ? 0 : 1;

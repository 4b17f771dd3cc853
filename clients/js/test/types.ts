// Type-checked, not run (`npm test` runs tsc --noEmit on it): herald.d.ts describes the
// API as an app written in TypeScript would use it, and rejects what it should.
import {
  type Connection,
  type ConnectionState,
  type Gap,
  type HeraldMessage,
  HeraldError,
  connect,
  push,
  startTask,
  watchTask,
} from "../herald.js";

const connection: Connection = connect({
  url: "https://push.example.com",
  topics: ["news"],
  getToken: async () => "a.jwt.token",
  withCredentials: true,
});
const off: () => void = connection.on("message", (message: HeraldMessage) => {
  const data: string = message.data;
  const value: unknown = message.value;
  void [data, value];
});
off();
connection.on("gap", (gap: Gap) => void gap.reason);
connection.on("state", (state: ConnectionState) => void state);
connection.on("order.shipped", ({ id }) => void id);
const state: ConnectionState = connection.state;
const last: string | null = connection.lastEventId;
void [state, last];
connection.close();

async function publish() {
  const { id, delivered } = await push({ url: "https://push.example.com", publishKey: "k" }, {
    clientId: "alice",
    message: { hello: "world" },
  });
  const task = await startTask({ url: "https://push.example.com" }, { title: "Export", total: 10 });
  const watching = watchTask<{ url: string }>({
    url: "https://push.example.com",
    id: task.id,
    onProgress: ({ step, total }) => void [step, total],
  });
  const result: { url: string } = await watching;
  watching.close();
  void [id, delivered, result];
}
void publish;

try {
  throw new HeraldError(503, "unavailable");
} catch (error) {
  if (error instanceof HeraldError) void error.status;
}

// @ts-expect-error: `url` is required.
connect({ topics: ["news"] });
// @ts-expect-error: states are a closed set.
const wrong: ConnectionState = "opened";
void wrong;

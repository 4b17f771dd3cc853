// How a node's clients come back when it is stopped: N EventSource clients (the
// `eventsource` package, as a Node service or a test would use) hold streams on a
// `herald`; it is sent SIGTERM; a listener on the same port then records when each
// client's reconnect arrives. Prints the arrival rate: the busiest 100 ms and second,
// and how long it took for half, 95 % and all of them to come back.
//
//   node bench/drain/reconnects.mjs HERALD_BINARY [clients] [-- herald flags...]
//   e.g. node bench/drain/reconnects.mjs target/release/herald 1000 -- --drain-spread 0s
//
// Loopback only; bounded: it gives up 30 s after the SIGTERM.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { EventSource } from 'eventsource';

const [binary, clientsArg = '1000', ...rest] = process.argv.slice(2);
const extra = rest[0] === '--' ? rest.slice(1) : rest;
const clients = Number(clientsArg);
if (!binary || !(clients > 0)) {
  console.error('usage: node reconnects.mjs HERALD_BINARY [clients] [-- herald flags...]');
  process.exit(2);
}

const port = await freePort();
const herald = spawn(binary, [
  '--listen', `127.0.0.1:${port}`, '--log', 'warn',
  '--max-connections-per-ip', String(clients * 2), ...extra,
], { stdio: ['ignore', 'inherit', 'inherit'] });
await until(() => canConnect(port), 'herald listens');

const sources = [];
let open = 0;
for (let n = 0; n < clients; n++) {
  const source = new EventSource(`http://127.0.0.1:${port}/sse?client_id=c${n}`);
  source.addEventListener('open', () => { open += 1; }, { once: true });
  sources.push(source);
}
await until(() => open === clients, `${clients} streams open`, 60_000);

const arrivals = [];
const signalled = performance.now();
herald.kill('SIGTERM');
const catcher = net.createServer((socket) => {
  arrivals.push(performance.now() - signalled);
  socket.on('error', () => {});
  // Held, never answered: each client is counted once, on its first reconnect.
});
await until(() => listen(catcher, port), 'the catcher listens on the freed port', 10_000);
await until(() => arrivals.length >= clients, `${clients} reconnects`, 30_000).catch(() => {});
sources.forEach((source) => source.close());
catcher.close();
herald.kill('SIGKILL');

report(arrivals.sort((a, b) => a - b));
process.exit(0);

function report(times) {
  const count = times.length;
  const at = (share) => times[Math.min(count - 1, Math.ceil(share * count) - 1)];
  const busiest = (window) => {
    let best = 0;
    for (let i = 0, j = 0; i < count; i++) {
      while (times[i] - times[j] > window) j++;
      best = Math.max(best, i - j + 1);
    }
    return best;
  };
  const ms = (value) => `${Math.round(value)} ms`;
  console.log(JSON.stringify({
    clients, reconnected: count, herald_flags: extra.join(' '),
    first: ms(times[0]), half: ms(at(0.5)), p95: ms(at(0.95)), all: ms(times[count - 1]),
    busiest_100ms: busiest(100), busiest_second: busiest(1000),
  }));
}

async function until(check, what, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function canConnect(p) {
  return new Promise((resolve) => {
    const socket = net.connect(p, '127.0.0.1', () => { socket.destroy(); resolve(true); });
    socket.on('error', () => resolve(false));
  });
}

function listen(server, p) {
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(p, '127.0.0.1', () => resolve(true));
  });
}

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port: p } = server.address();
      server.close(() => resolve(p));
    });
  });
}

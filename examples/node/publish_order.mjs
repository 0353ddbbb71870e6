// Publishes one order to Herald's HTTP endpoint with Node's built-in fetch
// and reads the answer, which comes after the event is stored.
//
//     node publish_order.mjs [URL]      (default http://127.0.0.1:8470)
//     HERALD_TOKEN=herald_... node publish_order.mjs    (a producer token)
//
// Exit status: 0 stored (201 new, 200 duplicate), 65 refused (4xx), 75 busy
// or storage full (503, 507: publish again later), 69 no answer.
import { randomUUID } from 'node:crypto';

const url = (process.argv[2] ?? 'http://127.0.0.1:8470') + '/events';
const event = {                                 // a CloudEvents 1.0 envelope
  specversion: '1.0',
  id: randomUUID(),
  source: 'shop/checkout',
  type: 'order.confirmed',
  time: new Date().toISOString(),
  datacontenttype: 'application/json',
  data: { order_id: 1042, customer: { email: 'ada@example.com' }, items: [{ sku: 'A-1', qty: 1 }] },
};
const headers = { 'Content-Type': 'application/cloudevents+json' };
if (process.env.HERALD_TOKEN) headers.Authorization = `Bearer ${process.env.HERALD_TOKEN}`;

let response;
try {
  response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(event),
                                signal: AbortSignal.timeout(5000) });
} catch (e) {
  console.error(`no answer from ${url}: ${e.cause?.code ?? e.message}; publish it again: the same order_id is stored once (order.confirmed is keyed by data.order_id)`);
  process.exit(69);
}
const answer = await response.json();
if (response.status === 201 || response.status === 200) {  // stored: {id, status: "new" | "duplicate"}
  console.log(`stored as ${answer.id}${answer.status === 'duplicate' ? ' (duplicate)' : ''}`);
  process.exit(0);
}
console.error(`refused (${response.status}): ${answer.error}`);   // {error, code}
process.exit(response.status === 503 || response.status === 507 ? 75 : 65);

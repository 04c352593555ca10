// The npm graphql-ws client against runql: one websocket for queries, mutations and
// subscriptions; a run's events followed, then resumed after a given sequence number.
// In a browser, leave out webSocketImpl (and the "ws" import).
//
//   RUNQL_KEY=$(cat .runql-dev-key) node examples/graphql-ws.mjs
//
// Prints every event of a new run as `seq type status`, then the events after seq 2 again.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const url = (process.env.RUNQL_URL ?? "http://127.0.0.1:8000/graphql").replace(/^http/, "ws");
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${process.env.RUNQL_KEY}` },
});

// One result of a query or mutation, or every result of a subscription, as an array.
function request(query, variables) {
  return new Promise((resolve, reject) => {
    const results = [];
    client.subscribe({ query, variables }, {
      next: (result) => (result.errors ? reject(new Error(result.errors[0].message)) : results.push(result.data)),
      error: reject,
      complete: () => resolve(results),
    });
  });
}

// The demo's Echo agent answers within a second.
const [{ agents }] = await request(`query Agents { agents(first: 20) { edges { node { id kind } } } }`);
const agentId = agents.edges.find(({ node }) => node.kind === "echo").node.id;
const [created] = await request(
  `mutation CreateRun($agentId: ID!) {
    createRun(input: { agentId: $agentId, content: { text: "Hello" } }) { run { id status } }
  }`,
  { agentId },
);
const runId = created.createRun.run.id;
console.log(`created ${runId}`);

// After a dropped connection, subscribe again with `after` set to the last seq seen: runql
// sends every later event once, none twice.
const RUN_EVENTS = `subscription RunEvents($id: ID!, $after: Int) {
  runEvents(runId: $id, after: $after) { seq type run { id status } }
}`;
for (const event of await request(RUN_EVENTS, { id: runId })) {
  const { seq, type, run } = event.runEvents;
  console.log(`${seq} ${type} ${run.status}`);
}
const resumed = await request(RUN_EVENTS, { id: runId, after: 2 });
console.log(`after 2: ${resumed.map((event) => event.runEvents.seq).join(" ")}`);
await client.dispose();

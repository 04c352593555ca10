// Subscriptions over plain HTTP with the `graphql-sse` client (distinct connections mode:
// one POST per subscription, answered with a text/event-stream).
//
//   RUNQL_URL=http://127.0.0.1:8000/graphql RUNQL_API_KEY=runql_sk_... \
//     node examples/graphql-sse.mjs RUN_ID              # the run's status, until it ends
//     node examples/graphql-sse.mjs RUN_ID --after 3    # its events after seq 3
//   --take N stops (closes the connection) after N results.
// Each result is printed as a JSON line, then "complete".
import { createClient } from "graphql-sse";

const client = createClient({
  url: process.env.RUNQL_URL ?? "http://127.0.0.1:8000/graphql",
  headers: { Authorization: `Bearer ${process.env.RUNQL_API_KEY}` },
  // Resume by hand instead: subscribe to runEvents again with `after` set to the last `seq` seen.
  retryAttempts: 0,
});

const RUN_STATUS = `subscription ($id: ID!) { runStatus(id: $id) { id status } }`;
const RUN_EVENTS = `subscription ($id: ID!, $after: Int) {
  runEvents(runId: $id, after: $after) { seq type run { id status } } }`;

const [runId, ...flags] = process.argv.slice(2);
const option = (name) => {
  const at = flags.indexOf(name);
  return at < 0 ? undefined : Number(flags[at + 1]);
};
const after = option("--after");
const take = option("--take");

let seen = 0;
let stopped = false; // results may still arrive from the last chunk read: not printed
const stop = client.subscribe(
  after === undefined
    ? { query: RUN_STATUS, variables: { id: runId } }
    : { query: RUN_EVENTS, variables: { id: runId, after } },
  {
    next: (result) => {
      if (stopped) return;
      console.log(JSON.stringify(result));
      if (++seen === take) {
        stopped = true;
        stop(); // aborts the request: the server ends the subscription at once
        client.dispose();
      }
    },
    error: (error) => {
      console.error(error instanceof Error ? error.message : JSON.stringify(error));
      process.exitCode = 1;
    },
    complete: () => {
      if (!stopped) console.log("complete");
      client.dispose();
    },
  },
);

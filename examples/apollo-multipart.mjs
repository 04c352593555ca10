// Subscriptions over plain HTTP with Apollo Client 3: HttpLink sends a subscription as a POST
// with `Accept: multipart/mixed;subscriptionSpec=1.0` and reads the multipart answer, so no
// websocket link (and no `split`) is needed.
//
//   RUNQL_URL=http://127.0.0.1:8000/graphql RUNQL_API_KEY=runql_sk_... \
//     node examples/apollo-multipart.mjs RUN_ID              # the run's status, until it ends
//     node examples/apollo-multipart.mjs RUN_ID --after 3    # its events after seq 3
//   --take N stops (closes the connection) after N results.
// Each result is printed as a JSON line, then "complete".
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";

const client = new ApolloClient({
  link: new HttpLink({
    uri: process.env.RUNQL_URL ?? "http://127.0.0.1:8000/graphql",
    headers: { Authorization: `Bearer ${process.env.RUNQL_API_KEY}` },
  }),
  cache: new InMemoryCache(),
});

const RUN_STATUS = gql`subscription RunStatus($id: ID!) { runStatus(id: $id) { id status } }`;
const RUN_EVENTS = gql`subscription RunEvents($id: ID!, $after: Int) {
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
const subscription = client
  .subscribe(after === undefined
    ? { query: RUN_STATUS, variables: { id: runId } }
    : { query: RUN_EVENTS, variables: { id: runId, after } })
  .subscribe({
    next: (result) => {
      if (stopped) return;
      console.log(JSON.stringify({ data: result.data, errors: result.errors }));
      if (++seen === take) {
        stopped = true;
        subscription.unsubscribe(); // aborts the request: the server ends the subscription
        client.stop();
      }
    },
    error: (error) => {
      console.error(error.message);
      process.exitCode = 1;
    },
    complete: () => {
      if (!stopped) console.log("complete");
      client.stop();
    },
  });

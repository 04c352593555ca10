// urql (@urql/core 6) against runql: queries over HTTP, subscriptions over a websocket
// (graphql-ws). In React, import the same names from "urql".
//
//   RUNQL_KEY=$(cat .runql-dev-key) node examples/urql-client.mjs
//
// Prints a page of runs, then the status changes of a new run.
import { Client, cacheExchange, fetchExchange, gql, subscriptionExchange } from "@urql/core";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

export function runqlUrqlClient({ url, key }) {
  const headers = { Authorization: `Bearer ${key}` };
  const ws = createClient({
    url: url.replace(/^http/, "ws"),
    connectionParams: headers,
    webSocketImpl: WebSocket, // Node.js has no WebSocket of its own; leave it out in a browser
  });
  const client = new Client({
    url,
    fetchOptions: { headers },
    exchanges: [cacheExchange, fetchExchange, subscriptionExchange({
      forwardSubscription: (request) => ({
        subscribe: (sink) => ({ unsubscribe: ws.subscribe({ ...request, query: request.query ?? "" }, sink) }),
      }),
    })],
  });
  return { client, ws };
}

const RUNS = gql`
  query Runs($first: Int!) {
    runs(first: $first) { totalCount edges { node { id status agentId } } }
  }
`;

const AGENTS = gql`
  query Agents { agents(first: 20) { edges { node { id name kind } } } }
`;

const CREATE_RUN = gql`
  mutation CreateRun($agentId: ID!, $text: String!) {
    createRun(input: { agentId: $agentId, content: { text: $text } }) { run { id status } }
  }
`;

const RUN_STATUS = gql`
  subscription RunStatus($id: ID!) {
    runStatus(id: $id) { id status completedAt }
  }
`;

async function main() {
  const url = process.env.RUNQL_URL ?? "http://127.0.0.1:8000/graphql";
  const { client, ws } = runqlUrqlClient({ url, key: process.env.RUNQL_KEY });

  const page = await client.query(RUNS, { first: 5 }).toPromise();
  if (page.error) throw page.error;
  console.log(`page 1: ${page.data.runs.edges.length} of ${page.data.runs.totalCount} runs`);

  // The demo's Echo agent answers within a second.
  const agents = await client.query(AGENTS, {}).toPromise();
  const agentId = agents.data.agents.edges.find(({ node }) => node.kind === "echo").node.id;
  const created = await client.mutation(CREATE_RUN, { agentId, text: "Hello" }).toPromise();
  if (created.error) throw created.error;
  const run = created.data.createRun.run;
  console.log(`created ${run.id}`);
  await new Promise((resolve, reject) => {
    const { unsubscribe } = client.subscription(RUN_STATUS, { id: run.id }).subscribe((result) => {
      if (result.error) reject(result.error);
      console.log(`runStatus: ${result.data.runStatus.status}`);
      if (["SUCCESS", "ERROR", "CANCELLED"].includes(result.data.runStatus.status)) {
        unsubscribe();
        resolve();
      }
    });
  });
  await ws.dispose();
}

// Run as a script, not imported for its set-up.
import { pathToFileURL } from "node:url";

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}

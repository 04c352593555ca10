// Apollo Client 3 against runql: queries and mutations over HTTP, subscriptions over a websocket
// (graphql-ws), lists paged Relay style in one normalized cache.
//
//   RUNQL_KEY=$(cat .runql-dev-key) node examples/apollo-client.mjs
//
// Prints the first page of runs, then both pages after fetchMore, then the status changes of a
// new run as the runStatus subscription reports them.
import { ApolloClient, HttpLink, InMemoryCache, gql, split } from "@apollo/client/core/index.js";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions/index.js";
import { getMainDefinition, relayStylePagination } from "@apollo/client/utilities/index.js";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

export function runqlApolloClient({ url, key }) {
  const headers = { Authorization: `Bearer ${key}` };
  const ws = createClient({
    url: url.replace(/^http/, "ws"),
    connectionParams: headers,
    webSocketImpl: WebSocket, // Node.js has no WebSocket of its own; leave it out in a browser
  });
  const link = split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === "OperationDefinition" && definition.operation === "subscription";
    },
    new GraphQLWsLink(ws),
    new HttpLink({ uri: url, headers }),
  );
  // Objects are kept under __typename and id (Apollo's default), so select `id` with every
  // object. A list's pages, fetched with fetchMore({ variables: { after: endCursor } }), are
  // appended to one list per filter and order.
  const cache = new InMemoryCache({
    typePolicies: {
      Query: {
        fields: {
          runs: relayStylePagination(["filter", "orderBy"]),
          agents: relayStylePagination(["orderBy"]),
          threads: relayStylePagination(["agentId", "orderBy"]),
        },
      },
      Agent: { fields: { runs: relayStylePagination(["filter", "orderBy"]) } },
      Thread: {
        fields: {
          runs: relayStylePagination(["filter", "orderBy"]),
          messageGroups: relayStylePagination(["orderBy"]),
        },
      },
    },
  });
  return { client: new ApolloClient({ link, cache }), ws };
}

const RUNS = gql`
  query Runs($first: Int!, $after: String) {
    runs(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id status agentId createdAt } }
    }
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
  const { client, ws } = runqlApolloClient({ url, key: process.env.RUNQL_KEY });

  const feed = client.watchQuery({ query: RUNS, variables: { first: 5 } });
  let watching;
  const first = await new Promise((resolve, reject) => {
    watching = feed.subscribe({ next: resolve, error: reject });
  });
  const { totalCount, pageInfo } = first.data.runs;
  console.log(`page 1: ${first.data.runs.edges.length} of ${totalCount} runs`);
  const more = await feed.fetchMore({ variables: { after: pageInfo.endCursor } });
  console.log(`page 2: ${more.data.runs.edges.length} more`);
  console.log(`list: ${feed.getCurrentResult().data.runs.edges.length} runs`);

  // The demo's Echo agent answers within a second.
  const agents = await client.query({ query: AGENTS });
  const agentId = agents.data.agents.edges.find(({ node }) => node.kind === "echo").node.id;
  const created = await client.mutate({ mutation: CREATE_RUN, variables: { agentId, text: "Hello" } });
  const run = created.data.createRun.run;
  console.log(`created ${run.id}`);
  await new Promise((resolve, reject) => {
    client.subscribe({ query: RUN_STATUS, variables: { id: run.id } }).subscribe({
      next: ({ data }) => console.log(`runStatus: ${data.runStatus.status}`),
      error: reject,
      complete: resolve,
    });
  });
  watching.unsubscribe();
  await ws.dispose();
  client.stop();
}

// Run as a script, not imported for its set-up.
import { pathToFileURL } from "node:url";

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}

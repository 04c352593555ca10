// Apollo Client, set up as examples/apollo-client.mjs does, over the documents of queries/: the
// feed and its second page, then run details and thread histories of runs on it; then a run
// followed with runStatus while its detail is watched. Prints what the test checks as one JSON
// object. Usage: RUNQL_URL=… RUNQL_KEY=… node apollo_cache.mjs [QUERIES_DIR]
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gql } from "@apollo/client/core/index.js";

// Every warning and error Apollo writes goes through the console: keep them all.
const console_ = [];
for (const level of ["warn", "error", "log", "info", "debug"]) {
  console[level] = (...args) => console_.push(`${level}: ${args.map(String).join(" ")}`);
}
// Every HTTP request, by operation name.
const requests = [];
const realFetch = globalThis.fetch;
globalThis.fetch = (url, init) => {
  requests.push(JSON.parse(init.body).operationName);
  return realFetch(url, init);
};

const { runqlApolloClient } = await import("../../examples/apollo-client.mjs");
const here = fileURLToPath(new URL(".", import.meta.url));
const queries = process.argv[2] ?? join(here, "..", "..", "queries");
const document = (name) => gql(readFileSync(join(queries, `${name}.graphql`), "utf8"));
const FEED = document("feed");
const RUN_DETAIL = document("run-detail");
const THREAD_HISTORY = document("thread-history");
const RUN_STATUS = gql`subscription RunStatus($id: ID!) { runStatus(id: $id) { id status completedAt } }`;
const SLOW_AGENT = gql`mutation SlowAgent {
  createAgent(input: { name: "Slow echo", kind: "echo", config: { delay_ms: 1500 } }) { agent { id } }
}`;
const CREATE_RUN = gql`mutation CreateRun($agentId: ID!) {
  createRun(input: { agentId: $agentId, content: { text: "Hello" } }) { run { id status } }
}`;

const { client, ws } = runqlApolloClient({ url: process.env.RUNQL_URL, key: process.env.RUNQL_KEY });
const settle = () => new Promise((resolve) => setTimeout(resolve, 300));
const report = {};

// Watched as a page would: every result the watcher is given is kept.
const feedResults = [];
const feed = client.watchQuery({ query: FEED, variables: { first: 10 } });
await new Promise((resolve, reject) => {
  feed.subscribe({ next: (result) => { feedResults.push(result); resolve(); }, error: reject });
});
const page1 = feedResults.at(-1).data.runs;
await feed.fetchMore({ variables: { after: page1.pageInfo.endCursor } });
await settle();
report.afterFetchMore = feedResults.at(-1).data.runs.edges.length;

const onFeed = feedResults.at(-1).data.runs.edges.map(({ node }) => node);
const picked = [onFeed[0], onFeed[9], onFeed[10], onFeed[19]];
for (const run of picked) {
  const detail = await client.query({ query: RUN_DETAIL, variables: { id: run.id } });
  const threadId = (await client.query({ query: THREAD_HISTORY, variables: { id: detail.data.run.thread.id } })).data.thread.id;
  if (threadId !== detail.data.run.thread.id) throw new Error("wrong thread");
}
await settle();
const last = feedResults.at(-1);
report.feedEdges = last.data.runs.edges.length;
report.feedIds = last.data.runs.edges.map(({ node }) => node.id);
report.pickedIds = picked.map((run) => run.id);
report.feedComplete = !last.partial && feed.getCurrentResult().data.runs.edges.length;

// A run whose detail is watched, followed with runStatus: the subscription's Run is the cached
// one, so the watcher sees every status without asking the server again.
const agent = await client.mutate({ mutation: SLOW_AGENT });
const created = await client.mutate({ mutation: CREATE_RUN, variables: { agentId: agent.data.createAgent.agent.id } });
const runId = created.data.createRun.run.id;
const watchedStatuses = [];
const detail = client.watchQuery({ query: RUN_DETAIL, variables: { id: runId } });
await new Promise((resolve, reject) => {
  detail.subscribe({
    next: ({ data }) => {
      if (watchedStatuses.at(-1) !== data.run.status) watchedStatuses.push(data.run.status);
      resolve();
    },
    error: reject,
  });
});
report.subscribed = [];
await new Promise((resolve, reject) => {
  client.subscribe({ query: RUN_STATUS, variables: { id: runId } }).subscribe({
    next: ({ data }) => report.subscribed.push(data.runStatus.status),
    error: reject,
    complete: resolve,
  });
});
await settle();
report.watchedStatuses = watchedStatuses;
report.cachedRun = client.cache.extract()[client.cache.identify({ __typename: "Run", id: runId })];
report.requests = requests;
report.console = console_;
await ws.dispose();
client.stop();
process.stdout.write(JSON.stringify(report) + "\n");

// The generated documents with Apollo Client, typed end to end: `tsc -p examples` checks it.
import { ApolloClient, HttpLink, InMemoryCache } from "@apollo/client/core/index.js";
import { FeedDocument, type FeedQuery, type RunStatus } from "./gql/graphql.js";

type FeedRun = FeedQuery["runs"]["edges"][number]["node"];

export function describe(run: FeedRun): string {
  const status: RunStatus = run.status;
  const cost = run.cost ? `${run.cost.amount} ${run.cost.unit}` : "no cost yet";
  return `${run.id} ${status} by ${run.agent?.name ?? run.agentId}, created ${run.createdAt}: ${cost}`;
}

export async function feed(url: string, key: string, after: string | null): Promise<string[]> {
  const client = new ApolloClient({
    link: new HttpLink({ uri: url, headers: { Authorization: `Bearer ${key}` } }),
    cache: new InMemoryCache(),
  });
  const { data } = await client.query({ query: FeedDocument, variables: { first: 20, after } });
  return data.runs.edges.map((edge) => describe(edge.node));
}

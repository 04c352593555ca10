// Subscribes with the npm `graphql-ws` client (graphql-transport-ws) and prints every result
// as a JSON line, then "complete". Usage: node graphql_ws_client.mjs URL KEY QUERY VARIABLES
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, key, query, variables] = process.argv.slice(2);
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${key}` },
  retryAttempts: 0,
  lazy: false,
});
const timer = setTimeout(() => { console.log(JSON.stringify({ timeout: true })); process.exit(2); }, 20000);
client.subscribe(
  { query, variables: JSON.parse(variables) },
  {
    next: (result) => console.log(JSON.stringify(result)),
    error: (error) => { console.log(JSON.stringify({ clientError: String(error?.message ?? error) })); process.exit(1); },
    complete: () => { console.log("complete"); clearTimeout(timer); client.dispose(); },
  },
);

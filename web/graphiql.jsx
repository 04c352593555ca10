// GraphiQL as runql serves it: bundled from the npm packages, so the page loads nothing from
// any CDN. The page hands its settings over in a JSON block (no inline script to allow).
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import { createRoot } from 'react-dom/client';
import 'graphiql/graphiql.css';
import './graphiql.css';

function readConfig() {
  const block = document.getElementById('runql-graphiql-config');
  return JSON.parse(block.textContent);
}

function websocketUrl(url) {
  const ws = new URL(url);
  ws.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return ws.href;
}

function pretty(value) {
  return value == null ? undefined : JSON.stringify(value, null, 2);
}

const config = readConfig();
const endpoint = new URL(config.endpoint, window.location.href);

// Queries and mutations go over HTTP; subscriptions over graphql-transport-ws on the same URL,
// with the headers editor's entries (the Authorization header) as connection params.
const fetcher = createGraphiQLFetcher({
  url: endpoint.href,
  subscriptionUrl: websocketUrl(endpoint),
  wsConnectionParams: {},
});

createRoot(document.getElementById('graphiql')).render(
  <GraphiQL
    fetcher={fetcher}
    query={config.query ?? undefined}
    variables={pretty(config.variables)}
    headers={pretty(config.headers)}
    isHeadersEditorEnabled
    defaultEditorToolsVisibility={config.headers ? 'headers' : true}
  />,
);

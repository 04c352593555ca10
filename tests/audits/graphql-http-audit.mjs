// The GraphQL-over-HTTP conformance audit of npm graphql-http (serverAudits), run against a
// runql server: RUNQL_AUDIT_URL is its /graphql, RUNQL_AUDIT_KEY an API key it accepts.
// Prints one JSON array of {id, name, status, reason}; exits 1 unless every audit is "ok".
import { serverAudits } from 'graphql-http';

const url = process.env.RUNQL_AUDIT_URL;
const key = process.env.RUNQL_AUDIT_KEY;
if (!url || !key) {
  console.error('set RUNQL_AUDIT_URL and RUNQL_AUDIT_KEY');
  process.exit(2);
}

function fetchWithKey(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${key}`);
  return fetch(input, { ...init, headers, signal: AbortSignal.timeout(10_000) });
}

const results = [];
for (const audit of serverAudits({ url, fetchFn: fetchWithKey })) {
  const result = await audit.fn(); // one request at a time
  results.push({
    id: result.id,
    name: result.name,
    status: result.status,
    reason: result.status === 'ok' ? undefined : result.reason,
  });
}
console.log(JSON.stringify(results));
process.exit(results.every((result) => result.status === 'ok') ? 0 : 1);

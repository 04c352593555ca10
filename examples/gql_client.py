"""Python's gql (4.x) against runql: queries over HTTP (httpx), subscriptions over a websocket
(graphql-transport-ws).

    pip install 'gql[httpx,websockets]>=4.4'
    RUNQL_KEY=$(cat .runql-dev-key) python examples/gql_client.py

Prints a page of runs, then the status changes of a new run."""

import asyncio
import os

from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

URL = os.environ.get("RUNQL_URL", "http://127.0.0.1:8000/graphql")
HEADERS = {"Authorization": f"Bearer {os.environ['RUNQL_KEY']}"}

http = Client(transport=HTTPXAsyncTransport(url=URL, headers=HEADERS))
ws = Client(transport=WebsocketsTransport(
    url=URL.replace("http", "ws", 1), init_payload=HEADERS,
    subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL]))

RUNS = """query Runs($first: Int!) {
  runs(first: $first) { totalCount edges { node { id status agentId } } }
}"""
AGENTS = """query Agents { agents(first: 20) { edges { node { id name kind } } } }"""
CREATE_RUN = """mutation CreateRun($agentId: ID!, $text: String!) {
  createRun(input: {agentId: $agentId, content: {text: $text}}) { run { id status } }
}"""
RUN_STATUS = """subscription RunStatus($id: ID!) {
  runStatus(id: $id) { id status completedAt }
}"""


async def main() -> None:
    async with http as session:
        page = await session.execute(GraphQLRequest(RUNS, variable_values={"first": 5}))
        edges = page["runs"]["edges"]
        print(f"page 1: {len(edges)} of {page['runs']['totalCount']} runs")
        # The demo's Echo agent answers within a second.
        agents = (await session.execute(GraphQLRequest(AGENTS)))["agents"]["edges"]
        echo = next(edge["node"]["id"] for edge in agents if edge["node"]["kind"] == "echo")
        created = await session.execute(GraphQLRequest(
            CREATE_RUN, variable_values={"agentId": echo, "text": "Hello"}))
    run_id = created["createRun"]["run"]["id"]
    print(f"created {run_id}")
    async with ws as session:
        async for result in session.subscribe(GraphQLRequest(RUN_STATUS,
                                                             variable_values={"id": run_id})):
            print(f"runStatus: {result['runStatus']['status']}")


if __name__ == "__main__":
    asyncio.run(main())

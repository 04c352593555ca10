"""Automatic Persisted Queries, as Apollo's clients and servers speak them.

A client sends `extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}`:
- with the document too: the hash must be the document's SHA-256 (else 400, "provided sha does
  not match query"); the document is remembered under it and runs;
- without the document: the remembered one runs, or, if none is, the answer is the error
  `PersistedQueryNotFound` (`extensions.code` PERSISTED_QUERY_NOT_FOUND, HTTP 200, not to be
  cached), after which the client sends both.

Documents are kept per process, the most recently used MAX_DOCUMENTS of them. A remembered
document is parsed and validated like any other (and those steps are cached too).
"""

import hashlib
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError
from starlette.responses import Response
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult

MAX_DOCUMENTS = 1000
NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
NOT_FOUND_MESSAGE = "PersistedQueryNotFound"
MISMATCH = "provided sha does not match query"
BAD_VERSION = "Unsupported persisted query version"
BAD_HASH = "persistedQuery.sha256Hash must be a SHA-256 in hexadecimal"
DO_NOT_CACHE = "private, no-cache, must-revalidate"


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def _hash_of(persisted: Any) -> str:
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise HTTPException(400, BAD_VERSION)
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or len(digest) != 64:
        raise HTTPException(400, BAD_HASH)
    return digest.lower()


def not_found(sub_response: Response) -> ExecutionResult:
    sub_response.status_code = 200
    sub_response.headers["cache-control"] = DO_NOT_CACHE
    return ExecutionResult(
        data=None, errors=[GraphQLError(NOT_FOUND_MESSAGE, extensions={"code": NOT_FOUND})]
    )


class PersistedQueries:
    def __init__(self, max_documents: int = MAX_DOCUMENTS) -> None:
        self._max_documents = max_documents
        self._documents: OrderedDict[str, str] = OrderedDict()

    def _remember(self, digest: str, document: str) -> None:
        self._documents[digest] = document
        self._documents.move_to_end(digest)
        if len(self._documents) > self._max_documents:
            self._documents.popitem(last=False)

    def _recall(self, digest: str) -> str | None:
        document = self._documents.get(digest)
        if document is not None:
            self._documents.move_to_end(digest)
        return document

    def with_document(self, request: GraphQLRequestData) -> GraphQLRequestData | None:
        """The request with its document, or None where its hash names no document known;
        raises a 400 HTTPException for a hash that is not the document's."""
        persisted = (request.extensions or {}).get("persistedQuery")
        if persisted is None:
            return request
        digest = _hash_of(persisted)
        if request.query is None:
            document = self._recall(digest)
            return None if document is None else replace(request, query=document)
        if sha256(request.query) != digest:
            raise HTTPException(400, MISMATCH)
        self._remember(digest, request.query)
        return request

    def resolve(
        self, request: GraphQLRequestData, sub_response: Response
    ) -> GraphQLRequestData | ExecutionResult:
        """The request with its document, or the PersistedQueryNotFound result."""
        found = self.with_document(request)
        return not_found(sub_response) if found is None else found

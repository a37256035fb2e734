"""Schemathesis hooks for tests/test_fuzz.py (SCHEMATHESIS_HOOKS=helpers.fuzz_hooks).

Schemathesis names an uploaded file after its form field ("files"), which the API refuses for
want of an extension, so without help no fuzzed upload would ever reach ingestion. Declaring
a file name in the multipart encoding (OpenAPI's own way to say it) makes the fuzzer send
`fuzz.txt`: random bytes then go through saving, reading, chunking and embedding.

The `no_forbidden_documents` check (named in --checks by the scoped-key run) fails any response
that carries a marker of a collection the fuzzing key may not read.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis


@schemathesis.hook
def before_load_schema(context: schemathesis.HookContext, raw_schema: dict[str, Any]) -> None:
    form = raw_schema["paths"]["/v1/documents"]["post"]["requestBody"]["content"]
    form["multipart/form-data"]["encoding"] = {"files": {"headers": {"Content-Disposition": {
        "schema": {"type": "string"},
        "example": 'form-data; name="files"; filename="fuzz.txt"',
    }}}}


@schemathesis.hook
def filter_failure(context: schemathesis.HookContext, failure: Any, case: schemathesis.Case,
                   response: schemathesis.Response) -> bool:
    """Drop one false alarm: "schema-violating upload accepted" when the violation is the JSON
    type of a file part (a file sent as `{...}` instead of a string). A file part carries bytes,
    so no server can tell that from a text file that happens to hold `{...}`."""
    return not (getattr(failure, "code", "") == "ST201"
                and case.operation.label == "POST /v1/documents"
                and "/properties/files/items" in failure.message)


@schemathesis.check
def no_forbidden_documents(ctx: Any, response: schemathesis.Response,
                           case: schemathesis.Case) -> bool | None:
    """With CX_FUZZ_FORBIDDEN=marker,... (the scoped-key run): no response may contain any of
    them (the doc_ids and marker words of a collection outside the fuzzing key's scopes)."""
    forbidden = [m for m in os.environ.get("CX_FUZZ_FORBIDDEN", "").split(",") if m]
    text = response.content.decode("utf-8", "replace")
    leaked = [m for m in forbidden if m in text]
    if leaked:
        raise AssertionError(f"a forbidden collection leaked: {leaked} in "
                             f"{case.operation.label} -> {response.status_code}")
    return None

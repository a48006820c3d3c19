"""The API's OpenAPI 3.0 description, served at /api/openapi.json (written by hand: the routes are few)."""

from __future__ import annotations

from typing import Any

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_JSON = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
_CASE_ID = {"name": "case_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_FAQ_ID = {
    "name": "faq_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_]{2,63}$"},
}
_TEXT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["text"],
                "properties": {
                    "text": {"type": "string", "minLength": 1, "maxLength": 4096},
                    "close": {"type": "boolean"},
                },
            }
        }
    },
}
# What the store accepts (core.faq_store.validate_entry): Indonesian required, English optional, nothing blank.
_TEXT = {"type": "string", "minLength": 1, "pattern": "\\S"}


def _texts(limit: int) -> dict[str, Any]:
    text = _TEXT | {"maxLength": limit}
    return {"type": "object", "required": ["id"], "properties": {"id": text, "en": text}, "additionalProperties": False}


_PARAPHRASES = {"type": "array", "maxItems": 200, "items": _TEXT | {"maxLength": 300}}
_PARAPHRASES_ID = _PARAPHRASES | {"minItems": 1}


_ROLE = {"type": "string", "enum": ["agent", "supervisor", "admin"]}


def _object(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "properties": properties}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _JSON} | {
        code: _ERROR for code in ("400", "401", "403", "404", "409", "422", "503")
    }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    return op


def openapi_document() -> dict[str, Any]:
    query = [
        {
            "name": "view",
            "in": "query",
            "schema": {"type": "string", "enum": ["unassigned", "mine", "open", "waiting", "closed"]},
        },
        {"name": "stage", "in": "query", "schema": {"type": "string"}},
        {"name": "overdue", "in": "query", "schema": {"type": "string", "enum": ["1", "0"]}},
        {"name": "sla", "in": "query", "schema": {"type": "string", "enum": ["1", "0"]}},
        {"name": "q", "in": "query", "schema": {"type": "string"}},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    ]
    return {
        "openapi": "3.0.3",
        "info": {"title": "Prakerja Helpdesk API", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}}}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/cases": {"get": _op("Cases by view, filters and search", params=query)},
            "/api/v1/cases/{case_id}": {"get": _op("One case: masked card, diagnosis, transcript", params=[_CASE_ID])},
            "/api/v1/cases/{case_id}/reply": {
                "post": _op("Reply to the participant (through the outbox)", params=[_CASE_ID], body=_TEXT_BODY)
            },
            "/api/v1/cases/{case_id}/note": {"post": _op("Internal note", params=[_CASE_ID], body=_TEXT_BODY)},
            "/api/v1/cases/{case_id}/assign": {
                "post": _op(
                    "Claim, or assign to an agent (supervisor)",
                    params=[_CASE_ID],
                    body={
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["agent_id"],
                                    "properties": {"agent_id": {"type": "integer", "minimum": 1}},
                                }
                            }
                        },
                    },
                )
            },
            "/api/v1/cases/{case_id}/close": {
                "post": _op("Close (the participant is asked for a rating)", params=[_CASE_ID])
            },
            "/api/v1/faq": {"get": _op("FAQ entries in use")},
            "/api/v1/faq/{faq_id}": {
                "get": _op("One FAQ entry", params=[_FAQ_ID]),
                "put": _op(
                    "Save a new version (admin)",
                    params=[_FAQ_ID],
                    body={
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["title", "paraphrases", "answer"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "id": {"type": "string"},
                                        "sources": {
                                            "type": "array",
                                            "maxItems": 20,
                                            "items": {"type": "string", "minLength": 1},
                                            "description": "ids in knowledge/sources.yaml",
                                        },
                                        "kind": {"type": "string", "enum": ["smalltalk", "policy", "action"]},
                                        "title": _texts(60),
                                        "answer": _texts(3500),
                                        "paraphrases": {
                                            "type": "object",
                                            "required": ["id"],
                                            "additionalProperties": False,
                                            "properties": {"id": _PARAPHRASES_ID, "en": _PARAPHRASES},
                                        },
                                    },
                                }
                            }
                        },
                    },
                ),
            },
            "/api/v1/faq/{faq_id}/history": {"get": _op("Versions of an entry", params=[_FAQ_ID])},
            "/api/v1/faq/{faq_id}/rollback": {
                "post": _op(
                    "Make an old version current again (admin)",
                    params=[_FAQ_ID],
                    body={
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["version"],
                                    "properties": {"version": {"type": "integer", "minimum": 1, "maximum": 2147483647}},
                                }
                            }
                        },
                    },
                )
            },
            "/api/v1/staff": {
                "get": _op("Staff and roles (admin)"),
                "post": _op(
                    "Add a person or change their role (admin)",
                    body=_object(
                        ["telegram_id", "role"],
                        {
                            "telegram_id": {"type": "integer", "minimum": 1, "maximum": 2**53 - 1},
                            "role": _ROLE,
                            "name": {"type": "string", "maxLength": 128},
                            "active": {"type": "boolean"},
                        },
                    ),
                ),
            },
            "/api/v1/tokens": {
                "get": _op("Integration tokens (admin)"),
                "post": _op(
                    "Create a token; shown once (admin)",
                    body=_object(
                        ["name", "role"],
                        {"name": _TEXT | {"maxLength": 64}, "role": _ROLE},
                    ),
                ),
            },
            "/api/v1/tokens/{token_id}": {
                "delete": _op(
                    "Revoke a token (admin)",
                    params=[
                        {
                            "name": "token_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    ],
                )
            },
            "/api/v1/audit": {
                "get": _op(
                    "The audit log, newest first (admin)",
                    params=[
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                        {"name": "actor", "in": "query", "schema": {"type": "string"}},
                    ],
                )
            },
            "/api/v1/imports/{kind}": {
                "post": _op(
                    "Import a file (the request body; admin): platforms, trainings, participants, payout-accounts, "
                    "platform-report, pmo-results or transfers; the per-row report",
                    params=[
                        {"name": "kind", "in": "path", "required": True, "schema": {"type": "string"}},
                        {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "jsonl"]}},
                    ],
                    body={
                        "required": True,
                        "content": {
                            "text/csv": {"schema": {"type": "string"}},
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                )
            },
            "/api/v1/stats": {
                "get": _op(
                    "Figures of the last days (supervisor)",
                    params=[
                        {"name": "days", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 366}}
                    ],
                )
            },
        },
    }

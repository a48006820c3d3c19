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
    "schema": {"type": "string", "pattern": "^[a-z0-9_]{1,64}$"},
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
_LOCALE_TEXTS = {"type": "object", "additionalProperties": {"type": "string"}}


def _op(
    summary: str,
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    missing: bool = True,
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _JSON, "401": _ERROR, "403": _ERROR}
    if missing:
        responses |= {"404": _ERROR, "409": _ERROR, "422": _ERROR, "400": _ERROR, "503": _ERROR}
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
            "/api/v1/cases": {"get": _op("Cases by view, filters and search", params=query, missing=False)},
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
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"agent_id": {"type": "integer", "minimum": 1}},
                                }
                            }
                        }
                    },
                )
            },
            "/api/v1/cases/{case_id}/close": {
                "post": _op("Close (the participant is asked for a rating)", params=[_CASE_ID])
            },
            "/api/v1/faq": {"get": _op("FAQ entries in use", missing=False)},
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
                                    "properties": {
                                        "title": _LOCALE_TEXTS,
                                        "answer": _LOCALE_TEXTS,
                                        "paraphrases": {
                                            "type": "object",
                                            "additionalProperties": {"type": "array", "items": {"type": "string"}},
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
                                    "properties": {"version": {"type": "integer", "minimum": 1}},
                                }
                            }
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

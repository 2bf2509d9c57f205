"""Schemathesis checks of our own, loaded by scripts/fuzz (SCHEMATHESIS_HOOKS).

Every error answer carries the JSON error body of API.md: {"error": {"code", "message"}}.
"""
import schemathesis


@schemathesis.check
def error_has_json_body(ctx, response, case):
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type.startswith("application/json"), f"{response.status_code} without a JSON body (content-type {content_type!r})"
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str), f"{response.status_code} body is not the error shape: {body!r}"
    return None

"""The parameters of ``POST /api/generate``, from wherever a client puts them: the query string
(``?n=4&seed=1``), a form (what the page sends) or a JSON object. Each is checked, and a bad or
unknown one is refused with 422 and one line, never replaced by its default in silence."""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..explore.generate import MAX_TEMPERATURE
from ..training.config import MAX_SEED

MAX_GENERATE = 64  # samples per request: bounds the answer's size


class GenerateParams(BaseModel):
    """What /api/generate draws: ``n`` samples of the prior from ``seed`` at ``temperature``."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(8, ge=1, le=MAX_GENERATE, description="samples to draw")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the draws")
    temperature: float = Field(1.0, gt=0, le=MAX_TEMPERATURE, allow_inf_nan=False,
                               description="the prior's standard deviation")  # fmt: skip


# /api/generate's parameters in its OpenAPI description: FastAPI cannot infer them from a
# handler that takes them from any of three places
_SCHEMA = GenerateParams.model_json_schema()
_BODIES = ("application/json", "multipart/form-data", "application/x-www-form-urlencoded")
GENERATE_OPENAPI: dict[str, Any] = {
    "parameters": [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in _SCHEMA["properties"].items()
    ],
    "requestBody": {"required": False, "content": {k: {"schema": _SCHEMA} for k in _BODIES}},
}


async def generate_params(request: Request) -> GenerateParams:
    """The query string's parameters and the body's (a form or a JSON object), checked; a
    parameter given in both is refused."""
    given = dict(request.query_params)
    body = await _body(request)
    both = sorted(set(given) & set(body))
    if both:
        raise HTTPException(422, f"{both[0]} is given in the query string and in the body: "
                                 "give it once")  # fmt: skip
    try:
        return GenerateParams.model_validate({**given, **body})
    except ValidationError as e:
        raise HTTPException(422, _one_line(e)) from None


async def _body(request: Request) -> dict[str, Any]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form()
        return {k: v if isinstance(v, str) else "a file" for k, v in form.items()}
    raw = await request.body()
    if not raw.strip():
        return {}
    if kind not in ("application/json", ""):
        raise HTTPException(415, f"send the parameters as JSON or a form, not {kind}")
    try:
        body = json.loads(raw)
    except ValueError:
        raise HTTPException(400, 'the body is not JSON: send an object like {"n": 4}') from None
    if not isinstance(body, dict):
        raise HTTPException(400, 'the body is not a JSON object: send one like {"n": 4}')
    return body


def _one_line(error: ValidationError) -> str:
    """The first problem of ``error`` as '<name>: <what is wrong>, got <value>'."""
    first = error.errors()[0]
    name = ".".join(str(part) for part in first["loc"]) or "the parameters"
    if first["type"] == "extra_forbidden":
        return f"unknown parameter {name!r}: /api/generate takes n, seed and temperature"
    return f"{name}: {first['msg'][0].lower()}{first['msg'][1:]}, got {first['input']!r}"

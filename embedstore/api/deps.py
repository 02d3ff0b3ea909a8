"""Request dependencies: the per-app state (settings, engine, query service, metrics)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from embedstore.api.batcher import DynamicBatcher
from embedstore.api.metrics import Metrics
from embedstore.api.queries import QueryService
from embedstore.config import Settings
from embedstore.engine import Engine

M = TypeVar("M", bound=BaseModel)


@dataclass
class ApiState:
    """Everything one app instance owns; kept on ``app.state.api`` (no module globals)."""

    settings: Settings
    engine: Engine
    batcher: DynamicBatcher
    queries: QueryService
    metrics: Metrics


async def get_state(request: Request) -> ApiState:
    """The app's state (``async``: a plain ``def`` dependency would cost a thread hop)."""
    state: ApiState = request.app.state.api
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


def content_type(request: Request) -> str:
    """The media type of the request body, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def validate(model: type[M], data: Any, loc: str = "body") -> M:
    """Validate ``data`` as ``model``; failures become FastAPI's usual 422."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = [{**err, "loc": (loc, *err["loc"])} for err in e.errors(include_url=False)]
        raise RequestValidationError(errors) from None


async def json_body(request: Request, model: type[M]) -> M:
    """Parse the JSON body as ``model`` (422 on bad JSON or a bad shape)."""
    body = await request.body()
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body",),
                    "msg": f"JSON decode error: {e}",
                    "input": {},
                }
            ]
        ) from None
    return validate(model, data)


def parse_json_field(value: str | None, field: str) -> Any:
    """A form field that carries JSON (e.g. ``where``); 422 naming the field if it is not JSON."""
    if value is None or value == "":
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", field),
                    "msg": f"not JSON: {e}",
                    "input": value,
                }
            ]
        ) from None


def list_field(values: list[str]) -> list[str] | None:
    """A repeated or comma-separated form field as a list (None when absent)."""
    out = [v.strip() for raw in values for v in raw.split(",") if v.strip()]
    return out or None

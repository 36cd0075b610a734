"""An ASGI middleware that caps a request's body, before any multipart parsing spools it."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """Answer 413 to a request whose body is over ``limit`` bytes.

    A declared Content-Length is refused at once; a chunked body is counted as it streams and
    refused by raising HTTPException from ``receive``, which FastAPI turns into the answer.
    """

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int) -> None:
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"the request is too large: uploads are limited to {self.upload_limit} bytes"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Any = JSONResponse({"detail": self._message()}, status_code=413)
        await response(scope, receive, send)

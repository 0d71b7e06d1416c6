"""Reading a webhook request's body as Discord does: JSON, or multipart with files.

- `application/json`: the body is the message.
- `multipart/form-data` (Discord's "Uploading Files"): the part `payload_json`
  is the message; without it, the other fields without a filename are, each a
  string. Each part with a filename is a file; its name should be `files[n]`,
  whose `n` the message's `attachments` entries name as their `id`. A file
  over the upload limit makes the request 413 `Request entity too large`
  (40005): 10 MiB per file for webhooks since 16 January 2025.
- Any other content type: ignored, as Discord does, so the body is `{}`.

The whole body is always read, a file past the limit without being kept, so
that the answer reaches a client that is still sending.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from tests.discord_rules import INVALID_JSON, REQUEST_TOO_LARGE

__all__ = ["MAX_FILE_BYTES", "Body", "Upload", "read_body"]

MAX_FILE_BYTES = 10 * 1024 * 1024
"""Discord's upload limit per file for a webhook (10 MiB)."""

_BAD_REQUEST: Mapping[str, Any] = {"message": "400: Bad Request", "code": 0}
_FILE_PART = re.compile(r"^files\[(0|[1-9][0-9]*)\]$")
_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Upload:
    """One file part of a multipart request, as it arrived."""

    part_name: str
    """`files[n]`, or whatever else the client named it."""
    filename: str
    data: bytes = field(repr=False)
    content_type: str

    @property
    def index(self) -> str:
        """The `n` of `files[n]`, which `attachments` entries name as their id;
        a part named otherwise has none that any entry could name."""
        match = _FILE_PART.match(self.part_name)
        return match[1] if match else self.part_name

    def __repr__(self) -> str:
        return f"Upload({self.part_name!r}, {self.filename!r}, {len(self.data)} bytes, {self.content_type!r})"


@dataclass(frozen=True)
class Body:
    """A request body as Discord reads it, or the answer it gets when it cannot."""

    payload: object = field(default_factory=dict)
    """The message: a parsed JSON value (not necessarily an object)."""
    uploads: tuple[Upload, ...] = ()
    refusal: tuple[int, Mapping[str, Any]] | None = None
    """(status, body) when the body itself is refused: invalid JSON, a file
    over the limit, a multipart body that does not parse."""

    @property
    def message(self) -> dict[str, Any]:
        """The payload, once it was found to be a JSON object."""
        if not isinstance(self.payload, dict):
            raise TypeError("the body is not a JSON object")
        return self.payload

    @property
    def files(self) -> dict[str, str]:
        """Each file's index `n` → its part name, as `validate_message` takes them."""
        return {upload.index: upload.part_name for upload in self.uploads}


async def read_body(request: web.Request, *, max_file_bytes: int) -> Body:
    """Read the whole body of `request` (see the module doc)."""
    if request.content_type == "multipart/form-data":
        return await _read_multipart(request, max_file_bytes)
    raw = await request.read()
    if request.content_type != "application/json":
        return Body()
    return _parse_json(raw)


def _parse_json(raw: bytes) -> Body:
    try:
        return Body(json.loads(raw.decode("utf-8")))
    except ValueError:  # UnicodeDecodeError, JSONDecodeError
        return Body(None, refusal=(400, INVALID_JSON))


async def _read_multipart(request: web.Request, max_file_bytes: int) -> Body:
    fields: dict[str, str] = {}
    uploads: list[Upload] = []
    too_large = False
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):  # a nested multipart: Discord reads none
                await part.release()
            elif part.filename is None:
                fields[part.name or ""] = (await part.read()).decode("utf-8")
            else:
                data, whole = await _read_file(part, max_file_bytes)
                too_large |= not whole
                content_type = part.headers.get("Content-Type", "application/octet-stream")
                uploads.append(Upload(part.name or "", part.filename, data, content_type))
    except ValueError:  # a body that is not multipart as its header says, a field not UTF-8
        return Body(None, refusal=(400, _BAD_REQUEST))
    if too_large:
        return Body(None, refusal=(413, REQUEST_TOO_LARGE))
    if "payload_json" not in fields:
        return Body(fields, tuple(uploads))
    parsed = _parse_json(fields["payload_json"].encode("utf-8"))
    return Body(parsed.payload, tuple(uploads), parsed.refusal)


async def _read_file(part: BodyPartReader, max_file_bytes: int) -> tuple[bytes, bool]:
    """The file's bytes, and whether it is within the limit; past the limit
    the rest is read and dropped."""
    kept = bytearray()
    size = 0
    while chunk := await part.read_chunk(_CHUNK_BYTES):
        size += len(chunk)
        if size <= max_file_bytes:
            kept += chunk
    return bytes(kept), size <= max_file_bytes

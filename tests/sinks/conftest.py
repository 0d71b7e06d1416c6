"""What the Discord sink's tests share: an HTTP session, and a stand-in with a small, quick bucket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from tests.discord_standin import DiscordStandIn


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def discord() -> AsyncIterator[DiscordStandIn]:
    async with DiscordStandIn(bucket_limit=5, bucket_reset_after=0.5) as standin:
        yield standin

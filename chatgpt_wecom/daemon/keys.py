"""Typed keys for the aiohttp applications (one place, so handlers and the factory agree)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from chatgpt_wecom.daemon.services import Services

SERVICES: web.AppKey[Services] = web.AppKey("services")

"""The policy in force: a snapshot of the stored lists and words, with its word filter, kept current.

Every change goes through here so that it is stored, audited, applied at once (the snapshot is rebuilt) and
announced on the bus. Readers take `snapshot` / `words` without touching the database.
"""

from __future__ import annotations

from collections.abc import Sequence

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.chat.policy import AccessLists
from chatgpt_wecom.daemon.chat.words import WordFilter
from chatgpt_wecom.daemon.events import EventBus
from chatgpt_wecom.daemon.store.policy import SEED_KEYS, PolicySnapshot, PolicyStore
from chatgpt_wecom.protocol import ListName


class LivePolicy:
    def __init__(self, store: PolicyStore, bus: EventBus) -> None:
        self._store = store
        self._bus = bus
        self.snapshot = PolicySnapshot(AccessLists(), ())
        self.words = WordFilter(())

    @property
    def lists(self) -> AccessLists:
        return self.snapshot.lists

    async def refresh(self) -> None:
        self.snapshot = await self._store.snapshot()
        self.words = WordFilter(self.snapshot.words)

    async def apply_config(self, settings: Settings) -> list[str]:
        """Seed from config.yml: apply the lists the file changed since it was last applied."""
        applied = await self._store.apply_config({key: list(getattr(settings, key)) for key in SEED_KEYS})
        await self.refresh()
        if applied:
            self._bus.publish("policy.changed", actor="config.yml", keys=applied)
        return applied

    async def add_users(self, name: ListName, users: Sequence[str], actor: str) -> list[str]:
        return await self._changed(await self._store.add_users(name, users, actor), f"{name}+", actor)

    async def remove_users(self, name: ListName, users: Sequence[str], actor: str) -> list[str]:
        return await self._changed(await self._store.remove_users(name, users, actor), f"{name}-", actor)

    async def add_words(self, words: Sequence[str], actor: str) -> list[str]:
        return await self._changed(await self._store.add_words(words, actor), "words+", actor)

    async def remove_words(self, words: Sequence[str], actor: str) -> list[str]:
        return await self._changed(await self._store.remove_words(words, actor), "words-", actor)

    async def _changed(self, changed: list[str], what: str, actor: str) -> list[str]:
        if changed:
            await self.refresh()
            self._bus.publish("policy.changed", actor=actor, change=what, count=len(changed))
        return changed

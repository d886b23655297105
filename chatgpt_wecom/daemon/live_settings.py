"""The settings and prompt templates in force: one object, replaced as a whole when the config is reloaded.

The parts that must follow a reload (the responder, the worker, history links, the operator's status) hold this
object and read `live.settings` / `live.templates` where they use them, instead of keeping copies that a reload
would have to assign into one by one (and could forget). A message being answered keeps what it read when it
began (its `Turn`).
"""

from __future__ import annotations

from pathlib import Path

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.chat.templates import Templates

# Keys a reload can change in place; any other change needs a restart.
RELOADABLE = frozenset({
    "log_level", "session_timeout", "max_question_len", "max_answer_len", "max_text", "default_mode",
    "max_request", "allow_users", "deny_users", "vip_users", "admin_users", "sensitive_words", "help",
    "deny_reply", "pause_notice", "reply_format", "timezone", "service_url", "stream_answers",
    "history_link_hours", "max_answer_parts", "retention_days",
})  # fmt: skip


def templates_path(config_path: Path | None) -> Path | None:
    """Operators' prompt templates: prompts.yml beside config.yml."""
    return config_path.resolve().parent / "prompts.yml" if config_path is not None else None


def load_templates(config_path: Path | None) -> Templates:
    """The built-in templates and the operator's prompts.yml beside `config_path`; raises TemplateError."""
    return Templates.load(templates_path(config_path))


class LiveSettings:
    def __init__(self, settings: Settings, templates: Templates) -> None:
        self._settings = settings
        self._templates = templates

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def templates(self) -> Templates:
        return self._templates

    def replace(self, new: Settings, templates: Templates) -> tuple[list[str], list[str]]:
        """Put `templates` and the reloadable keys of `new` in force, both at once; the other keys stay as they
        were. Returns (the keys applied, sorted; the changed keys that need a restart, in the settings' order)."""
        old = self._settings
        changed = [k for k in Settings.model_fields if getattr(new, k) != getattr(old, k)]
        applied = sorted(k for k in changed if k in RELOADABLE)
        self._settings = old.model_copy(update={k: getattr(new, k) for k in applied})
        self._templates = templates
        return applied, [k for k in changed if k not in RELOADABLE]

"""Role-play templates: "#周报 本周做了…" sends the template's system prompt with the user's text.

The built-ins ship as package data (prompts.yml next to this module); an operator's prompts.yml adds templates
or overrides built-ins by title. Pure apart from reading those two files once, at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

BUILTIN_PROMPTS = "prompts.yml"

_FIELDS = ("title", "description", "system", "prefix", "suffix", "example")
_REQUIRED = ("title", "system")
_MESSAGE_RE = re.compile(r"[#＃](\S+)(?:\s+(.*))?", re.DOTALL)


class TemplateError(ValueError):
    """A prompts file that cannot be used; the message names the file, the template and the problem."""


def _key(title: str) -> str:
    """The lookup key of a title: case-insensitive, "#" or "＃" optional."""
    return title.strip().removeprefix("＃").removeprefix("#").casefold()


@dataclass(frozen=True, slots=True)
class Template:
    """One template. `title` starts with "#" and is a single word, so it can start a message."""

    title: str
    description: str
    system: str
    prefix: str = ""
    suffix: str = ""
    example: str = ""

    def __post_init__(self) -> None:
        if not self.title.startswith("#") or len(self.title) < 2 or re.search(r"\s", self.title):
            raise ValueError(f"template title must be '#' followed by one word, got {self.title!r}")

    def user_text(self, text: str) -> str:
        """The question sent to the model: prefix, the user's text and suffix, a blank line between them."""
        parts = (self.prefix.strip(), text.strip(), self.suffix.strip())
        return "\n\n".join(part for part in parts if part)


@dataclass(frozen=True, slots=True)
class TemplateRequest:
    """A message that asked for a template; `text` is what followed the title ("" when sent bare)."""

    template: Template
    text: str


class Templates:
    """The templates a user can call, in listing order. A later template with a title already seen replaces
    the earlier one in its place."""

    def __init__(self, templates: Iterable[Template]) -> None:
        self._by_key: dict[str, Template] = {}
        for template in templates:
            self._by_key[_key(template.title)] = template

    @classmethod
    def load(cls, override: Path | None = None) -> Templates:
        """The built-ins, then the operator's file at `override` if it exists. Raises TemplateError."""
        builtin = resources.files(__package__ or "chatgpt_wecom.daemon.chat").joinpath(BUILTIN_PROMPTS)
        templates = _parse(builtin.read_text(encoding="utf-8"), f"built-in {BUILTIN_PROMPTS}")
        if override is not None and override.exists():
            try:
                text = override.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise TemplateError(f"prompts file {override}: cannot read it ({exc})") from None
            templates += _parse(text, f"prompts file {override}")
        return cls(templates)

    def get(self, title: str) -> Template | None:
        """The template called `title` ("#周报", "＃周报" or "周报", any case), or None."""
        return self._by_key.get(_key(title))

    def __iter__(self) -> Iterator[Template]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def listing(self) -> str:
        """The reply to 模板: one line per template, then how to use them."""
        lines = [f"**可用模板**（{len(self)} 个）", ""]
        for t in self:
            lines.append(f"- {t.title} — {t.description}" if t.description else f"- {t.title}")
        lines += ["", "> 发送「#标题 内容」使用模板，只发「#标题」查看用法和示例"]
        return "\n".join(lines)

    def usage(self, template: Template) -> str:
        """The reply to a bare "#周报": what it does, an example, how to send it."""
        head = f"**{template.title}**" + (f" — {template.description}" if template.description else "")
        example = template.example.strip() or f"{template.title} 你的内容"
        return (
            f"{head}\n\n> 用法：{template.title} 加空格或换行，再写上你的内容\n> 示例：{example}"
            "\n\n串聊模式下，模板会成为这段对话的设定，之后的消息都沿用它。"
        )


def match_template(message: str, templates: Templates) -> TemplateRequest | None:
    """The template request in `message`: "#周报 本周…", "＃周报\\n…" or a bare "#周报"; otherwise None.

    The title must be followed by whitespace or the end ("#周报abc" is not 周报). Unknown titles give None, so
    other features' "#…" commands (#图片, #查对话) pass through untouched unless an operator defined them.
    """
    found = _MESSAGE_RE.fullmatch(message.strip())
    if found is None:
        return None
    template = templates.get("#" + found.group(1))
    if template is None:
        return None
    return TemplateRequest(template, (found.group(2) or "").strip())


def _parse(text: str, source: str) -> list[Template]:
    """The templates in one prompts file's text; TemplateError naming `source` when it is not usable."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise TemplateError(f"{source}: not valid YAML{where}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise TemplateError(f"{source}: must be a list of templates (each starting with '- title: ...')")
    templates: list[Template] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(data, start=1):
        template = _template(entry, f"{source}: template {index}")
        key = _key(template.title)
        if key in seen:
            raise TemplateError(f"{source}: template {index} ({template.title}): same title as template {seen[key]}")
        seen[key] = index
        templates.append(template)
    return templates


def _template(entry: Any, where: str) -> Template:
    """One list entry as a Template; TemplateError prefixed with `where` when it is not one."""
    if not isinstance(entry, dict):
        raise TemplateError(f"{where}: must be a mapping with at least 'title' and 'system'")
    title = entry.get("title")
    if isinstance(title, str) and title.strip():
        where += f" ({title.strip()})"
    unknown = sorted(str(k) for k in entry if k not in _FIELDS)
    if unknown:
        raise TemplateError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_FIELDS)}")
    values: dict[str, str] = {}
    for field in _FIELDS:
        value = entry.get(field)
        if value is not None and not isinstance(value, str):
            raise TemplateError(f"{where}: '{field}' must be text, got {value!r}")
        values[field] = (value or "").strip()
    for field in _REQUIRED:
        if not values[field]:
            raise TemplateError(f"{where}: '{field}' is missing or empty")
    name = _key(values["title"])
    if not name or re.search(r"\s", name):
        raise TemplateError(f"{where}: 'title' must be one word such as '#周报', got {values['title']!r}")
    values["title"] = "#" + values["title"].strip().removeprefix("＃").removeprefix("#")
    return Template(**values)

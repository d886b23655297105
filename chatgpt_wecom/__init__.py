"""chatgpt-wecom: a WeCom self-built app connected to an LLM."""

__version__ = "0.1.0"

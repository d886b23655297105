"""The WeCom AI bot (智能机器人) as a channel: a WebSocket the daemon dials out on (wecom-aibot-protocol.md)."""

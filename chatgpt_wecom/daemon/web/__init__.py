"""Pages the daemon serves on its public port besides the WeCom callback: signed, expiring history links.

Kept free of imports on purpose: `services` imports `web.links`, and `web.history_page` reads through the
services, so importing the package must not pull either in.
"""

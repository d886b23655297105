"""Pages the daemon serves on its public port besides the WeCom callback: signed, expiring history links.

Kept free of imports on purpose: `services` imports `web.links`, and `web.history_page` imports the control API
(which imports `services`), so importing the package must not pull either in.
"""

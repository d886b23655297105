"""Channels: the transports messages arrive by and answers leave by (see base.py); one folder each."""

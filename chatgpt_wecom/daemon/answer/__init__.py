"""Answering one message: routing it to a command, the model, a media turn or an admin action.

`router.Responder` is the entry point the worker calls. Every effect of a message is in the `Outcome` it returns,
which the worker stores in one transaction — except an admin command's change to the lists, words or quotas,
which is stored (and audited) as the command runs (see `admin.py`). Files go to disk through `RichMedia`.
"""

"""`upsell serve`: the HTTP door onto a workspace (docs/service.md), beside the CLI's.

Like the commands in `upsell.cli`, every route is thin: it checks the key and the input, then calls
the same store functions and flows the CLI calls.
"""

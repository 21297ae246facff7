"""Delivery channels: how a decided offer reaches a customer (in-app, email, CSM task, webhook).

`upsell.channels.base` holds the value types (`Delivery`, `Outcome`), the `Channel` protocol and the
registry (`channel_for`, `register_channel`, `channel_names`). Channels are built from the process's
`upsell.settings.Settings` (its ``UPSELL_SMTP_*`` and ``UPSELL_WEBHOOK_*`` fields). A channel never
raises on a failed delivery: it returns an `Outcome` whose `detail` says why, so that one bad address
cannot stop a batch.
"""

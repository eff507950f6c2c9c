"""Notifications: from firing alert states to messages at contact points (docs/alerts.md).

``labels`` (what an alert is called and matched by), ``matchers`` (silences),
``mute`` (mute times), ``grouping`` (Alertmanager's aggregation groups, pure),
``payload`` (the messages), ``senders`` (webhook, email, Slack), ``dispatch`` (a pass over
the groups, in one transaction), ``delivery`` (one message's attempts).
"""

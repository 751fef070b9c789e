"""Stage 3 of a message's way: the answer reaching its chat, exactly once.

`direct` hands a neutral message to the transport that owns the chat; `postman` sends
the durable way, through `outbox`, which keeps it in the database until the platform
confirmed it (retries, outages and the admin's notice); `sendkeys` names each message
so that a redelivery is recognised; `transport_links` knows whether each platform is
reachable. Imports neither `bot.intake` nor `bot.runs`.
"""

"""Recurring agent jobs on APScheduler 3, with our `jobs` table as the source of truth.

Only this package imports `apscheduler`. It knows nothing of chats or transports:
the bot hands it a `JobHooks` (start a run, tell a chat, alert the admin).
"""

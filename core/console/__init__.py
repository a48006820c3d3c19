"""The staff console's domain: who may sign in and as what, sessions, API tokens, the audit log, the inbox queries.
Transport-free: the web app (bot/web) and the bot's /login command both call these."""

"""Page groups of the console: each module's `routes()` is registered in `bot.web.app.ROUTE_MODULES`."""

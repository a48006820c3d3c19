"""The staff web console and its REST API (Starlette, server-rendered Jinja2 pages, a little plain JavaScript).
Page groups are modules registered in `app.ROUTE_MODULES`."""

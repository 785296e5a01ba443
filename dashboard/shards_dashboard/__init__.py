"""`shards dashboard`: the seed's process table as a live web page (Starlette + uvicorn).

auth.py decides who may act, hub.py coalesces changes per page, feed.py follows the store (one
change stream per server process), views.py shapes the JSON, server.py routes; static/ is the page."""

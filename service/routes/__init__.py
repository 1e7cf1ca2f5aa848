"""The HTTP routes, one router per concern: search, items, and operations (health, metrics, the web page)."""

"""Service functions behind the routes, usable by host apps without HTTP."""

"""The API views, one module per resource (xrayweb/api/urls.py maps them)."""

"""The service's own pages: setup, landing, the instructor console, health, metrics, badges."""

"""The service's own pages: setup, landing, health, metrics and badges."""

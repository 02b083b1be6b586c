"""Webhook intake: verify a delivery, route it to the handlers, record it with their asks."""

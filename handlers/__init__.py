"""Webhook handlers: one gidgethub Router per event family, combined here.

Handlers read the event, decide, and ask for jobs through ``bot.intake.Intake``; they never
touch SSH or DigitalOcean.
"""

from gidgethub import routing

from handlers import installation

router = routing.Router(installation.router)

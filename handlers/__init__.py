"""Webhook handlers: one gidgethub Router per event family, combined here.

Handlers read the event, decide, and ask for jobs through ``bot.intake.delivery.Intake``; they never
touch SSH or DigitalOcean.
"""

from gidgethub import routing

from handlers import checks, comments, installation, pull_request, push, repository

router = routing.Router(
    installation.router,
    push.router,
    pull_request.router,
    checks.router,
    comments.router,
    repository.router,
)

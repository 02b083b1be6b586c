"""The deploy engine: course config, planning, TLJH steps, SSH and DigitalOcean droplets.

Nothing in this package knows about GitHub.
"""

"""Durable jobs: the runner, the slash-command grammar and the course's job kinds."""

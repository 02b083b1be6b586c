"""The course's home volume and its safety: the volume set up and held (``homevolume``),
DigitalOcean's volumes and snapshots (``volume_driver``), backups and restores
(``backup``), moving homes (``movehome``) and recovering a lost droplet (``recover``)."""

"""Where a course's hub runs: DigitalOcean droplets, a server of the operator's own
(``ssh``), or a Kubernetes cluster, each behind the one ``Provider`` protocol
(``deploy.providers.base``), chosen by ``server.provider`` (``deploy.providers.registry``).

The clients the providers drive live here too: DigitalOcean's API (``digitalocean_api``,
``droplets``, ``clusters``) and Kubernetes' (``kubernetes``, ``release``, ``chart_values``).
"""

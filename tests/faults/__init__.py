"""The fault suite: DigitalOcean that rate-limits, errs and stalls at every step, SSH
connections cut at every step of a deploy, and the service killed mid-job."""

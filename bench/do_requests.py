"""DigitalOcean calls: requests per operation, and what a shared HTTP session saves.

Runs the droplet driver against the fake DigitalOcean on loopback (no spec check, so the
fake costs little) and prints:

- the requests one resize makes (shut down, resize, power on, with their polls) and one
  lookup of a course's droplet by name and tag (what a lost database costs per course);
- droplet reads per second, one after another, through one shared ``requests.Session``
  (what the driver does) and through a new connection per request (what
  ``requests.request`` alone does), and their ratio.

    .venv/bin/python bench/do_requests.py --reads 500
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import os

from deploy.model import DROPLET_TAG
from deploy.ownership import course_tag
from deploy.providers.droplets import DropletDriver
from tests.fakes.digitalocean import DigitalOceanFake


async def quiet(_line: str) -> None:
    return None


async def reads_per_second(driver: DropletDriver, droplet_id: int, reads: int) -> float:
    started = time.perf_counter()
    for _ in range(reads):
        await driver.get(droplet_id)
    return reads / (time.perf_counter() - started)


OWNER = course_tag(1000)  # the course's tag: droplets are found by it


async def main(reads: int) -> None:
    fake = DigitalOceanFake(action_polls=2)
    os.environ["DIGITALOCEAN_END_POINT"] = await fake.start()
    try:
        droplet = fake.add_droplet("physics101-hub", tags=[DROPLET_TAG, OWNER])
        driver = DropletDriver(fake.token, poll_interval=0.0, shutdown_timeout=1.0)

        before = len(fake.requests)
        await driver.resize(droplet.id, "s-4vcpu-8gb", disk=False, progress=quiet)
        print(f"requests for one resize: {len(fake.requests) - before}")
        before = len(fake.requests)
        await driver.find("physics101-hub", OWNER)
        print(f"requests to find a droplet by its course tag: {len(fake.requests) - before}")

        shared = await reads_per_second(driver, droplet.id, reads)
        driver.api.http = None  # objects made from now on open a connection per request
        fresh = await reads_per_second(driver, droplet.id, reads)
        print(f"droplet reads/s, shared session: {shared:.0f}")
        print(f"droplet reads/s, connection per request: {fresh:.0f}")
        print(f"ratio shared/fresh: {shared / fresh:.2f}")
    finally:
        await fake.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=500)
    asyncio.run(main(parser.parse_args().reads))

"""Soak: resident memory of a process sending through the `ses` provider for a long time.

One email per interval through ``django_communication.send()`` to moto's SES on loopback, with
``COMMUNICATION["CACHE_SECONDS"] = 1`` so that the settings row is reloaded about once a send
(each reload used to build and keep a new boto3 client). Prints RSS after a warm-up and at the
end, and the number of live SesProvider objects.

    python bench/soak_ses.py --minutes 10 --interval 1
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def configure(database: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="soak-not-secret",
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "solo",
            "django_communication",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": database}},
        COMMUNICATION={"CACHE_SECONDS": 1},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between sends")
    parser.add_argument("--warmup", type=int, default=30, help="sends before the first figure")
    args = parser.parse_args()

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="AKIASOAKTEST00000001",
        AWS_SECRET_ACCESS_KEY="soak",
    )
    with tempfile.TemporaryDirectory() as tmp:
        configure(str(Path(tmp) / "soak.sqlite3"))
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        import boto3

        from django_communication import send
        from django_communication.models import CommunicationSettings
        from django_communication.providers.ses import SesProvider

        boto3.client("sesv2", region_name="eu-west-1").create_email_identity(
            EmailIdentity="shop@example.com"
        )
        config = CommunicationSettings.get_solo()
        config.email_provider = "ses"
        config.ses_region = "eu-west-1"
        config.email_from_address = "shop@example.com"
        config.save()

        def one(i: int) -> None:
            message = send(to=f"user{i}@example.com", subject=f"Soak {i}", body_text="hello")
            if message.status != "sent":
                raise SystemExit(f"send {i} ended {message.status}: {message.error}")

        for i in range(args.warmup):
            one(i)
        gc.collect()
        start_rss = rss_mib()
        deadline = time.monotonic() + args.minutes * 60
        sent = 0
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            one(args.warmup + sent)
            sent += 1
            next_at += args.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        gc.collect()
        end_rss = rss_mib()
        providers = sum(1 for obj in gc.get_objects() if type(obj) is SesProvider)
    server.stop()
    print(
        f"soak ses: {sent} sends over {args.minutes:g} min, CACHE_SECONDS=1; RSS after warm-up "
        f"{start_rss:.1f} MiB, at the end {end_rss:.1f} MiB, growth {end_rss - start_rss:+.1f} "
        f"MiB; live SesProvider objects: {providers}"
    )


if __name__ == "__main__":
    main()

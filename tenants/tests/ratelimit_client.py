"""A separate web process for the cross-process rate-limit test: sets Django up
with the environment it is given, says "ready", waits for a line on stdin, then
sends N requests through the full middleware + DRF stack and prints the answers
as one JSON line. Usage: ``python -m tenants.tests.ratelimit_client N PATH``."""

from __future__ import annotations

import json
import os
import sys

HEADERS = ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_project.settings")
    import django

    django.setup()
    from django.test import Client

    count, path = int(sys.argv[1]), sys.argv[2]
    client = Client()
    print("ready", flush=True)
    sys.stdin.readline()
    answers = []
    for _ in range(count):
        response = client.get(path, HTTP_X_API_KEY=os.environ["RL_TEST_KEY"])
        answers.append({"status": response.status_code, "body": response.json(),
                        "headers": {h: response.headers.get(h) for h in HEADERS}})
    print(json.dumps(answers), flush=True)


if __name__ == "__main__":
    main()

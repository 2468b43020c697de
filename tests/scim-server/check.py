"""Checks a SCIM server's RFC 7643/7644 compliance with scim2-tester (PyPI,
by python-scim): `python check.py BASE_URL TOKEN`. Prints the count, and
each check that found a deviation or an error; exits 1 if any did."""

import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

url, token = sys.argv[1], sys.argv[2]
client = SyncSCIMClient(httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}))
client.discover()
results = check_server(client)
bad = [r for r in results if r.status in (Status.DEVIATION, Status.ERROR, Status.CRITICAL)]
print(f"{len(results)} checks, {len(bad)} found a deviation or an error")
for r in bad:
    print(f"{r.status.name}: {r.title}: {r.reason}")
sys.exit(1 if bad else 0)

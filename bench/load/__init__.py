"""The load test: a PostgreSQL-backed site served by gunicorn, hit by simulated users.

``python -m bench.load`` (needs the ``load`` extra: ``pip install -e .[load]``)
starts everything on the loopback interface, runs a bounded number of
simulated users for a bounded time, stops by itself, checks the database and
writes ``bench/results/load.json``. See docs/deployment.md, "Load test".
"""

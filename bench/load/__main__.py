"""``python -m bench.load``: gevent must patch the standard library before anything else loads."""

from gevent import monkey

monkey.patch_all()

from bench.load.run import main  # noqa: E402

main()

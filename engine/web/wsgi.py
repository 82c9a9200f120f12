"""The WSGI entry point for production servers: ``gunicorn 'engine.web.wsgi:app'``.

The site folder comes from ``$CRM_SITE`` (or the current folder); each
worker process opens the site itself and shares the session key through
``$CRM_SECRET_KEY`` or the site's ``.secret_key`` file.
"""

from engine.site import Site
from engine.web.app import create_app

app = create_app(Site.open())

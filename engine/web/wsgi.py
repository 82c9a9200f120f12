"""The WSGI entry point for production servers: ``gunicorn 'engine.web.wsgi:app'``.

With ``$CRM_SITES`` naming a ``crm-sites.yaml``, the installation serves
every site listed there, each chosen by the request's host name (see
:mod:`engine.web.sites`).  Otherwise it serves the one site of ``$CRM_SITE``
(or the current folder).  Each worker process opens its sites itself; a
site's session key comes from ``$CRM_SECRET_KEY`` or its ``.secret_key``
file, so every worker of a site signs sessions alike.
"""

import os
from pathlib import Path

from engine.site import Site
from engine.web.admin.operations import configure_logging
from engine.web.app import create_app
from engine.web.sites import SiteDispatcher, load_installation

configure_logging()
if os.environ.get("CRM_SITES"):
    app = SiteDispatcher(load_installation(Path(os.environ["CRM_SITES"])))
else:
    app = create_app(Site.open())

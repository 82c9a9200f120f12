"""What the two HTTP front ends share: the pages (engine.web) and the JSON API (engine.api).

The per-request site and actor, the session secret and CSRF check, streamed
downloads and following definition changes made by another process.  Both
front ends import this package; it imports neither, so the API never depends
on the web pages.
"""

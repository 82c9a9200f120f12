"""Tables, types and schema migrations built from the metadata.

Storage knows the definitions (engine.metadata) and the database, nothing
above: it never imports the services, notifications, jobs, the web layer or the
API.
"""

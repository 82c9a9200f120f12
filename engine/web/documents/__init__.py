"""Files on a record's page and printed documents (the ``attachments`` and
``printing`` blueprints).
"""

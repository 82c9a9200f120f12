"""The service layer: every read and write of records goes through here.

Permissions, row visibility, field rules, workflows and audit are enforced in
these services, so the web pages, the API, imports, exports and the CLI all get
the same answer.  Services sit above storage and metadata and below the site,
the web layer, the API and the CLI; they never import any of those.
"""

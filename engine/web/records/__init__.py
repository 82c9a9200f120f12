"""The record pages (the ``records`` blueprint): list, detail, forms, kanban, quick
create, bulk actions, merge, transfer, import and export links.
"""

"""Stage flows: the workflow service (the one way a record changes stage) and the
actions a transition runs inside its transaction.
"""

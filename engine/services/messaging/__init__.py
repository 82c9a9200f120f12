"""Messages written inside a service's transaction: who may be told about a record
and the outbox writer.  Sending them is engine.notifications' work, above.
"""

"""The record service and its collaborators: the one path for every read and write.

Input coercion, computed fields, hooks, locks, sequences, audit, stage guards,
batches, attachments, duplicates, merging, transfer and ledgers all run inside
the record service's transactions, which is why they live together.
"""

"""Stored predictions, one module per concern: store, serialize, filters, queries, export.

Every query is scoped by ``user_id`` so one user can never read another's rows: a foreign
id is simply "not found".
"""

"""Stored values as a page shows them: numbers, money, dates and display text in the
reader's language.  Shared by every page.
"""

"""Printed documents: quotations, orders, contracts and receipts rendered to PDF."""

"""Dashboard pages and how their figures are drawn (tables and small SVG charts).
"""

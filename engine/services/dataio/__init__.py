"""Data in and out: importing spreadsheets and exporting lists, through the record
service and its permissions like every other door.
"""

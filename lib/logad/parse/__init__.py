"""Parsing log lines: header formats, events and rejects (templates come later)."""

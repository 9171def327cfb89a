"""Renderers: a result (or a comparison, or a history) in, text or pictures out — terminal
tables, formatting helpers, HTML and Markdown reports, charts, and the asv site."""

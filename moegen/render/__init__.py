"""Render variants to text (jinja2 + black) and write or check generated/."""

"""Vocabulary and the address model: no torch, no backend."""

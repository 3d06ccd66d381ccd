"""Accuracy tools: the handler on rendered user styles, through a live server, and on non-digit pictures."""

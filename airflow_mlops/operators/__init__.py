"""Operators of the provider; each module imports its heavy libraries only inside ``execute``."""

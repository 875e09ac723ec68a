"""Analyses of a `Recording`: each returns a small result object with `.plot()`."""

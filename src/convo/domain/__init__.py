"""Pure data and rules: no I/O happens below this package."""

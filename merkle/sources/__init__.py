"""Where bytes come from.  Only this package and the engine open files."""

"""Storage backends behind one small interface; PostgreSQL is the first (and default) engine."""

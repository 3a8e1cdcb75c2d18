"""The SQLite store, its migrations and connection, and the clocks its deadlines use."""

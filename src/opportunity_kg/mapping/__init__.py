"""Stage 2: the RML engine, the older mapping languages it reads, and the mapping functions."""

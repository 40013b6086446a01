"""Benchmarks (``make bench``) and the numpy transcriptions of the reference evaluations they race."""

"""Benchmarks of the service (`make bench`): the real stack as processes, measured from outside."""

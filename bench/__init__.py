"""Benchmarks of ptpd-monitor beside its peers, measured in the same run (``make bench``)."""

"""Coordination between server processes: event fan-out and conversation leases."""

"""Incremental offloading of a partitioned model to an edge server (issue 14): the server, the client and
what both use to turn pieces into runnable models."""

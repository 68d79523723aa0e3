"""Shared core of the serving benchmark: data, model, codecs, inference, topology."""

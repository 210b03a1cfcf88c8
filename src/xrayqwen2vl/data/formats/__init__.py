"""Readers for the public forms of the Indiana University chest X-ray collection."""
